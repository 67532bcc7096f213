"""Which hub runs what: the version, slot and update state each hub reports, and when it changed.

A hub's status message (docs/uplink.md) carries an "ota" map once an update
service runs on it (hub/ota.py `Ota.status`): "v" the running version, "st"
the update state, "to" the release it fetches or tries, "have"/"n" its chunk
count, "r" the last refusal, "s" the slot it runs from ("a", "b", or "-" for
the root tree). The status is untrusted input (anyone holding a hub's login
can write it), so `parse_ota` is pure and strict: every field typed and
bounded, a version spelled as the release format spells it (hub.release), so
that nothing unbounded or ill-formed reaches the `hubs` columns or the
history table. The store calls `record` inside its status transaction;
`fleet` and `history` are the queries behind `samband hubs` and the
dashboard. The table layout is migration 6 in receiver/store.py.

Its "cfg" entry (hub/hubcfg.py, docs/alerts.md) says which signed configs the
hub runs: "k" the serial of its receiver-key config, "l" of its limits (0:
the kinds' defaults), "bad" the configs it refused since it booted, "r" the
last refusal; `parse_cfg` checks it as strictly and `record_cfg` keeps it in
the hub's row (migration 7).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from samband.receiver.store import Queryable, Store

from samband.errors import SambandError

VERSION_MAX = 17  # "65535.65535.65535"
WORD_MAX = 16  # a state or refusal code: lowercase letters and "-", as hub/ota.py writes them
SLOTS = ("a", "b", "-")
COUNT_MAX = 2 ** 31 - 1
HISTORY_MAX = 50  # version changes kept per hub (a hub that flips versions cannot fill the table)


class BadOta(SambandError, ValueError):
    """An "ota" entry that breaks a bound; the message says which field."""


def _version(v: object, name: str) -> str:
    from hub.release import ReleaseError, parse_version
    if type(v) is not str or len(v) > VERSION_MAX:
        raise BadOta(f"{name} is not a version text of at most {VERSION_MAX} characters")
    try:
        parse_version(v)
    except ReleaseError:
        raise BadOta(f"{name} {v!r} is not a version like 1.2.3") from None
    return v


def _word(v: object, name: str) -> str:
    if type(v) is not str or not 1 <= len(v) <= WORD_MAX or not all("a" <= c <= "z" or c == "-" for c in v):
        raise BadOta(f"{name} is not a word of 1..{WORD_MAX} lowercase letters")
    return v


def _count(v: object, name: str) -> int:
    if type(v) is not int or not 0 <= v <= COUNT_MAX:
        raise BadOta(f"{name} is not an integer 0..{COUNT_MAX}")
    return v


def parse_ota(m: object) -> dict[str, Any]:
    """The "ota" entry of a status map as {"version", "state", "target", "slot",
    "have", "n", "refused", "firmware"} (absent fields None), or BadOta saying which field
    is wrong. "v" and "st" are required; unknown keys ("w", the chunks asked
    for, and whatever newer hubs add) are ignored. Pure."""
    if type(m) is not dict:
        raise BadOta("ota is not a map")
    if "v" not in m or "st" not in m:
        raise BadOta("ota lacks v or st")
    out = {"version": _version(m["v"], "ota.v"), "state": _word(m["st"], "ota.st"),
           "target": None, "slot": None, "have": None, "n": None, "refused": None, "firmware": None}
    if m.get("to") is not None:
        out["target"] = _version(m["to"], "ota.to")
    if m.get("s") is not None:
        if m["s"] not in SLOTS:
            raise BadOta("ota.s is not a slot (a, b or -)")
        out["slot"] = m["s"]
    for key, name in (("have", "have"), ("n", "n")):
        if m.get(key) is not None:
            out[name] = _count(m[key], "ota." + key)
    if m.get("r") is not None:
        out["refused"] = _word(m["r"], "ota.r")
    if m.get("fv") is not None:  # the firmware image's own version (ESP32 OTA partitions)
        out["firmware"] = _version(m["fv"], "ota.fv")
    return out


SERIAL_MAX = 2 ** 32 - 1


def parse_cfg(m: object) -> dict[str, Any]:
    """The "cfg" entry of a status map as {"keys", "limits", "refused", "reason"} (refused
    and reason None when absent), or BadOta saying which field is wrong. Pure."""
    if type(m) is not dict:
        raise BadOta("cfg is not a map")
    out = {}
    for key, name in (("k", "keys"), ("l", "limits")):
        v = m.get(key)
        if type(v) is not int or not 0 <= v <= SERIAL_MAX:
            raise BadOta(f"cfg.{key} is not a serial 0..{SERIAL_MAX}")
        out[name] = v
    out["refused"] = _count(m["bad"], "cfg.bad") if m.get("bad") is not None else None
    out["reason"] = _word(m["r"], "cfg.r") if m.get("r") is not None else None
    return out


def record_cfg(store: Store, cur: Any, hub_hex: str, cfg: dict[str, Any]) -> None:
    """Write a parsed "cfg" entry into the hub's row (in the caller's transaction)."""
    cur.execute(store.q("UPDATE hubs SET cfg_keys = ?, cfg_limits = ?, cfg_refused = ?, cfg_reason = ? "
                        "WHERE hub = ?"),
                (cfg["keys"], cfg["limits"], cfg["refused"], cfg["reason"], hub_hex))


def record(store: Store, cur: Any, hub_hex: str, ota: dict[str, Any], now: float) -> None:
    """Write a parsed "ota" entry into the hub's row (its `hubs` row exists) and,
    when the running version differs from the one recorded, a row of its
    version history; the history keeps the newest HISTORY_MAX changes a hub.
    Runs in the caller's transaction (Store.status commits)."""
    cur.execute(store.q("SELECT version FROM hubs WHERE hub = ?"), (hub_hex,))
    before = cur.fetchone()[0]
    if before != ota["version"]:
        cur.execute(store.q("INSERT INTO hub_versions (hub, since, version, previous) VALUES (?, ?, ?, ?)"),
                    (hub_hex, now, ota["version"], before))
        cur.execute(store.q("DELETE FROM hub_versions WHERE hub = ? AND since < (SELECT since FROM hub_versions "
                              "WHERE hub = ? ORDER BY since DESC LIMIT 1 OFFSET ?)"),
                    (hub_hex, hub_hex, HISTORY_MAX - 1))
    cur.execute(store.q("UPDATE hubs SET version = ?, slot = ?, ota_state = ?, ota_target = ?, ota_have = ?, "
                          "ota_n = ?, ota_refused = ?, version_at = ?, firmware = ? WHERE hub = ?"),
                (ota["version"], ota["slot"], ota["state"], ota["target"], ota["have"], ota["n"], ota["refused"],
                 now, ota["firmware"], hub_hex))


