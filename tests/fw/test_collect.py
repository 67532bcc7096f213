# The collector's handling of what devices send, without a radio: bad
# payloads and unknown handles are counted and never stop collection,
# good ones become sealed journal records, alarms commit at once and wake
# the uplink. Both runtimes (the firmware's own journal and sealer).

import os

from fwtest import Central, MemCounter
from hub import alarms, kinds, profiles, reading
from hub.collect import Collector
from hub.ble import Fifo
from hub.crypto import x25519
from hub.journal import Journal
from hub.seal import Sealer
from hub.store import Store

MPY_HEAP = "256k"  # collector, journal and crypto bytecode live in the unix port's heap
GLU = b"\x01\xc0\x5a\x4b\x00\x00\x01"


class Clock:
    # the port's clock only (the unix port's time.ticks_ms does not exist on CPython)
    t = 1000

    def ticks_ms(self):
        return self.t

    def ticks_diff(self, a, b):
        return a - b

    def utc_ms(self):
        return 1795000000000


def _rig(root=None, kind="glucose"):
    if root is None:
        root = "/tmp/samband-collect-%s" % "".join("%02x" % b for b in os.urandom(4))
        os.mkdir(root)
    j = Journal(root=root + "/j", capacity=64 * 1024)
    s = Sealer(b"\x00\x00\x5a\x4d\x00\x01", b"\x07" * 32, (1, x25519.scalarmult_base(b"\x09" * 32)), MemCounter(),
               os.urandom, j.context)
    store = Store(j, s, Clock(), 1)
    c = Collector(Central(), store, Clock(), [{"addr": GLU, "kind": kind}], log=lambda m: None,
                  state_dir=root + "/state")
    d = c.devices[GLU]
    d.handles = {8: kinds.get(kind).RECORDS or 0x2A18, 9: 0x2A34, 10: 0x2A52, 11: 0x2A35}
    c.by_conn = {1: d}
    return c, d, j, store, root


def _glucose(seq, mgdl):
    return profiles.encode(0x2A18, {"flags": 2, "seq": seq, "time": (2026, 11, 29, 8, 0, 0),
                                    "conc": (mgdl, -5), "unit": "kg/L", "type": 1, "loc": 1})


def test_bad_payloads_and_unknown_handles_are_counted():
    c, d, j, store, root = _rig()
    good = _glucose(7, 104)
    c._event(("notify", 1, 8, good[:5]))       # truncated
    c._event(("notify", 1, 8, b""))             # empty
    c._event(("notify", 1, 99, good))          # a handle the device never offered
    c._event(("notify", 42, 8, good))          # a connection nobody owns
    assert d.bad_payloads == 2 and c.bad_payloads == 2
    assert "Glucose Measurement" in d.last_error and "byte" in d.last_error
    assert c.unknown_handles == 2
    assert store.staged == 0
    c._event(("notify", 1, 8, good))           # collection goes on
    assert d.readings == 1 and d.fresh.has(7) and store.staged == 1
    store.commit()
    (q, prio, data, ctx), = list(j.pending())
    assert prio == reading.PRIO_ROUTINE and len(data) > 20 and b"mg/dL" not in data  # sealed, not plaintext


def test_alarm_commits_at_once_and_wakes_the_uplink():
    c, d, j, store, root = _rig()
    woken = []
    store.on_alarm = lambda: woken.append(1)
    c._event(("notify", 1, 8, _glucose(8, 40)))  # 40 mg/dL: level 2 hypoglycaemia
    assert woken == [1] and store.staged == 0  # durable without waiting for the commit task
    (q, prio, data, ctx), = list(j.pending())
    assert prio == reading.PRIO_ALARM


