"""Alerts at the receiver: clinical and technical, raised once, cleared with hysteresis, escalated until acknowledged.

A separate process (`samband alerts --db DB --rules FILE`) beside the
receiver: it reads `readings` and `hubs` and writes only its own tables
(alerts_db.py), so it needs no broker login and no keys, and a fault in it
cannot stop readings being stored. Every `poll_s` (at most 0.5 s) it

1. reads the readings that arrived since the last poll, and folds them
   into `Causes`: on SQLite by rowid (commit order); on PostgreSQL by the
   index on `received`, reading the last few seconds again because two
   receivers may commit out of the order of their `received` times, and
   skipping the rows seen already by (hub, seq);
2. reads the small `hubs` table (last contact, backlog, refusal counts);
3. compares the causes active now with the open alerts: a new cause raises
   an alert at once (and sends it to the first responder group of its
   route); a cause that stays gone for `clear_after_s` clears its alert, so
   a value hovering at a limit, or a hub whose link flickers, gives one
   alert and not a storm; numeric causes have their own clear levels too;
4. moves on every alert whose group did not acknowledge within its
   `ack_timeout_s` to the next group of its route.

Time is a parameter (`tick(now)`), so tests step through hours without
sleeping. What the database cannot tell yet is listed in docs/alerts.md.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from samband.receiver import alerts_db
from samband.receiver.alerts_causes import Causes
from samband.receiver.alerts_rules import SEVERITY

if TYPE_CHECKING:
    from samband.receiver.alerts_channels import Dispatcher
    from samband.receiver.alerts_rules import Rules
    from samband.receiver.store import Store

log = logging.getLogger("samband.receiver.alerts")

LOOKBACK_S = 5.0  # PostgreSQL: seconds of readings read again at each poll (see _poll_readings)


class Engine:
    """Polls the database, keeps the alerts table true, drives escalation."""

    def __init__(self, store: Store, rules: Rules, dispatcher: Dispatcher, now: float | None = None) -> None:
        self.store = store
        self.rules = rules
        self.dispatcher = dispatcher
        self.causes = Causes(rules)
        self.counters = Counter()
        alerts_db.migrate(store)
        now = time.time() if now is None else now
        self.cursor = now - rules.thresholds.history_s
        self.seen = {}  # (hub, seq) -> received, for rows read again in the lookback (PostgreSQL)
        self.rowid = None if alerts_db.is_pg(store) else self._start_cursor(self.cursor)
        self._load_open()
        for h in self._hubs():  # refusals counted from now on, not the database's whole history
            self.causes.hubs_row(h, now)

    def _load_open(self) -> None:
        """The open alerts as the database has them (at start, and after a failed poll
        whose raises and clears were rolled back)."""
        self.open = {}  # akey -> [id, gone_since, last_seen written, detail]
        cur = self.store.conn.cursor()
        cur.execute("SELECT akey, id, last_seen, detail FROM alerts WHERE cleared IS NULL")
        for key, aid, last, detail in cur.fetchall():
            self.open[key] = [aid, None, last, json.loads(detail)]
        self.store.conn.commit()

    def _hubs(self):
        cur = self.store.conn.cursor()
        cur.execute("SELECT hub, last_seen, backlog, rejected, quarantined FROM hubs")
        out = [{"hub": r[0], "last_seen": r[1], "backlog": r[2], "rejected": json.loads(r[3] or "{}"),
                "quarantined": r[4] or 0} for r in cur.fetchall()]
        self.store.conn.commit()
        return out

    def _start_cursor(self, since: float) -> int:
        """SQLite: the rowid before the first reading received since `since`. SQLite has one
        writer at a time and gives each row max(rowid) + 1 inside the writing transaction,
        so rows become visible in rowid order: a rowid cursor misses nothing and reads
        nothing twice (readings are never deleted, so rowids are not reused)."""
        cur = self.store.conn.cursor()
        cur.execute("SELECT min(rowid) FROM readings WHERE received > ?", (since,))
        first = cur.fetchone()[0]
        if first is None:
            cur.execute("SELECT coalesce(max(rowid), 0) FROM readings")
            first = cur.fetchone()[0] + 1
        self.store.conn.commit()
        return first - 1

    def _reading_json(self, hub: str, seq: int) -> str:
        cur = self.store.conn.cursor()
        cur.execute(self.store.q("SELECT reading FROM readings WHERE hub = ? AND seq = ?"), (hub, seq))
        return cur.fetchone()[0]

    def _poll_readings(self) -> None:
        """Fold the readings that arrived since the last poll into the causes. Only the
        small columns are read; a reading's JSON only when it is an alarm, telemetry or a
        battery level (a stream of routine ECG frames costs an index walk, not a parse)."""
        cur = self.store.conn.cursor()
        if self.rowid is not None:
            cur.execute("SELECT rowid, hub, seq, device, mdc, prio, hts, received, dup_of FROM readings "
                        "WHERE rowid > ? ORDER BY rowid", (self.rowid,))
        else:
            cur.execute(self.store.q("SELECT 0, hub, seq, device, mdc, prio, hts, received, dup_of FROM readings "
                                      "WHERE received > ? ORDER BY received, hub, seq"), (self.cursor,))
        rows = cur.fetchall()
        newest = self.cursor + LOOKBACK_S
        for rowid, hub, seq, dev, mdc, prio, hts, received, dup_of in rows:
            if self.rowid is not None:
                self.rowid = max(self.rowid, rowid)
            else:
                newest = max(newest, received)
                if (hub, seq) in self.seen:
                    continue
                self.seen[(hub, seq)] = received
            if dup_of is not None:
                continue  # a device record already stored through another hub or seq
            load = lambda hub=hub, seq=seq: self._reading_json(hub, seq)
            self.causes.reading(hub, dev, mdc, prio, hts, load, received)
            self.counters["readings"] += 1
        self.store.conn.commit()
        if self.rowid is None:
            self.cursor = newest - LOOKBACK_S
            if len(self.seen) > 1000 or rows and len(self.seen) > 4 * len(rows):
                self.seen = {k: t for k, t in self.seen.items() if t > self.cursor}

    def tick(self, now: float | None = None) -> None:
        """One poll: readings, hubs, raise/clear, escalate, record deliveries."""
        now = time.time() if now is None else now
        self._poll_readings()
        hubs = self._hubs()
        for h in hubs:
            self.causes.hubs_row(h, now)
        active = self.causes.active(now, hubs)
        cur = self.store.conn.cursor()
        raised = []
        for key, (kind, hub, dev, detail, seen) in active.items():
            o = self.open.get(key)
            if o is None:
                raised.append(self._raise(cur, key, kind, hub, dev, detail, seen, now))
                continue
            o[1] = None
            if seen - o[2] >= 1.0 or detail.get("text") != o[3].get("text"):
                cur.execute(self.store.q("UPDATE alerts SET last_seen = ?, detail = ? WHERE id = ?"),
                            (seen, json.dumps(detail), o[0]))
                o[2], o[3] = seen, detail
        for key, o in list(self.open.items()):
            if key in active:
                continue
            if o[1] is None:
                o[1] = now
            if now - o[1] >= self.rules.thresholds.clear_after_s:
                self._clear(cur, key, o, now)
        self.store.conn.commit()
        for aid in raised:
            self._escalate_to(aid, 0, now)
        self._due(now)
        self.record_deliveries()

    def _raise(self, cur: Any, key: str, kind: str, hub: str, dev: str | None, detail: dict[str, Any], seen: float,
               now: float) -> int:
        sev = SEVERITY[kind]
        cur.execute(self.store.q("INSERT INTO alerts (akey, kind, severity, hub, device, patient, detail, "
                                  "first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
                    (key, kind, sev, hub, dev, self.rules.patients.get(hub), json.dumps(detail), seen, seen))
        aid = cur.fetchone()[0]
        self.open[key] = [aid, None, seen, detail]
        self.counters["raised"] += 1
        log.warning("alert %d raised: %s %s %s %s", aid, kind, hub, dev or "", detail.get("text"))
        return aid

    def _clear(self, cur: Any, key: str, o: list[Any], now: float) -> None:
        a = alerts_db.get_alert(self.store, o[0])
        route = self.rules.route(a["kind"], a["severity"])
        stop = route is None or route.stop_on_clear
        cur.execute(self.store.q("UPDATE alerts SET cleared = ?" + (", next_at = NULL" if stop else "")
                                  + " WHERE id = ?"), (now, o[0]))
        del self.open[key]
        self.counters["cleared"] += 1
        log.warning("alert %d cleared", o[0])

    def _escalate_to(self, aid: int, level: int, now: float) -> None:
        """Hand the alert to group `level` of its route, unless it was acknowledged meanwhile."""
        a = alerts_db.get_alert(self.store, aid)
        route = self.rules.route(a["kind"], a["severity"])
        if route is None:
            self.counters["unrouted"] += 1
            log.warning("alert %d (%s, %s): no route in the rules; recorded, told to no one", aid, a["kind"],
                        a["severity"])
            return
        cur = self.store.conn.cursor()
        if level >= len(route.groups):
            cur.execute(self.store.q("UPDATE alerts SET next_at = NULL WHERE id = ?"), (aid,))
            self.store.conn.commit()
            self.counters["exhausted"] += 1
            return
        group = self.rules.groups[route.groups[level]]
        cur.execute(self.store.q("UPDATE alerts SET grp_level = ?, grp = ?, next_at = ? "
                                  "WHERE id = ? AND acked_at IS NULL AND grp_level = ?"),
                    (level, group.name, now + group.ack_timeout_s, aid, a["grp_level"]))
        moved = cur.rowcount == 1
        self.store.conn.commit()
        if not moved:
            return
        a.update(grp_level=level, grp=group.name)
        if level:
            self.counters["escalated"] += 1
        self.dispatcher.deliver(aid, group, message(a))

    def _due(self, now: float) -> None:
        cur = self.store.conn.cursor()
        cur.execute(self.store.q("SELECT id, grp_level FROM alerts WHERE next_at IS NOT NULL AND next_at <= ? "
                                  "AND acked_at IS NULL"), (now,))
        due = cur.fetchall()
        self.store.conn.commit()
        for aid, level in due:
            self._escalate_to(aid, level + 1, now)

    def record_deliveries(self) -> None:
        got = self.dispatcher.results()
        if not got:
            return
        cur = self.store.conn.cursor()
        cur.executemany(self.store.q("INSERT INTO alert_deliveries (alert, at, grp, channel, target, attempt, ok, "
                                      "error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"), got)
        self.store.conn.commit()
        for r in got:
            self.counters["delivered" if r[6] else "delivery-failed"] += 1
            if not r[6]:
                log.warning("alert %d to %s by %s %s: attempt %d failed: %s", r[0], r[2], r[3], r[4], r[5], r[7])

    def run(self, stop: threading.Event, poll_s: float | None = None) -> None:
        """Tick until stop (a threading.Event) is set; a failing poll is logged and counted, never fatal."""
        poll_s = poll_s or self.rules.thresholds.poll_s
        while not stop.is_set():
            t = time.monotonic()
            try:
                self.tick()
            except Exception:
                self.counters["poll-failed"] += 1
                log.exception("alerts poll")
                try:
                    self.store.conn.rollback()
                    self._load_open()
                except Exception:
                    log.exception("alerts: reloading the open alerts")
            stop.wait(max(0.0, poll_s - (time.monotonic() - t)))
        self.record_deliveries()


def message(a: dict[str, Any]) -> dict[str, Any]:
    """What a responder receives: the alert, who it is about, and how to acknowledge it."""
    d = a["detail"]
    return {"id": a["id"], "kind": a["kind"], "severity": a["severity"], "hub": a["hub"], "device": a["device"],
            "patient": a["patient"], "text": d.get("text", ""), "detail": d, "first_seen": a["first_seen"],
            "last_seen": a["last_seen"], "group": a["grp"], "level": a["grp_level"],
            "ack": f"samband alerts ack {a['id']} --by NAME"}
