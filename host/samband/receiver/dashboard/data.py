"""What the dashboard reads from the receiver's database, on a read-only connection.

The receiver's store (store.py) and the alerts' tables (alerts_db.py) are
owned by others; the queries the dashboard needs beyond theirs live here so
that they merge without touching those files. Every page opens a read-only
connection (SQLite `mode=ro`, PostgreSQL `default_transaction_read_only`),
so a bug here cannot change a reading; only acknowledging an alert opens the
store for writing, through alerts_db.ack.

Times: `received` is the receiver's clock (s since 1970); `hts` the hub's
UTC (ms); `dts` the device's own wall clock read as UTC (reading.md). The
time a reading was taken, on the patient's wall clock, is `wall_time`.
"""

from __future__ import annotations

import calendar
import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from samband.receiver.store import StoreError

MDC_BATTERY = 67996
MDC_ECG = 131328
MDC_CGM = 160212
# glucose concentration by sample type (firmware/hub/profiles/glucose.py TYPE_MDC), without
# 160208, the control solution: a meter test, not the patient's glucose
GLUCOSE = (160184, 160188, 160192, 160196, 160200, 160204, 160364, 160368, 160212)
BP, SPO2, WEIGHT = 150020, 150456, 188736
TEMPERATURE = (150364, 188452, 188428, 188432, 188456, 188424, 188420, 188448, 150392)
TRENDS = (("blood pressure", (BP,)), ("SpO2", (SPO2,)), ("temperature", TEMPERATURE), ("weight", (WEIGHT,)))
CLINICAL_ALERT_KINDS = ("clinical",)


class Reader:
    """A read-only connection with the two things alerts_db's queries use (conn, q)."""

    def __init__(self, url: str | Path) -> None:
        url = str(url)
        if url.startswith(("postgresql://", "postgres://")):
            try:
                import psycopg
                self.conn = psycopg.connect(url, options="-c default_transaction_read_only=on")
            except Exception as e:  # noqa: BLE001 - psycopg.Error or missing: said in one line
                raise StoreError(f"cannot open the PostgreSQL database read-only: {e}") from None
            self.ph = "%s"
        else:
            if url.startswith("sqlite:///"):
                url = url[len("sqlite:///"):]
            try:
                self.conn = sqlite3.connect(f"file:{url}?mode=ro", uri=True, timeout=10, check_same_thread=False)
                self.conn.execute("SELECT 1 FROM readings LIMIT 1")
            except sqlite3.Error as e:
                raise StoreError(f"cannot read the database {url}: {e}") from None
            self.ph = "?"

    def q(self, sql: str) -> str:
        """sql with this database's placeholder (? for SQLite, %s for PostgreSQL):
        public, as the alerts, timeline and dashboard queries share the store's connection."""
        return sql.replace("?", self.ph)

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        cur.execute(self.q(sql), args)
        out = cur.fetchall()
        self.conn.commit()
        return out

    def has_table(self, name: str) -> bool:
        if self.ph == "?":
            return bool(self.rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))
        return bool(self.rows("SELECT 1 FROM information_schema.tables WHERE table_name = ?", (name,)))

    def close(self) -> None:
        self.conn.close()


def wall_time(r: dict[str, Any], utc_offset: float | None = None) -> float | None:
    """When a stored reading was taken, in seconds on the patient's wall clock
    (so that t % 86400 is the time of day): the device's time (+ ctx.ns) when it
    gave one, else the hub's UTC receipt time shifted to local time, else None."""
    if r.get("dts") is not None:
        ctx = r.get("ctx") if isinstance(r.get("ctx"), dict) else {}
        return r["dts"] + ctx.get("ns", 0) / 1e9
    if r.get("hts") is not None:
        t = r["hts"] / 1000.0
        off = utc_offset if utc_offset is not None else (
            calendar.timegm(time.localtime(t)) - int(t))
        return t + off
    return None


def hubs(db: Reader) -> list[dict[str, Any]]:
    return [{"hub": r[0], "last_seen": r[1], "batches": r[2], "stored": r[3], "duplicates": r[4],
             "rejected": json.loads(r[5] or "{}"), "backlog": r[6], "quarantined": r[7]}
            for r in db.rows("SELECT hub, last_seen, batches, stored, duplicates, rejected, backlog, quarantined "
                             "FROM hubs ORDER BY hub")]


def devices(db: Reader) -> list[dict[str, Any]]:
    """Each (hub, device) with its last contact, reading count, the codes it sent and its
    newest battery level (%), newest contact first."""
    out = {}
    for hub, dev, mdc, last, n in db.rows("SELECT hub, device, mdc, max(received), count(*) FROM readings "
                                          "WHERE dup_of IS NULL GROUP BY hub, device, mdc"):
        d = out.setdefault((hub, dev), {"hub": hub, "device": dev, "last": 0, "count": 0, "codes": set(),
                                        "battery": None})
        d["last"] = max(d["last"], last)
        d["count"] += n
        d["codes"].add(mdc)
    for hub, dev, js in db.rows("SELECT hub, device, reading FROM readings WHERE mdc = ? AND dup_of IS NULL "
                                "ORDER BY received, seq", (MDC_BATTERY,)):
        if (hub, dev) in out:
            out[(hub, dev)]["battery"] = json.loads(js).get("val")
    return sorted(out.values(), key=lambda d: (-d["last"], d["hub"], d["device"]))


def readings(db: Reader, hub: str, device: str, codes: Sequence[int], limit: int | None = None,
             newest_first: bool = False) -> list[dict[str, Any]]:
    """The stored readings (named dicts plus received) of one device and these codes."""
    marks = ", ".join("?" * len(codes))
    sql = (f"SELECT reading, received FROM readings WHERE hub = ? AND device = ? AND mdc IN ({marks}) "
           "AND dup_of IS NULL ORDER BY seq" + (" DESC" if newest_first else ""))
    if limit:
        sql += " LIMIT %d" % int(limit)
    out = []
    for js, rec in db.rows(sql, (hub, device, *codes)):
        d = json.loads(js)
        d["received"] = rec
        out.append(d)
    return out


def alerts(db: Reader, clinical: bool = True, limit: int = 200) -> list[dict[str, Any]]:
    """Alerts newest first (alerts_db's rows); [] when the alerts process never ran.
    clinical=False leaves the clinical ones out (a technician's list)."""
    if not db.has_table("alerts"):
        return []
    from samband.receiver.alerts_db import list_alerts
    out = list_alerts(db, limit=limit)
    if not clinical:
        out = [a for a in out if a["kind"] not in CLINICAL_ALERT_KINDS]
    return out
