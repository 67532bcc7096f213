"""What each page shows, as plain dicts computed from the read-only queries.

Kept apart from the routes so that the numbers a page shows come from one
function that a test can call too; the templates only format them.
"""

from __future__ import annotations

import time
from typing import Any

from samband import reading_text
from samband.receiver.dashboard import agp, data, ecg

ECG_SECONDS = 10.0
LIVE_HORIZON_S = 14 * 24 * 3600


def ago(t: float | None, now: float) -> str:
    if t is None:
        return "never"
    s = max(0, int(now - t))
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    if s < 172800:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"


def local(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def hubs_page(db: data.Reader, now: float, offline_s: float) -> list[dict[str, Any]]:
    """Hubs with online/offline (no batch or status for offline_s, or an open hub-offline
    alert), and their devices with last contact, battery, open technical alerts and kinds."""
    open_alerts = [a for a in data.alerts(db, clinical=False) if a["cleared"] is None]
    hubs = []
    devs = data.devices(db)
    for h in data.hubs(db):
        off = any(a["kind"] == "hub-offline" and a["hub"] == h["hub"] for a in open_alerts)
        stale = h["last_seen"] is None or now - h["last_seen"] > offline_s
        h = dict(h, state="offline" if (off or stale) else "online", last=local(h["last_seen"]),
                 ago=ago(h["last_seen"], now), devices=[])
        for d in devs:
            if d["hub"] != h["hub"]:
                continue
            issues = sorted({a["kind"] for a in open_alerts if a["hub"] == d["hub"] and a["device"] == d["device"]})
            kinds = sorted({reading_text.name(c) for c in d["codes"]})
            h["devices"].append(dict(d, state=", ".join(issues) or "ok", last_text=local(d["last"]),
                                     ago=ago(d["last"], now), kinds=", ".join(kinds)))
        hubs.append(h)
    return hubs


def alert_rows(db: data.Reader, clinical: bool, now: float) -> list[dict[str, Any]]:
    out = []
    for a in data.alerts(db, clinical=clinical):
        text = a["detail"].get("text", "") if isinstance(a["detail"], dict) else ""
        out.append(dict(a, text=text, first=local(a["first_seen"]), last=local(a["last_seen"]),
                        state="cleared" if a["cleared"] else "open",
                        acked=(f"{a['acked_by']} at {local(a['acked_at'])}" if a["acked_at"] else "")))
    return out


def glucose_samples(rows: list[dict[str, Any]]) -> tuple[list[tuple[float, float]], dict[str, int]]:
    """(wall time, mg/dL) of stored glucose readings, and how many were left out and why
    (no time, a value that is not a number, an unknown unit): counted, never guessed."""
    out, left = [], {}
    for r in rows:
        t = data.wall_time(r)
        v = r.get("val")
        if t is None:
            left["no time"] = left.get("no time", 0) + 1
            continue
        if type(v) not in (int, float) or v != v:
            left["not a number"] = left.get("not a number", 0) + 1
            continue
        e = r.get("exp", 0) or 0
        try:
            mg = agp.to_mgdl(v * 10 ** e, r.get("unit"))
        except agp.GlucoseUnitError:
            left["unknown unit"] = left.get("unknown unit", 0) + 1
            continue
        out.append((t, mg))
    return out, left


def glucose(db: data.Reader, hub: str, dev: str) -> dict[str, Any] | None:
    rows = data.readings(db, hub, dev, data.GLUCOSE)
    if not rows:
        return None
    samples, left = glucose_samples(rows)
    s = agp.summary(samples)
    s["left_out"] = left
    # sensor wear is a CGM's measure; a meter's finger sticks are taken when someone takes them
    s["meter"] = any(r.get("mdc") != data.MDC_CGM for r in rows)
    if s["meter"]:
        s["active"] = None
    s["latest"] = reading_text.value(rows[-1])
    return s


def ecg_view(db: data.Reader, hub: str, dev: str) -> dict[str, Any] | None:
    frames = data.readings(db, hub, dev, (data.MDC_ECG,), limit=60, newest_first=True)
    if not frames:
        return None
    samples, start = ecg.strip(frames, ECG_SECONDS)
    return {"samples": samples, "start": local(start) if start is not None else "-", "frames": len(frames),
            "rate": (1e6 / frames[0]["period"]) if frames[0].get("period") else None}


def _number(r: dict[str, Any], i: int | None = None) -> float | None:
    v = r.get("val")
    if i is not None:
        v = v[i] if isinstance(v, list) and len(v) > i else None
    if type(v) not in (int, float) or v != v:
        return None
    e = r.get("exp", 0) or 0
    return v * 10 ** e


def trends(db: data.Reader, hub: str, dev: str) -> list[dict[str, Any]]:
    out = []
    for label, codes in data.TRENDS:
        rows = data.readings(db, hub, dev, codes)
        if not rows:
            continue
        timed = [(data.wall_time(r), r) for r in rows]
        timed = [(t, r) for t, r in timed if t is not None]
        if timed:
            end = timed[-1][0]
            timed = [(t, r) for t, r in timed if t > end - LIVE_HORIZON_S]
        if codes == (data.BP,):
            series = [[(t, _number(r, i)) for t, r in timed if _number(r, i) is not None] for i in (0, 1)]
        else:
            series = [[(t, _number(r)) for t, r in timed if _number(r) is not None]]
        out.append({"label": label, "latest": reading_text.value(rows[-1]), "n": len(rows),
                    "when": local(rows[-1]["received"]), "series": series})
    return out


def recent(db: data.Reader, hub: str, dev: str, n: int = 15) -> list[dict[str, Any]]:
    rows = db.rows("SELECT reading, received FROM readings WHERE hub = ? AND device = ? AND dup_of IS NULL "
                   "AND mdc != ? ORDER BY seq DESC LIMIT %d" % n, (hub, dev, data.MDC_ECG))
    import json
    out = []
    for js, rec in rows:
        r = json.loads(js)
        taken = data.wall_time(r)
        out.append({"when": local(rec), "taken": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(taken))
                    if taken is not None else "-", "what": reading_text.name(r.get("mdc")),
                    "value": reading_text.value(r), "alarm": r.get("prio") == 1})
    return out
