"""What is wrong now: the causes of alerts, from stored readings and the hubs table.

Pure state, no database and no clock of its own: `Causes.reading(...)` is fed
each stored reading in arrival order, `hubs_row(...)` each poll's hub rows,
and `active(now, hubs)` says which causes hold now, with hysteresis on the
numeric ones (battery, journal). The engine (alerts.py) turns these into
alert rows, raised once and cleared after `clear_after_s`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

# the hub's own telemetry "a connected device said nothing for its kind's SILENCE_S"
from hub.collect import MDC_HUB_DEVICE_SILENT
from hub.profiles.battery import MDC_ATTR_VAL_BATT_CHARGE as MDC_BATTERY  # percent
from hub.reading import PRIO_ALARM, PRIO_TELEMETRY

# the hub's own telemetry "undelivered records passed FILL_WARN_PCT of the journal" (val: per
# cent), and "fell back under FILL_CLEAR_PCT": the hub decides, with its own capacity
from hub.store import FILL_WARN_PCT, MDC_HUB_JOURNAL_FILL

if TYPE_CHECKING:
    from samband.receiver.alerts_rules import Rules

# Not refusals: records sent again after a lost ack (normal, acknowledged), and the
# authentic records kept in the quarantine, which raise their own kind.
NOT_REFUSALS = ("replayed", "bad-reading", "out-of-range", "unstorable")


def _value(named: dict[str, Any]) -> float | None:
    v = named.get("val")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return v * 10 ** named.get("exp", 0)


def _text(named: dict[str, Any]) -> str:
    from samband.reading_text import describe
    try:
        return describe(named)
    except Exception:  # a reading the text helper cannot word is still an alarm
        return f"mdc {named.get('mdc')} value {named.get('val')!r}"


class Causes:
    """What is wrong now, from the readings (fed in order) and the hubs table.

    Pure state: no database, no clock of its own. `active(now, hubs)` is
    {key: (kind, hub, device, detail, seen)} with `seen` the time the cause
    was last confirmed (an alarm reading's arrival, else now)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.th = rules.thresholds
        self.clinical = {}  # (hub, dev, mdc) -> (detail, received) while the newest reading is an alarm
        self.hub_silent = {}  # (hub, dev) -> detail: the hub said the device went quiet
        self.heard = {}  # (hub, dev) -> (received, expected interval or None)
        self.battery = {}  # (hub, dev) -> pct
        self.battery_low = set()
        self.no_clock = {}  # hub -> received of a reading without hub time
        self.journal_full = set()
        self.hub_full = {}  # hub -> detail: the hub said its journal passed FILL_WARN_PCT
        self.refused = {}  # hub -> deque[(t, total)]
        self.held = {}  # hub -> deque[(t, quarantined total)]
        self.bad = 0

    def reading(self, hub: str, device: str, mdc: int, prio: int, hts: int | None, load: Callable[[], str],
                received: float) -> None:
        """One stored reading, in arrival order; load() gives its JSON text (read only when needed)."""
        hd = (hub, device)
        if prio == PRIO_TELEMETRY and mdc == MDC_HUB_DEVICE_SILENT:
            named = self._named(load)
            if named is not None:
                self.hub_silent[hd] = {"text": f"the hub heard nothing from it for {named.get('val')} s",
                                       "quiet_s": named.get("val")}
            return
        if prio == PRIO_TELEMETRY and mdc == MDC_HUB_JOURNAL_FILL:
            named = self._named(load)
            pct = _value(named) if named else None
            if pct is not None and pct >= FILL_WARN_PCT:
                self.hub_full[hub] = {"text": f"hub storage {pct:g} % full: offline for long?", "pct": pct,
                                      "from": "hub"}
            elif pct is not None:
                self.hub_full.pop(hub, None)
            return
        if mdc == MDC_BATTERY:
            named = self._named(load)
            v = _value(named) if named else None
            if v is not None:
                self.battery[hd] = v
        elif prio != PRIO_TELEMETRY:
            self.hub_silent.pop(hd, None)
            key = (hub, device, mdc)
            if prio == PRIO_ALARM:
                named = self._named(load)
                if named is not None:
                    self.clinical[key] = ({"text": _text(named), "mdc": mdc, "value": named.get("val"),
                                           "unit": named.get("unit"), "seq": named.get("seq")}, received)
            else:
                self.clinical.pop(key, None)
        if prio != PRIO_TELEMETRY:
            expect = self.rules.expected_interval(device, mdc)
            old = self.heard.get(hd)
            self.heard[hd] = (received, expect or (old[1] if old else None))
        if hts is None:
            self.no_clock[hub] = received
        else:
            self.no_clock.pop(hub, None)

    def _named(self, load: Callable[[], str]) -> dict[str, Any] | None:
        try:
            d = json.loads(load())
            return d if isinstance(d, dict) else None
        except ValueError:
            self.bad += 1
            return None

    def hubs_row(self, hub: dict[str, Any], now: float) -> None:
        """Refusal and quarantine counts arrive as running totals; a window keeps (time, total) pairs."""
        refused = sum(n for k, n in hub["rejected"].items() if k not in NOT_REFUSALS)
        for table, total in ((self.refused, refused), (self.held, hub["quarantined"])):
            q = table.setdefault(hub["hub"], deque())
            if not q or q[-1][1] != total:
                q.append((now, total))
            while len(q) > 1 and q[1][0] <= now - self.th.refusals_window_s:
                q.popleft()

    def active(self, now: float,
               hubs: list[dict[str, Any]]) -> dict[str, tuple[str, str, str | None, dict[str, Any], float]]:
        th = self.th
        out = {}

        def add(kind: str, hub: str, device: str | None, detail: dict[str, Any], seen: float | None = None,
                sub: object = "") -> None:
            out[f"{kind}|{hub}|{device or ''}|{sub}"] = (kind, hub, device, detail, now if seen is None else seen)

        for (hub, dev, mdc), (detail, received) in self.clinical.items():
            add("clinical", hub, dev, detail, received, mdc)
        for (hub, dev), detail in self.hub_silent.items():
            add("device-silent", hub, dev, detail)
        for (hub, dev), (received, expect) in self.heard.items():
            if expect and now - received > expect:
                add("device-silent", hub, dev, {"text": f"nothing received for {now - received:.0f} s "
                                                        f"(expected every {expect:g} s)",
                                                "quiet_s": round(now - received), "expected_s": expect})
        for hd, pct in self.battery.items():
            low = pct < th.battery_low_pct or (hd in self.battery_low and pct < th.battery_clear_pct)
            (self.battery_low.add if low else self.battery_low.discard)(hd)
            if low:
                add("battery-low", hd[0], hd[1], {"text": f"battery {pct:g} %", "pct": pct})
        for hub, received in self.no_clock.items():
            add("clock-not-set", hub, None, {"text": "the hub's clock is not set: readings carry no UTC time",
                                             "since": received})
        for hub, detail in self.hub_full.items():  # the hub's own word (its capacity, its hysteresis)
            add("journal-filling", hub, None, detail)
        for h in hubs:
            hub = h["hub"]
            if h["last_seen"] is not None and now - h["last_seen"] > th.hub_offline_s:
                add("hub-offline", hub, None, {"text": f"no status or data for {now - h['last_seen']:.0f} s",
                                               "last_seen": h["last_seen"]})
            if th.journal_capacity and h["backlog"] is not None:
                pct = 100.0 * h["backlog"] / th.journal_capacity
                full = pct >= th.journal_fill_pct or (hub in self.journal_full and pct > th.journal_clear_pct)
                (self.journal_full.add if full else self.journal_full.discard)(hub)
                if full:
                    add("journal-filling", hub, None, {"text": f"journal {pct:.0f} % full ({h['backlog']} records "
                                                               f"waiting)", "pct": round(pct, 1),
                                                       "backlog": h["backlog"]})
            q = self.refused.get(hub)
            if q and len(q) > 1:
                n = q[-1][1] - q[0][1]
                if n >= th.refusals:
                    add("refusals", hub, None, {"text": f"{n} refused records or batches in "
                                                        f"{th.refusals_window_s:g} s", "count": n,
                                                "reasons": h["rejected"]})
            q = self.held.get(hub)
            if q and len(q) > 1 and q[-1][1] > q[0][1]:
                n = q[-1][1] - q[0][1]
                add("quarantine", hub, None, {"text": f"{n} authentic record{'s' if n > 1 else ''} the database "
                                                      f"cannot hold kept in the quarantine in "
                                                      f"{th.refusals_window_s:g} s (samband readings --status)",
                                              "count": n, "total": q[-1][1]})
        return out
