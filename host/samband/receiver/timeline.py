"""One corrected timeline: every reading's hub UTC, and its device time corrected
for the device clock's offset (issue 14 item 1; docs/reading.md, "Time").

Hub UTC. A reading carries `hts` once the hub's clock is set; before that only
`mono` = [boot, ms since boot, 30 bits]. The hub reports the pair that dates
those: its clock-set and clock-jump telemetry (`hub.clock`, MDC 1024:48 and
1024:49) is a reading made right after the clock was set, so it carries both
(boot, mono) and the new UTC. The pair used for a boot is its latest set or jump
(the clock's own rules say that is the best time it has heard; a jump replaces
a worse source), else its earliest reading with `hts` (telemetry lost). A
reading of that boot without `hts` is then at pair_utc + (mono - pair_mono); the
receiver fills this in when the pair arrives, also for readings stored before
it (`utc_src` "clock-report"; "hub" when it came as `hts`). Error: the pair's
own uncertainty plus the crystal's drift over the gap (<= 200 ppm: 0.7 s/hour).
A boot with no pair of its own (it ended, by a reset, before the clock was known)
is dated through the boot anchors (MDC 1024:50, hub.clock.boot_anchor: where each
boot's mono sits on the board's reset-proof clock) from the nearest boot with a
pair, when no power-on came between (chain_pair); else it stays undated.

Device time. A device clock is wrong by an offset (never set, set by a person,
DST, drift). The offset is learnt the PHD way, from a coincident time stamp: the
device's clock and the hub's UTC at one instant. Two sources, best first:
  current-time   the hub reads the device's Current Time (0x2A2B) at each
                 connection before it sets that clock, and reports both (MDC
                 1024:5, val 1 = read, 2 = written by the hub, 0 = time fault).
                 Exact to the read's latency; used whenever the device has one.
  newest-record  no Current Time: per connection, the largest (device time -
                 hub receipt time) of the readings received in it. A device
                 time is never later than its receipt, so every reading gives
                 offset - age; the freshest (the measurement a cuff sends as it
                 takes it, the newest record of a meter) gives the offset. Its
                 error is that reading's age: a second for a device that sends
                 when it measures, hours for a meter whose newest record is old.
                 Used only when it proves the clock more than TRUST_MS (5 min)
                 off: ahead (no record is made after it is received), or behind
                 when that freshest reading has no record number (a measurement
                 sent as it is taken). A stored record that looks old may just
                 be old, so a meter's clock is not called slow from it, and a
                 clock within 5 min is believed (a slow clock and a record a few
                 minutes old look the same).
  as-reported    no stamp and no provable offset: the device's time as it
                 said it (its own zone offset `tzo` taken off, if it gave one).
  hub-receipt    the device gave no time (or a time fault): the hub's UTC.
Which clock stamped a record: the clock state of each stamp holds until the hub
writes the clock again; a written stamp's state starts at the write. Stamps are
tried newest first (only those the hub had before it received the reading); the
first whose corrected time fits its state's span and is not after the receipt
is taken. So a meter's stored records fetched after the hub has set its clock
are still corrected with the offset read just before the write.

Pure functions here; `settle()` at the end is the store's one call (one
transaction with the batch). Corrected times are milliseconds since 1970 UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from samband.receiver.store import Store

MDC_HUB_CLOCK_SET = 1024 << 16 | 48
MDC_HUB_CLOCK_JUMP = 1024 << 16 | 49
MDC_HUB_BOOT_RTC = 1024 << 16 | 50  # val [power_on, rtc ms]: hub.clock.boot_anchor
MDC_HUB_DEVICE_CONNECTED = 1024 << 16 | 2
MDC_HUB_DEVICE_CLOCK = 1024 << 16 | 5
CLOCK_FAULT, CLOCK_READ, CLOCK_WRITTEN = 0, 1, 2

UTC_SOURCES = ("hub", "clock-report")
METHODS = ("current-time", "newest-record", "as-reported", "hub-receipt")
TRUST_MS = 5 * 60000  # a device clock within this of the newest-record estimate is believed
MONO_WRAP = 1 << 30   # the hub's mono ms are ticks_ms & 0x3FFFFFFF
TOLERANCE_MS = 2000   # a read's latency, a device's whole seconds, a written clock's lost fraction

# A coincident time stamp: (hub UTC ms, device ms or None, CLOCK_* state).
Stamp = tuple[int, int | None, int]


def mono_delta(a: int, b: int) -> int:
    """a - b in ms for two 30-bit wrapping mono values less than 6 days apart."""
    d = (a - b) % MONO_WRAP
    return d - MONO_WRAP if d >= MONO_WRAP // 2 else d


def pick_pair(rows: Sequence[tuple[int, int, int, int]]) -> tuple[int, int] | None:
    """The (mono, utc) pair that dates one boot, from its readings that carry hts:
    rows [(seq, mdc, mono, hts)]. The latest clock set or jump, else the earliest."""
    clock = [r for r in rows if r[1] in (MDC_HUB_CLOCK_SET, MDC_HUB_CLOCK_JUMP)]
    r = max(clock) if clock else min(rows) if rows else None
    return None if r is None else (r[2], r[3])


def hub_utc(mono: int, pair: tuple[int, int]) -> int:
    """The hub's UTC (ms) at a mono of the pair's boot."""
    return pair[1] + mono_delta(mono, pair[0])


def chain_pair(boot: int, anchors: dict[int, tuple[int, int, bool]],
               pair_of: Callable[[int], tuple[int, int] | None]) -> tuple[int, int] | None:
    """A (mono, utc) pair for a boot that never knew the time, through the board's
    reset-proof clock: anchors {boot: (mono, rtc ms, power_on)}, pair_of(boot) -> its
    own (mono, utc) pair or None (asked only along the chain).
    The nearest boot with a pair, later or earlier, linked to this one by anchors of
    every boot between and no power-on among them (that would have restarted the
    clock); None when there is none. Error: the pair's, plus the RTC's drift over
    the gap (on an ESP32 the crystal's while running, the RTC oscillator's only
    through the resets themselves)."""
    a = anchors.get(boot)
    if a is None:
        return None
    for step in (1, -1):
        b = boot
        while True:
            # going forward, each later boot must have kept the clock; going back, this one
            nxt = b + step
            link = anchors.get(nxt)
            if link is None or (link[2] if step == 1 else anchors[b][2]):
                break
            b = nxt
            p = pair_of(b)
            if p is not None:
                pm, pu = p
                rtc_at_pair = link[1] + mono_delta(pm, link[0])
                return (a[0], pu - (rtc_at_pair - a[1]))
    return None


def stamp_of(utc: int, dts: int | None, val: object, ctx: object = None) -> Stamp:
    """A coincident time stamp (utc, device ms or None, state) from a MDC 1024:5 reading."""
    if val not in (CLOCK_READ, CLOCK_WRITTEN) or dts is None:
        return (utc, None, CLOCK_FAULT)
    ms = (ctx or {}).get("ms", 0) if isinstance(ctx, dict) else 0
    return (utc, dts * 1000 + (ms if isinstance(ms, int) and 0 <= ms < 1000 else 0), val)


def stamp_offset(dev_ms: int, received: int, stamps: Sequence[Stamp], tol: int = TOLERANCE_MS) -> int | None:
    """The device-clock offset (device - UTC, ms) of a device time dev_ms received at
    UTC `received`, from the device's stamps [(utc, device ms or None, state)] in
    time order; None when no stamp fits (see the top of this file)."""
    good = [s for s in stamps if s[1] is not None]
    for i in range(len(good) - 1, -1, -1):
        utc, dev, state = good[i]
        if utc > received + tol:
            continue
        off = dev - utc
        t = dev_ms - off
        if t > received + tol:
            continue
        if state == CLOCK_WRITTEN and t < utc - tol:
            continue  # made before this write: an older clock state stamped it
        end = next((s[0] for s in good[i + 1:] if s[2] == CLOCK_WRITTEN), None)
        if end is not None and t > end + tol:
            continue
        return off
    return None


def correct(rows: Iterable[Sequence[Any]], stamps: Sequence[Stamp]) -> dict[Any, tuple[int, str, int | None]]:
    """Corrected device times of one device's readings in the order the hub made them.
    rows: [(key, utc or None, dts seconds or None, is_session_start[, tzo minutes, has a
    record number])], stamps as in
    stamp_offset. Returns {key: (corrected ms, method, offset ms)}; a reading whose
    hub UTC is not known yet is left out (it is done when the pair arrives)."""
    out = {}
    session, est = [], {}
    sid = 0
    for row in rows:
        key, utc, dts, start = row[:4]
        if start:
            sid += 1
        session.append((key, utc, dts, sid, row[4] if len(row) > 4 else None))
        if utc is not None and dts is not None:
            d = dts * 1000 - utc
            if sid not in est or d > est[sid][0]:
                est[sid] = (d, len(row) > 5 and bool(row[5]))
    for key, utc, dts, sid, tzo in session:
        if utc is None:
            continue
        if dts is None:
            out[key] = (utc, "hub-receipt", None)
            continue
        off = stamp_offset(dts * 1000, utc, stamps)
        if off is not None:
            out[key] = (dts * 1000 - off, "current-time", off)
        elif est[sid][0] > TRUST_MS or (est[sid][0] < -TRUST_MS and not est[sid][1]):
            out[key] = (dts * 1000 - est[sid][0], "newest-record", est[sid][0])
        else:
            out[key] = (dts * 1000 - (tzo or 0) * 60000, "as-reported", None)
    return out


# ---------------------------------------------------------------- the store's side

def settle(store: Store, cur: Any, hub: str, new: Iterable[tuple[int, str, int | None, int]]) -> None:
    """After a batch's rows are inserted (same transaction): fill in the hub UTC of
    every reading of the batch's boots that lacks it, then (re)correct the device
    times of the devices touched. new: [(seq, device, boot, mdc)] of the rows inserted."""
    q = store.q
    boots = sorted({b for _, _, b, _ in new if b is not None})
    refill = {b for _, _, b, m in new if m in (MDC_HUB_CLOCK_SET, MDC_HUB_CLOCK_JUMP)}
    first = {}  # device -> lowest seq that needs correcting
    for _s, d, _b, _m in new:
        first[d] = min(first.get(d, _s), _s)
    chained, redo = set(), set()
    anchors = None
    if refill or any(m == MDC_HUB_BOOT_RTC for _, _, _, m in new):
        # a new pair or anchor may date other boots of the hub: those still waiting, and
        # (a jump) those dated through the chain from a boot whose pair has just changed
        cur.execute(q("SELECT DISTINCT boot FROM readings WHERE hub = ? AND utc IS NULL"), (hub,))
        chained = {r[0] for r in cur.fetchall() if r[0] is not None} - set(boots)
        anchors = _anchors(store, cur, hub)
        for b in refill:
            for step in (1, -1):
                n = b + step
                while (n in anchors and n - step in anchors and not anchors[max(n, n - step)][2]
                       and _boot_pair(store, cur, hub, n) is None):
                    redo.add(n)
                    n += step
        chained |= redo - set(boots)
    for boot in boots + sorted(chained):
        if boot in redo:  # no pair of its own, so no row with hts: every row is dated again
            cur.execute(q("SELECT seq, device, mono FROM readings WHERE hub = ? AND boot = ?"), (hub, boot))
        else:
            cur.execute(q("SELECT seq, device, mono FROM readings WHERE hub = ? AND boot = ? AND utc IS NULL"),
                        (hub, boot))  # the partial index readings_undated: no scan of the boot
        todo = cur.fetchall()
        if not todo and boot not in refill:
            continue  # the usual batch: everything dated, no new clock report
        pair = _boot_pair(store, cur, hub, boot)
        if pair is None and todo:  # a boot that never knew the time: chained to one that did
            if anchors is None:
                anchors = _anchors(store, cur, hub)
            pair = chain_pair(boot, anchors, lambda b: _boot_pair(store, cur, hub, b))
        if pair is None:
            continue
        if boot in refill:  # a new set or jump: what was dated by an older one is dated again
            cur.execute(q("SELECT seq, device, mono FROM readings WHERE hub = ? AND boot = ? "
                          "AND utc_src = 'clock-report'"), (hub, boot))
            todo += cur.fetchall()
        if todo:
            cur.executemany(q("UPDATE readings SET utc = ?, utc_src = 'clock-report' WHERE hub = ? AND seq = ?"),
                            [(hub_utc(mono, pair), hub, seq) for seq, _d, mono in todo])
            for seq, d, _m in todo:
                first[d] = min(first.get(d, seq), seq)
    for dev, lo in sorted(first.items()):
        _correct_device(store, cur, hub, dev, lo)


def _boot_pair(store: Store, cur: Any, hub: str, boot: int) -> tuple[int, int] | None:
    q = store.q
    cur.execute(q("SELECT seq, mdc, mono, hts FROM readings WHERE mdc IN (?, ?) AND hub = ? AND boot = ? "
                  "AND hts IS NOT NULL"), (MDC_HUB_CLOCK_SET, MDC_HUB_CLOCK_JUMP, hub, boot))
    rows = [tuple(r) for r in cur.fetchall()]
    if not rows:  # telemetry lost: the boot's earliest reading with hts
        cur.execute(q("SELECT seq, mdc, mono, hts FROM readings WHERE hub = ? AND boot = ? AND hts IS NOT NULL "
                      "ORDER BY seq LIMIT 1"), (hub, boot))
        rows = [tuple(r) for r in cur.fetchall()]
    return pick_pair(rows)


def _anchors(store: Store, cur: Any, hub: str) -> dict[int, tuple[int, int, bool]]:
    """{boot: (mono, rtc ms, power_on)} of the hub's boot anchors (one reading a boot)."""
    import json
    cur.execute(store.q("SELECT boot, mono, reading FROM readings WHERE mdc = ? AND hub = ? AND dup_of IS NULL"),
                (MDC_HUB_BOOT_RTC, hub))
    out = {}
    for boot, mono, js in cur.fetchall():
        v = json.loads(js).get("val")
        if boot is not None and isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) for x in v):
            out[boot] = (mono, v[1], bool(v[0]))
    return out