def test_rr_intervals_are_stored_only_when_provisioned():
    # heart rate 75/min with two RR intervals: the rate goes into the summary, the
    # intervals are a reading of their own only with keep_rr (config "keep_rr": true)
    for keep in (False, True):
        c, d, j, store, root = _rig(kind="hr")
        assert c.keep_rr is False  # the default
        c.keep_rr = keep
        d.handles[12] = 0x2A37
        c._event(("notify", 1, 12, bytes.fromhex("104b04043804")))
        assert d.bad_payloads == 0 and store.staged == (1 if keep else 0), (keep, store.staged)


def test_alarm_thresholds():
    def r(mdc, val, unit, exp=0):
        return {reading.MDC: mdc, reading.VAL: val, reading.UNIT: unit, reading.EXP: exp}

    A, R = reading.PRIO_ALARM, reading.PRIO_ROUTINE
    glucose, plx, hr = kinds.get("glucose").LIMITS, kinds.get("plx").LIMITS, kinds.get("hr").LIMITS
    assert alarms.classify(r(160184, 53, "mg/dL"), glucose) == A
    assert alarms.classify(r(160184, 104, "mg/dL"), glucose) == R
    assert alarms.classify(r(160184, 401, "mg/dL"), glucose) == A
    assert alarms.classify(r(160212, 25, "mmol/L", -1), kinds.get("cgm").LIMITS) == A  # 2.5 mmol/L
    assert alarms.classify(r(150456, 87, "%"), plx) == A
    assert alarms.classify(r(147842, 39, "/min"), hr) == A
    assert alarms.classify(r(147842, 39, "/min"), kinds.get("polar").LIMITS) == A
    assert alarms.classify(r(147842, 39, "/min")) == R  # no limits given, none provisioned: not an alarm
    assert alarms.classify(r(160184, float("nan"), "mg/dL"), glucose) == R
    assert alarms.classify(r(160184, [30, 40], "mg/dL"), glucose) == R  # runs are not judged here
    try:
        alarms.set_limits([((160184,), "mg/dL", 70, 180)])
        assert alarms.classify(r(160184, 65, "mg/dL"), glucose) == A
        assert alarms.classify(r(160184, 190, "mg/dL"), glucose) == A
        assert alarms.classify(r(160184, 53, "mg/dL")) == A  # the patient's limits apply to any kind
        assert alarms.classify(r(150456, 87, "%"), plx) == A  # codes the patient's limits do not name keep defaults
    finally:
        alarms.set_limits([])


def test_a_device_task_outlives_any_error():
    # A MemoryError (not a ValueError) once ended a CGM's task for good: it was never heard again.
    import asyncio
    c, d, j, store, root = _rig()
    calls = []
    third = asyncio.Event()

    class Central:
        events = Fifo(16)

        async def connect(self, addr):
            calls.append(addr)
            if len(calls) == 1:
                raise MemoryError("memory allocation failed, allocating 1280 bytes")
            if len(calls) == 2:
                raise KeyError("nobody foresaw this")
            third.set()
            await asyncio.sleep(3600)

    c.central = Central()

    async def main():
        task = asyncio.create_task(d.run())

        async def advertise():
            while True:
                d.seen.set()
                await asyncio.sleep(0.05)

        adv = asyncio.create_task(advertise())
        await asyncio.wait_for(third.wait(), 30)
        task.cancel()
        adv.cancel()
        await asyncio.sleep(0)

    asyncio.run(main())
    assert len(calls) == 3 and d.errors == 2
    assert d.last_error.startswith("KeyError") and d.conn is None


