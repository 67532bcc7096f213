# The collector's handling of what devices send, without a radio: bad
# payloads and unknown handles are counted and never stop collection,
# good ones become sealed journal records, alarms commit at once and wake
# the uplink. Both runtimes (the firmware's own journal and sealer).

import os

from hub import alarms, profiles, reading
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


class Counter:
    n = 0

    def reserve(self):
        self.n += 1
        return self.n


class Central:
    def __init__(self):
        self.events = Fifo(16)


def _rig():
    root = "/tmp/samband-collect-%s" % "".join("%02x" % b for b in os.urandom(4))
    os.mkdir(root)
    j = Journal(root=root + "/j", capacity=64 * 1024)
    s = Sealer(b"\x00\x00\x5a\x4d\x00\x01", b"\x07" * 32, (1, x25519.scalarmult_base(b"\x09" * 32)), Counter(),
               os.urandom, j.context)
    store = Store(j, s, Clock(), 1)
    c = Collector(Central(), store, Clock(), [{"addr": GLU, "kind": "glucose"}], log=lambda m: None)
    d = c.devices[GLU]
    d.handles = {8: 0x2A18}
    c.by_conn = {1: d}
    return c, d, j, store


def _glucose(seq, mgdl):
    return profiles.encode(0x2A18, {"flags": 2, "seq": seq, "time": (2026, 11, 29, 8, 0, 0),
                                    "conc": (mgdl, -5), "unit": "kg/L", "type": 1, "loc": 1})


def test_bad_payloads_and_unknown_handles_are_counted():
    c, d, j, store = _rig()
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
    assert d.readings == 1 and d.staged_rec == 7 and store.staged == 1
    store.commit()
    (q, prio, data, ctx), = list(j.pending())
    assert prio == reading.PRIO_ROUTINE and len(data) > 20 and b"mg/dL" not in data  # sealed, not plaintext


def test_alarm_commits_at_once_and_wakes_the_uplink():
    c, d, j, store = _rig()
    woken = []
    store.on_alarm = lambda: woken.append(1)
    c._event(("notify", 1, 8, _glucose(8, 40)))  # 40 mg/dL: level 2 hypoglycaemia
    assert woken == [1] and store.staged == 0  # durable without waiting for the commit task
    (q, prio, data, ctx), = list(j.pending())
    assert prio == reading.PRIO_ALARM


def test_alarm_thresholds():
    def r(mdc, val, unit, exp=0):
        return {reading.MDC: mdc, reading.VAL: val, reading.UNIT: unit, reading.EXP: exp}

    A, R = reading.PRIO_ALARM, reading.PRIO_ROUTINE
    assert alarms.classify(r(160184, 53, "mg/dL")) == A
    assert alarms.classify(r(160184, 104, "mg/dL")) == R
    assert alarms.classify(r(160184, 401, "mg/dL")) == A
    assert alarms.classify(r(160212, 25, "mmol/L", -1)) == A  # 2.5 mmol/L
    assert alarms.classify(r(150456, 87, "%")) == A
    assert alarms.classify(r(147842, 39, "/min")) == A
    assert alarms.classify(r(160184, float("nan"), "mg/dL")) == R
    assert alarms.classify(r(160184, [30, 40], "mg/dL")) == R  # runs are not judged here
    try:
        alarms.set_limits([((160184,), "mg/dL", 70, 180)])
        assert alarms.classify(r(160184, 65, "mg/dL")) == A
        assert alarms.classify(r(150456, 80, "%")) == R  # limits replaced, not added
    finally:
        alarms.set_limits(alarms.DEFAULTS)