def _tzo_rec(js: str) -> tuple[int | None, bool]:
    """(tzo, has a record number) of a stored reading's JSON."""
    if '"tzo"' not in js and '"rec"' not in js:
        return (None, False)
    import json
    r = json.loads(js)
    t = r.get("tzo")
    return (t if isinstance(t, int) else None, r.get("rec") is not None)


def _correct_device(store: Store, cur: Any, hub: str, dev: str, lo: int | None) -> None:
    import json
    q = store.q
    # from the start of the session (connection) that holds the lowest seq touched
    cur.execute(q("SELECT max(seq) FROM readings WHERE hub = ? AND device = ? AND mdc = ? AND seq <= ?"),
                (hub, dev, MDC_HUB_DEVICE_CONNECTED, lo))
    start = cur.fetchone()[0]
    lo = lo if start is None else start
    cur.execute(q("SELECT seq, utc, dts, mdc, reading FROM readings WHERE hub = ? AND device = ? AND seq >= ? "
                  "AND dup_of IS NULL ORDER BY seq"), (hub, dev, lo))
    rows = [(seq, utc, dts, mdc == MDC_HUB_DEVICE_CONNECTED) + _tzo_rec(js)
            for seq, utc, dts, mdc, js in cur.fetchall()]
    cur.execute(q("SELECT utc, dts, reading FROM readings WHERE device = ? AND mdc = ? AND utc IS NOT NULL "
                  "AND dup_of IS NULL ORDER BY utc"), (dev, MDC_HUB_DEVICE_CLOCK))
    stamps = []
    for utc, dts, js in cur.fetchall():
        r = json.loads(js)
        stamps.append(stamp_of(utc, dts, r.get("val"), r.get("ctx")))
    fixed = correct(rows, stamps)
    if fixed:
        cur.executemany(q("UPDATE readings SET dtc = ?, dtc_method = ?, dtc_offset = ? WHERE hub = ? AND seq = ?"),
                        [(t, m, o, hub, seq) for seq, (t, m, o) in fixed.items()])
