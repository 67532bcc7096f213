"""Live data for acute staff: a patient's newest reading of each kind, and the
recent history (e.g. the last 24 h), straight from the receiver's database.

Why these queries and indexes: an ambulance crew or the emergency centre asks
"what is this patient's glucose, pressure, SpO2 now, and how did it go today"
and must have the answer at once (target: under 100 ms for a hub with a year
of data in PostgreSQL; `make bench`, tests/bench/bench_live.py, measures it).
- History is a range scan of the (hub, utc) index, one per link of the patient.
- Newest of each kind: the kinds a hub ever sent are found by a skip scan (a
  recursive query that jumps from one code to the next in the (hub, mdc, utc,
  seq) index: one index probe per kind, not a scan of the hub's year), and for
  each kind one backward probe of the same index finds its newest reading.
Both work the same on SQLite and PostgreSQL (WITH RECURSIVE, correlated
subqueries; no LATERAL) and on the store or the dashboard's read-only Reader
(anything with `conn` and `ph`).

Times are the hub's UTC time of taking the reading (utc: its hts, or for a
reading taken before the hub's clock was set, the time its clock report gives:
receiver/timeline.py), the time that also decides the patient
(receiver/patients.py): "newest" is the newest the hub took in, so a meter
record fetched late counts at its fetch; its own device time stays in the
reading (dts). Readings stored twice (dup_of) are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from samband.receiver import patients
from samband.receiver.store import MIGRATIONS, Queryable

_KINDS = """WITH RECURSIVE kinds(mdc) AS (
    SELECT min(mdc) FROM readings WHERE hub = ?
    UNION ALL
    SELECT (SELECT min(r.mdc) FROM readings r WHERE r.hub = ? AND r.mdc > kinds.mdc)
    FROM kinds WHERE kinds.mdc IS NOT NULL)
SELECT (SELECT r.seq FROM readings r WHERE r.hub = ? AND r.mdc = kinds.mdc AND r.utc >= ? AND r.utc < ?
        AND r.dup_of IS NULL ORDER BY r.utc DESC, r.seq DESC LIMIT 1)
FROM kinds WHERE kinds.mdc IS NOT NULL"""

# Where to look for a patient's readings: (hub, lo, hi), utc in [lo, hi).
Span = tuple[str, int, int]


def _rows(db: Queryable, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
    cur = db.conn.cursor()
    cur.execute(sql.replace("?", db.ph), args)
    out = []
    for h, ep, js, rec, utc in cur.fetchall():
        d = {"hub": h, "epoch": ep}
        d.update(json.loads(js))
        d["received"] = rec
        d["utc"] = utc
        out.append(d)
    return out


def latest(db: Queryable, spans: Iterable[Span]) -> list[dict[str, Any]]:
    """The newest reading of each kind (MDC code) in the spans [(hub, lo, hi)]
    (utc in [lo, hi)), as Store.readings dicts, by code. Across spans (a patient
    served by two hubs) the newer one wins."""
    best = {}
    try:
        for hub, lo, hi in spans:
            cur = db.conn.cursor()
            cur.execute(_KINDS.replace("?", db.ph), (hub, hub, hub, lo, hi))
            seqs = [s for (s,) in cur.fetchall() if s is not None]
            for i in range(0, len(seqs), 500):
                part = seqs[i:i + 500]
                for r in _rows(db, "SELECT hub, epoch, reading, received, utc FROM readings "
                               "WHERE hub = ? AND seq IN (%s)" % ",".join("?" * len(part)), [hub] + part):
                    had = best.get(r["mdc"])
                    if had is None or (r["utc"], r["hub"], r["seq"]) > (had["utc"], had["hub"], had["seq"]):
                        best[r["mdc"]] = r
    finally:
        db.conn.commit()
    return [best[k] for k in sorted(best)]


def history(db: Queryable, spans: Iterable[Span]) -> list[dict[str, Any]]:
    """Every reading in the spans [(hub, lo, hi)] (utc in [lo, hi)), oldest first."""
    out = []
    try:
        for hub, lo, hi in spans:
            out += _rows(db, "SELECT hub, epoch, reading, received, utc FROM readings WHERE hub = ? AND utc >= ? "
                             "AND utc < ? AND dup_of IS NULL ORDER BY utc, seq", (hub, lo, hi))
    finally:
        db.conn.commit()
    out.sort(key=lambda r: (r["utc"], r["hub"], r["seq"]))
    return out


def patient_spans(db: Queryable, patient: tuple[str, str], since: int | None = None,
                  until: int | None = None) -> list[Span]:
    """The spans of a patient ((system, value)): each hub link clipped to
    [since, until). PatientError when no hub was ever linked to the patient."""
    ls = patients.links(db, patient=patient)
    if not ls:
        raise patients.UnknownPatient(f"no hub is linked to {patient[0]}|{patient[1]} (samband patient link)")
    return patients.spans(ls, since, until)


def latest_of(db: Queryable, patient: tuple[str, str]) -> list[dict[str, Any]]:
    """A patient's newest reading of each kind, whichever hub served them."""
    return latest(db, patient_spans(db, patient))


AHEAD_MS = 10 * 60_000


def recent_of(db: Queryable, patient: tuple[str, str], now_ms: int, hours: float = 24) -> list[dict[str, Any]]:
    """A patient's readings of the last `hours` before now_ms (UTC ms), oldest
    first; and up to AHEAD_MS after it, so that a hub whose clock runs a little
    ahead of the receiver's still shows its newest readings."""
    return history(db, patient_spans(db, patient, now_ms - int(hours * 3_600_000), now_ms + AHEAD_MS))


PATIENT_TABLES = next(n for n, steps in enumerate(MIGRATIONS, 1) if any("CREATE TABLE patients" in x for x in steps))


def snapshot(db: Queryable, token: str, now_ms: int, hours: float = 24) -> dict[str, Any]:
    """What the dashboard's /api/patient answers: the patient ('SYSTEM|VALUE'),
    their hub links, the newest reading of each kind and the last `hours` of
    readings, as one JSON-ready dict. PatientError (a one-line reason) for a bad
    identifier, an unknown patient, or a database older than the patient tables."""
    patient = patients.parse_token(token)
    cur = db.conn.cursor()
    cur.execute("SELECT max(version) FROM schema_version")
    version = cur.fetchone()[0] or 0
    db.conn.commit()
    if version < PATIENT_TABLES:
        raise patients.PatientError(f"this database has no patient tables yet (schema {version}: made by an "
                                    f"older receiver; a newer one adds them when it starts)")
    links = patients.links(db, patient=patient)
    if not links:
        raise patients.UnknownPatient(f"no hub is linked to {patient[0]}|{patient[1]} (samband patient link)")
    return {"patient": {"system": patient[0], "value": patient[1], "ref": links[0]["ref"]},
            "now": now_ms, "hours": hours,
            "links": [{k: ln[k] for k in ("hub", "since", "until")} for ln in links],
            "latest": latest_of(db, patient), "recent": recent_of(db, patient, now_ms, hours)}