FLEET_KEYS = ("hub", "version", "slot", "ota_state", "ota_target", "ota_have", "ota_n", "ota_refused", "version_at",
              "last_seen", "cfg_keys", "cfg_limits", "cfg_refused", "cfg_reason", "firmware")


def fleet(store: Queryable) -> list[dict[str, Any]]:
    """Every hub with what it last reported running (None before its first
    "ota" entry), its update state and its last contact (batch or status)."""
    cur = store.conn.cursor()
    cur.execute("SELECT " + ", ".join(FLEET_KEYS) + " FROM hubs ORDER BY hub")
    out = [dict(zip(FLEET_KEYS, r)) for r in cur.fetchall()]
    store.conn.commit()
    return out


def history(store: Queryable, hub_hex: str | None = None) -> list[dict[str, Any]]:
    """Version changes [{"hub", "since", "version", "previous"}], oldest first."""
    sql, args = "SELECT hub, since, version, previous FROM hub_versions", ()
    if hub_hex is not None:
        sql, args = sql + " WHERE hub = ?", (hub_hex,)
    cur = store.conn.cursor()
    cur.execute(store.q(sql + " ORDER BY hub, since"), args)
    out = [{"hub": h, "since": s, "version": v, "previous": p} for h, s, v, p in cur.fetchall()]
    store.conn.commit()
    return out


def utc_text(t: float) -> str:
    """A receiver time (seconds since 1970) as UTC text."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + " UTC"


def _when(t: float | None, now: float) -> str:
    if t is None:
        return "-"
    s = max(0, int(now - t))
    ago = f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h" if s < 172800 else \
        f"{s // 86400} d"
    return f"{utc_text(t)} ({ago} ago)"


def fleet_table(rows: list[dict[str, Any]], now: float) -> list[str]:
    """Lines of a human table of fleet() rows (times in UTC, with how long ago)."""
    head = ("hub", "version", "slot", "update", "config", "last contact")
    body = []
    for r in rows:
        upd = r["ota_state"] or "-"
        if r["ota_target"]:
            upd += " -> " + r["ota_target"]
        if r["ota_n"]:
            upd += f" {r['ota_have'] or 0}/{r['ota_n']}"
        if r["ota_refused"]:
            upd += f" (refused: {r['ota_refused']})"
        cfg = "-"
        if r.get("cfg_keys") is not None:
            cfg = f"keys {r['cfg_keys']} limits {r['cfg_limits'] or '-'}"
            if r.get("cfg_refused"):
                cfg += f" ({r['cfg_refused']} refused: {r['cfg_reason'] or '?'})"
        ver = r["version"] or "?"
        if r.get("firmware"):
            ver += " fw " + r["firmware"]  # a board's firmware image, updated on its own
        body.append((r["hub"], ver, r["slot"] or "-", upd, cfg, _when(r["last_seen"], now)))
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head] + body]
