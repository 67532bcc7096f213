"""The alerts' own tables beside the receiver's, and the calls anyone may make on them.

The alerts process reads `readings` and `hubs` and writes only what is
created here: `alerts` (one row per alert: raised once, last seen,
cleared, where its escalation stands, who acknowledged it) and
`alert_deliveries` (every delivery attempt, ok or not, with the error).
Its own version table, `alerts_schema`, keeps these migrations apart from
the store's numbered ones, which another part of the receiver owns. One
index is added on readings(received): the poll asks "what arrived since",
and without it each poll would scan the whole table.

`ack(store, id, by)` and `list_alerts(store)` are what a CLI, a dashboard
or an API calls; acknowledging is a conditional UPDATE, so the running
escalation, which re-checks `acked_at` in the same statement that moves an
alert on, never escalates an alert that was acknowledged meanwhile.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from samband.errors import SambandError

if TYPE_CHECKING:
    from samband.receiver.store import Queryable, Store


class AlertError(SambandError):
    pass


def _migrations(pg: bool) -> list[list[str]]:
    key = "BIGSERIAL PRIMARY KEY" if pg else "INTEGER PRIMARY KEY AUTOINCREMENT"
    return [
        [
            f"""CREATE TABLE alerts (
                id {key},
                akey TEXT NOT NULL,
                kind TEXT NOT NULL,
                severity TEXT NOT NULL,
                hub TEXT,
                device TEXT,
                patient TEXT,
                detail TEXT NOT NULL,
                first_seen DOUBLE PRECISION NOT NULL,
                last_seen DOUBLE PRECISION NOT NULL,
                cleared DOUBLE PRECISION,
                grp_level INTEGER NOT NULL DEFAULT -1,
                grp TEXT,
                next_at DOUBLE PRECISION,
                acked_by TEXT,
                acked_at DOUBLE PRECISION)""",
            "CREATE INDEX alerts_open ON alerts (cleared, akey)",
            "CREATE INDEX alerts_due ON alerts (next_at)",
            """CREATE TABLE alert_deliveries (
                alert BIGINT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                grp TEXT NOT NULL,
                channel TEXT NOT NULL,
                target TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                ok INTEGER NOT NULL,
                error TEXT)""",
            "CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert)",
            "CREATE INDEX IF NOT EXISTS alerts_readings_received ON readings (received)",
        ],
    ]


def is_pg(store: Queryable) -> bool:
    return store.ph != "?"


def migrate(store: Store) -> None:
    """Create or upgrade the alerts tables (idempotent; the store's tables must exist)."""
    cur = store.conn.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS alerts_schema (version INTEGER PRIMARY KEY, applied DOUBLE PRECISION)")
    cur.execute("SELECT max(version) FROM alerts_schema")
    store.apply_migrations("alerts_schema", _migrations(is_pg(store)), cur.fetchone()[0] or 0)


def created(store: Store) -> bool:
    """Whether this database has the alerts tables yet (`samband alerts --rules` makes them):
    asked of the catalogue, so that a caller need not read a driver's error text."""
    sql = ("SELECT count(*) FROM information_schema.tables WHERE table_name = 'alerts'" if is_pg(store)
           else "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'alerts'")
    cur = store.conn.cursor()
    cur.execute(sql)
    n = cur.fetchone()[0]
    store.conn.commit()
    return n > 0


COLUMNS = ("id", "kind", "severity", "hub", "device", "patient", "detail", "first_seen", "last_seen", "cleared",
           "grp_level", "grp", "next_at", "acked_by", "acked_at")


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    d = dict(zip(COLUMNS, r))
    d["detail"] = json.loads(d["detail"])
    return d


def list_alerts(store: Queryable, open_only: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
    """Alerts as dicts, newest first; open_only: not cleared or not acknowledged."""
    sql = "SELECT " + ", ".join(COLUMNS) + " FROM alerts"
    if open_only:
        sql += " WHERE cleared IS NULL OR acked_at IS NULL"
    sql += " ORDER BY id DESC"
    if limit:
        sql += " LIMIT %d" % int(limit)
    cur = store.conn.cursor()
    cur.execute(sql)
    out = [_row(r) for r in cur.fetchall()]
    store.conn.commit()
    return out


def get_alert(store: Queryable, alert_id: int) -> dict[str, Any] | None:
    cur = store.conn.cursor()
    cur.execute(store.q("SELECT " + ", ".join(COLUMNS) + " FROM alerts WHERE id = ?"), (alert_id,))
    r = cur.fetchone()
    store.conn.commit()
    return _row(r) if r else None


def deliveries(store: Queryable, alert_id: int | None = None) -> list[dict[str, Any]]:
    sql = "SELECT alert, at, grp, channel, target, attempt, ok, error FROM alert_deliveries"
    args = ()
    if alert_id is not None:
        sql += " WHERE alert = ?"
        args = (alert_id,)
    cur = store.conn.cursor()
    cur.execute(store.q(sql + " ORDER BY at, alert"), args)
    out = [dict(zip(("alert", "at", "group", "channel", "target", "attempt", "ok", "error"), r))
           for r in cur.fetchall()]
    store.conn.commit()
    return out


def ack(store: Queryable, alert_id: int, by: str, now: float | None = None) -> dict[str, Any] | None:
    """Acknowledge an alert: its escalation stops. AlertError when there is no such
    alert or it was acknowledged already (saying by whom), never a silent no-op."""
    if not isinstance(by, str) or not by.strip():
        raise AlertError("say who acknowledges (--by NAME)")
    now = time.time() if now is None else now
    cur = store.conn.cursor()
    cur.execute(store.q("UPDATE alerts SET acked_by = ?, acked_at = ?, next_at = NULL "
                         "WHERE id = ? AND acked_at IS NULL"), (by.strip(), now, alert_id))
    n = cur.rowcount
    store.conn.commit()
    if n == 1:
        return get_alert(store, alert_id)
    a = get_alert(store, alert_id)
    if a is None:
        raise AlertError(f"no alert {alert_id}")
    raise AlertError(f"alert {alert_id} was acknowledged already by {a['acked_by']} at "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(a['acked_at']))}")