def test_a_session_that_ends_unloads_the_codecs_no_connected_device_needs():
    import asyncio
    c, d, j, store, root = _rig()

    class Conn:
        def __init__(self, handle):
            self.handle = handle

        async def disconnect(self):
            pass

    cuff = c.add(b"\x00\xc0\x00\x00\x00\x00\x02", "bp")
    cuff.handles = {20: 0x2A35}
    cuff.conn, d.conn = Conn(2), Conn(1)
    c.by_conn[2] = cuff

    def pressure(sys_mmhg):
        return profiles.encode(0x2A35, {"flags": 0, "sys": (sys_mmhg, 0), "dia": (79, 0), "map": (93, 0)})

    c._event(("notify", 1, 8, _glucose(1, 100)))
    c._event(("notify", 2, 20, pressure(121)))
    assert d.readings == 1 and cuff.readings == 1 and c.bad_payloads == 0
    assert "glucose" in profiles.loaded() and "blood_pressure" in profiles.loaded()
    asyncio.run(cuff._close())  # the cuff's session ends; the meter stays connected
    assert "blood_pressure" not in profiles.loaded() and "glucose" in profiles.loaded()
    cuff.conn = Conn(3)  # it connects again: its codec loads with its first payload
    c.by_conn[3] = cuff
    c._event(("notify", 3, 20, pressure(120)))
    assert cuff.readings == 2 and c.bad_payloads == 0 and "blood_pressure" in profiles.loaded()
    asyncio.run(cuff._close())
    asyncio.run(d._close())
    assert [m for m in profiles.loaded() if m in ("glucose", "blood_pressure", "battery", "devinfo")] == []
    store.commit()
    assert j.count() == 3  # every reading kept


def test_a_kinds_codecs_are_loaded_before_it_is_told_to_send():
    # An indication is confirmed on receipt: a codec that could not load when the measurement
    # arrives would lose it, so the session loads it before it subscribes (profiles.load).
    import asyncio
    from hub.ble import BleError, Char, Service
    c, d, j, store, root = _rig(kind="thermo")
    profiles.forget()
    seen = []

    class Conn:
        handle = 5

        async def exchange_mtu(self, mtu):
            return mtu

        async def discover(self):
            return [Service(0x1809, 1, 9, [Char(0x2A1C, 3, 0x20, 4), Char(0x2A1E, 6, 0x10, 7)])]

        async def subscribe(self, cccd, mode):
            seen.append((cccd, profiles.module_of(0x2A1C) in profiles.loaded()))
            raise BleError("enough")

        async def disconnect(self):
            pass

    async def connect(addr):
        return Conn()

    c.central.connect = connect
    try:
        asyncio.run(d._session())
    except BleError:
        pass
    assert seen == [(4, True)]


# ------------------------------------------------ record numbers and backfill

class Ch:
    handle = 10


class Meter:
    """A glucose meter's side of RACP: answers a report request at once with its
    records (numbers in the meter's order) and the response, through the collector."""

    def __init__(self, c, records):
        self.c = c
        self.records = records
        self.requests = []

    async def write(self, handle, data, response=True):
        from hub.profiles import racp
        f = racp.parse_racp(data)
        self.requests.append(f)
        sel = self.records if f["operator"] == racp.ALL else [n for n in self.records if n >= f["value"]]
        for n in sel:
            self.c._event(("notify", 1, 8, _glucose(n, 100)))
        code = racp.SUCCESS if sel else racp.NO_RECORDS
        self.c._event(("indicate", 1, 10, racp.encode_racp({"op": racp.RESPONSE, "request": racp.REPORT,
                                                            "code": code})))


def _backfill(c, d, meter):
    import asyncio
    asyncio.run(d._backfill(meter, Ch()))


def _stored(j):
    return len(list(j.pending()))


def test_an_early_new_record_does_not_hide_older_ones():
    # The meter held records the hub had not fetched (out of range); one new record
    # arrives after subscribing, before the backfill: the backfill still asks from
    # the lowest number the hub lacks, and the new record is not stored twice.
    from hub.profiles import racp
    c, d, j, store, root = _rig()
    _backfill(c, d, Meter(c, list(range(1, 21))))
    assert d.recs.low == 21 and _stored(j) == 20
    c._event(("notify", 1, 8, _glucose(51, 100)))  # newer, early
    meter = Meter(c, list(range(1, 52)))
    _backfill(c, d, meter)
    f = meter.requests[0]
    assert f["operator"] == racp.GE and f["value"] == 21, f
    assert _stored(j) == 51 and d.duplicates == 1
    assert d.recs.lowest_missing() == 52 and d.recs.gaps() == 0 and store.staged == 0
    assert d.stats()["last_rec"] == 51


