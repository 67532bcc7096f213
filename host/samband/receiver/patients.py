"""Which patient a hub serves, and since when: kept on the receiver, never on the hub.

Why here and not on the hub: a patient identifier (a national id number, a
hospital MRN) on a hub's flash would leave the hospital with every hub that is
lost, returned or sent for repair, and would have to be rewritten on the hub
when it moves to the next patient. So the hub knows nothing of the patient: the
receiver's database keeps the identifier (table `patients`, one row per
identifier, with an opaque random `ref`) and the intervals in which a hub served
it (table `patient_links`: hub, since, until; until NULL while it still does).
The `ref` is what may travel instead of the identifier (a hub configuration or a
log line may name it): it says nothing without this database.

Why intervals: a hub is cleaned and given to the next patient. Readings the hub
took before the move belong to the first patient even when they arrive after it
(a hub that was offline uploads late), so a reading is attributed by the hub's
UTC time of taking it (`utc`: its `hts`, or filled in from the hub's clock
report by receiver/timeline.py when the hub's clock was not yet set), not by
when it arrived. A reading whose hub time is not known yet has no patient.

Links of one hub never overlap: a new link closes the open one at its start, and
a link may not start inside or before an earlier one of the same hub (history is
not rewritten: what was exported stays true). One patient may be served by
several hubs at once (home hub and ambulance hub).

Pure functions (check_*, patient_at, spans; attribute marks the rows it is given) take and return plain
values; link/unlink/links read and write the store through its connection and
placeholder (Store or the dashboard's read-only Reader).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from samband.errors import SambandError

if TYPE_CHECKING:
    from samband.receiver.store import Queryable

OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
UUID = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HTTP = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[!-~]*)?")
MAX_VALUE = 64  # FHIR sets no limit; national ids and MRNs are far shorter, and a longer one is a paste gone wrong
FOREVER = 2 ** 63 - 1  # an open link's end, for interval arithmetic


class PatientError(SambandError):
    pass


class UnknownPatient(PatientError):
    """No hub was ever linked to this patient."""


# ---------------------------------------------------------------- validation (pure)

def check_hub(text: str) -> str:
    """A hub's unique id as the receiver stores it: 12 or 16 hex digits (an
    EUI-48 or EUI-64), lower case. PatientError otherwise."""
    h = (text or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{12}|[0-9a-f]{16}", h):
        raise PatientError(f"hub {text!r}: want its unique id, 12 or 16 hex digits (e.g. 00005a4d0001 "
                           f"from samband discover)")
    return h


def check_identifier(system: str, value: str) -> tuple[str, str]:
    """(system, value) of a patient identifier, checked: system an absolute URI a
    FHIR Identifier.system can be (urn:oid:, urn:uuid:, http(s)://), value 1..64
    printable characters without surrounding spaces. PatientError otherwise."""
    system = system or ""
    if not (OID.fullmatch(system) or UUID.fullmatch(system) or HTTP.fullmatch(system)):
        raise PatientError(f"identifier system {system!r}: want a URI like urn:oid:2.16.578.1.12.4.1.4.1, "
                           f"urn:uuid:... or https://hospital.example/mrn")
    value = value or ""
    if not value or value != value.strip():
        raise PatientError(f"identifier value {value!r}: empty or with spaces around it")
    if len(value) > MAX_VALUE:
        raise PatientError(f"identifier value of {len(value)} characters: at most {MAX_VALUE}")
    if not value.isprintable():
        raise PatientError(f"identifier value {value!r}: holds a control character")
    return system, value


def parse_token(text: str) -> tuple[str, str]:
    """'SYSTEM|VALUE' (a FHIR token, as `samband fhir --patient` takes it) -> (system, value), checked."""
    system, sep, value = (text or "").partition("|")
    if not sep:
        raise PatientError(f"patient {text!r}: want SYSTEM|VALUE, e.g. 'urn:oid:2.16.578.1.12.4.1.4.1|12345678901'")
    return check_identifier(system, value)


# ---------------------------------------------------------------- attribution (pure)

def patient_at(links: Iterable[dict[str, Any]], hub: str, t: int) -> tuple[str, str] | None:
    """(system, value) of the patient the hub served at UTC ms t, or None. links:
    dicts as links() returns them."""
    if t is None:
        return None
    for k in links:
        if k["hub"] == hub and k["since"] <= t < (FOREVER if k["until"] is None else k["until"]):
            return k["system"], k["value"]
    return None


def attribute(rows: Iterable[dict[str, Any]], links: list[dict[str, Any]]) -> int:
    """Set each reading's 'patient' to (system, value) from the links by its hub
    and hub UTC (utc, else hts; readings as Store.readings gives them); returns how many have none."""
    by_hub = {}
    for k in links:
        by_hub.setdefault(k["hub"], []).append(k)
    missing = 0
    for r in rows:
        p = patient_at(by_hub.get(r["hub"], ()), r["hub"], r.get("utc", r.get("hts")))
        if p is None:
            missing += 1
            r.pop("patient", None)
        else:
            r["patient"] = p
    return missing


def spans(links: Iterable[dict[str, Any]], since: int | None = None,
          until: int | None = None) -> list[tuple[str, int, int]]:
    """[(hub, lo, hi)]: where to look for a patient's readings (utc in [lo, hi)),
    each link clipped to [since, until); empty intersections left out."""
    out = []
    for k in links:
        lo = k["since"] if since is None else max(k["since"], since)
        hi = FOREVER if k["until"] is None else k["until"]
        hi = hi if until is None else min(hi, until)
        if lo < hi:
            out.append((k["hub"], lo, hi))
    return out


# ---------------------------------------------------------------- the database

def _run(db: Queryable, sql: str, args: Sequence[Any] = ()) -> Any:
    cur = db.conn.cursor()
    cur.execute(sql.replace("?", db.ph), args)
    return cur


def links(db: Queryable, hub: str | None = None, patient: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """The links as dicts (hub, system, value, ref, since, until), by hub and
    since; only a hub's, or only a patient's ((system, value)) when given."""
    sql = ("SELECT l.hub, p.system, p.value, p.ref, l.since, l.until FROM patient_links l "
           "JOIN patients p ON p.ref = l.ref")
    where, args = [], []
    if hub is not None:
        where.append("l.hub = ?")
        args.append(hub)
    if patient is not None:
        where.append("p.system = ? AND p.value = ?")
        args += list(patient)
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = _run(db, sql + " ORDER BY l.hub, l.since", args).fetchall()
    db.conn.commit()
    return [{"hub": h, "system": s, "value": v, "ref": ref, "since": a, "until": b} for h, s, v, ref, a, b in rows]


def link(db: Queryable, hub: str, system: str, value: str,
         since: int | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Link a hub to a patient from UTC ms `since` (default now). An open link of
    the hub to another patient is closed at `since` (the hub moved). Returns
    (the new link, the link it closed or None). PatientError when the hub is
    already linked to this patient, or `since` is not after every earlier link of
    the hub starts and ends (links never overlap, history is not rewritten)."""
    hub = check_hub(hub)
    system, value = check_identifier(system, value)
    since = int(time.time() * 1000) if since is None else int(since)
    try:
        had = links(db, hub=hub)
        last = had[-1] if had else None
        if last is not None:
            if last["until"] is None and (last["system"], last["value"]) == (system, value):
                raise PatientError(f"hub {hub} is already linked to {system}|{value} since {iso(last['since'])}")
            end = last["since"] if last["until"] is None else last["until"]
            if since <= last["since"] or since < end:
                raise PatientError(f"hub {hub}: a link from {iso(since)} would overlap its link to "
                                   f"{last['system']}|{last['value']} ({iso(last['since'])} to "
                                   f"{iso(last['until']) if last['until'] is not None else 'now'}); "
                                   f"give a --since later than {iso(last['since'])}" if last["until"] is None
                                   else f"give a --since from {iso(end)} on")
        now = time.time()
        row = _run(db, "SELECT ref FROM patients WHERE system = ? AND value = ?", (system, value)).fetchone()
        if row is None:
            ref = secrets.token_hex(16)
            _run(db, "INSERT INTO patients (ref, system, value, created) VALUES (?, ?, ?, ?)",
                 (ref, system, value, now))
        else:
            ref = row[0]
        closed = None
        if last is not None and last["until"] is None:
            _run(db, "UPDATE patient_links SET until = ? WHERE hub = ? AND since = ?", (since, hub, last["since"]))
            closed = dict(last, until=since)
        _run(db, "INSERT INTO patient_links (hub, since, until, ref, created) VALUES (?, ?, NULL, ?, ?)",
             (hub, since, ref, now))
        db.conn.commit()
    except BaseException:
        db.conn.rollback()
        raise
    return {"hub": hub, "system": system, "value": value, "ref": ref, "since": since, "until": None}, closed


def unlink(db: Queryable, hub: str, at: int | None = None) -> dict[str, Any]:
    """End the hub's open link at UTC ms `at` (default now): readings it takes
    from then on belong to nobody until it is linked again. Returns the closed
    link; PatientError when the hub has no open link or `at` is not after its start."""
    hub = check_hub(hub)
    at = int(time.time() * 1000) if at is None else int(at)
    try:
        had = [k for k in links(db, hub=hub) if k["until"] is None]
        if not had:
            raise PatientError(f"hub {hub} is not linked to a patient (samband patient show {hub})")
        k = had[0]
        if at <= k["since"]:
            raise PatientError(f"hub {hub}: its link to {k['system']}|{k['value']} starts {iso(k['since'])}; "
                               f"--at must be after that")
        _run(db, "UPDATE patient_links SET until = ? WHERE hub = ? AND since = ?", (at, hub, k["since"]))
        db.conn.commit()
    except BaseException:
        db.conn.rollback()
        raise
    return dict(k, until=at)


def iso(ms: float | None) -> str:
    """UTC ms -> '2026-12-02T04:41:00Z' for messages and `show`."""
    from datetime import datetime, timezone
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