def test_gaps_from_out_of_order_notifications_are_fetched_and_settled():
    from hub.profiles import racp
    c, d, j, store, root = _rig()
    _backfill(c, d, Meter(c, [1, 2, 3, 4, 5]))
    for n in (12, 8, 9):  # out of order, two gaps: 6..7 and 10..11
        c._event(("notify", 1, 8, _glucose(n, 100)))
    assert d.gaps() == 2 and d.lowest_missing() == 6
    store.flush()
    assert d.recs.ranges == [8, 10, 12, 13] and d.fresh.ranges == []
    # the meter deleted record 7: a completed report from 6 settles it
    meter = Meter(c, [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12])
    _backfill(c, d, meter)
    assert meter.requests[0]["operator"] == racp.GE and meter.requests[0]["value"] == 6
    assert d.recs.low == 13 and d.recs.ranges == [] and d.duplicates == 3 and _stored(j) == 5 + 3 + 3


def test_record_numbers_are_durable_only_after_their_commit():
    c, d, j, store, root = _rig()
    _backfill(c, d, Meter(c, [1, 2, 3]))
    c._event(("notify", 1, 8, _glucose(4, 100)))
    c._event(("notify", 1, 8, _glucose(6, 100)))
    # a power cut now: the journal may not keep 4 and 6, so the hub must not remember them
    j.close()
    c2, d2, j2, store2, _ = _rig(root)
    assert d2.recs.low == 4 and d2.recs.ranges == [] and d2.lowest_missing() == 4
    c2._event(("notify", 1, 8, _glucose(6, 100)))
    store2.flush()
    j2.close()
    c3, d3, j3, store3, _ = _rig(root)
    assert d3.recs.low == 4 and d3.recs.ranges == [6, 7]


def test_a_record_the_journal_refused_is_fetched_again():
    # The journal has no room for record 4 (hub/store.py: a device-backed reading is not
    # held): the hub does not remember it as stored, so the next report asks from 4.
    from hub.journal import JournalRefused
    from hub.profiles import racp
    c, d, j, store, root = _rig()
    _backfill(c, d, Meter(c, [1, 2, 3]))

    def refuse(make, prio, again=False):
        raise JournalRefused("full", "journal full")

    j.stage = refuse
    c._event(("notify", 1, 8, _glucose(4, 100)))  # never raises to the collector
    del j.stage
    c._event(("notify", 1, 8, _glucose(5, 100)))
    store.flush()
    assert store.refused == 1 and store.held == [] and d.lowest_missing() == 4 and _stored(j) == 4
    meter = Meter(c, [1, 2, 3, 4, 5])
    _backfill(c, d, meter)
    assert meter.requests[0]["operator"] == racp.GE and meter.requests[0]["value"] == 4
    assert _stored(j) == 5 and d.recs.low == 6 and d.duplicates == 1


def test_backfill_across_the_16_bit_wrap():
    from hub.profiles import racp
    c, d, j, store, root = _rig()
    _backfill(c, d, Meter(c, [65530, 65531, 65532, 65533]))
    assert d.recs.low == 65534
    c._event(("notify", 1, 8, _glucose(2, 100)))  # after the wrap, early: extended to 65538
    assert d.fresh.ranges == [65538, 65539]
    meter = Meter(c, [65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2])
    _backfill(c, d, meter)
    # ">= 65534" would miss 0 and 1 on a meter comparing 16-bit numbers: ask for all
    assert meter.requests[0]["operator"] == racp.ALL
    assert d.recs.low == 65539 and d.recs.ranges == [] and _stored(j) == 4 + 1 + 4
    assert d.duplicates == 5  # 65530..65533 and 2 again, dropped
    c._event(("notify", 1, 8, _glucose(3, 100)))
    store.flush()
    assert d.recs.low == 65540


def test_an_indicated_measurement_is_durable_when_handled():
    # The cuff deleted it once the stack confirmed it: the hub's copy must be on flash
    # before the collector moves on, not within the group-commit window.
    c, d, j, store, root = _rig(kind="bp")
    bp = profiles.encode(0x2A35, {"flags": 0x1E, "sys": (121, 0), "dia": (79, 0), "map": (93, 0),
                                  "time": (2026, 11, 29, 8, 0, 0), "pulse": (66, 0), "user": 1, "status": 0})
    commits = store.commits
    c._event(("indicate", 1, 11, bp))
    assert store.staged == 0 and store.commits == commits + 1 and _stored(j) >= 1
    n = _stored(j)
    c._event(("notify", 1, 11, bp))  # the same bytes notified: group commit
    assert store.staged >= 1 and _stored(j) == n


def test_the_store_times_commits_and_tells_after_commit():
    from hub.store import BACKED_MS, LIVE_MS
    c, d, j, store, root = _rig()
    told = []
    store.after_commit.append(lambda: told.append((store.staged, d.recs.has(1))))
    clock = store.port
    clock.t = 5000
    c._event(("notify", 1, 8, _glucose(1, 100)))  # the meter keeps it: may wait for a group
    assert store.staged == 1 and not store.due()
    clock.t += LIVE_MS
    assert not store.due()
    c.telemetry(GLU, 1024 << 16 | 2, 1)  # only the hub has it: within LIVE_MS
    clock.t += LIVE_MS - 1
    assert not store.due()
    clock.t += 1
    assert store.due()
    store.flush()
    assert told == [(0, True)] and not store.due()  # remembered only once durable
    c._event(("notify", 1, 8, _glucose(2, 100)))
    clock.t += BACKED_MS
    assert store.due()


class TimeConn:
    """A device's Current Time characteristic: read gives its clock, write sets it."""

    def __init__(self, value):
        self.value = value
        self.written = []

    async def read(self, handle):
        return self.value

    async def write(self, handle, data, response=True):
        self.written.append(data)


def test_the_device_clock_is_read_before_the_hub_sets_it():
    # the coincident time stamp the receiver corrects this device's times from (timeline.py)
    import asyncio
    from hub.ble import Char, Service
    from hub.collect import CLOCK_FAULT, CLOCK_READ, CLOCK_WRITTEN, MDC_HUB_DEVICE_CLOCK
    from hub.profiles import timefmt
    c, d, j, store, root = _rig()
    put = store.put
    stamps = []

    def spy(p, dev, prio=0, backed=False, now=False):
        if p.get(reading.MDC) == MDC_HUB_DEVICE_CLOCK:
            stamps.append((p[reading.VAL], p.get(reading.DTS), p.get(reading.CTX)))
        return put(p, dev, prio, backed, now)

    def session(value, props):
        del stamps[:]
        conn = TimeConn(value)
        asyncio.run(d._set_clock(conn, [Service(0x1805, 1, 9, [Char(0x2A2B, 12, props, 0)])]))
        return conn

    store.put = spy
    wrong = 1795000000 + 3 * 3600 + 12 * 60  # the hub's UTC is 1795000000000 ms; the meter 3 h 12 min ahead
    conn = session(timefmt.current_time_at(wrong, 128), 0x02 | 0x08)
    assert stamps == [(CLOCK_READ, wrong, {"ms": 500}), (CLOCK_WRITTEN, 1795000000, {"ms": 0})]
    assert timefmt.epoch(timefmt.parse_current_time(conn.written[0])["time"]) == 1795000000
    never = profiles.encode(0x2A2B, {"time": (0, 0, 0, 0, 0, 0), "dow": 0, "frac256": 0, "adjust": 0})
    conn = session(never, 0x02)  # never set (year 0), not writable: a time fault, left alone
    assert stamps == [(CLOCK_FAULT, None, None)] and conn.written == []
