# The collector over hub.ble.native against the `bluetooth` stand-in, in
# both stack modes: the scenarios of issue 18 (connect, discover,
# subscribe, RACP backfill, a lost bond, a peer-started MTU exchange, two
# devices connecting at once) with the same collector code the bridge runs
# (tests/test_ble_e2e.py runs them over the bridge). On the BTstack mode
# the bonded kinds are refused in words, and the others collect.
# Both runtimes.

import asyncio
import os
import sys

sys.path.insert(0, (__file__.rsplit("/", 1)[0] if "/" in __file__ else ".") + "/fakebt")

from hub import profiles, state
from hub.ble.bonds import BondStore
from hub.collect import Collector
from hub.crypto import x25519
from hub.journal import Journal
from hub.seal import Sealer
from hub.store import Store
import bluetooth  # noqa: E402 - the stand-in
from hub.ble import native

MPY_HEAP = "512k"  # collector, journal, crypto and this file's bytecode live in the unix port's heap
GLU = b"\x01\xc0\x5a\x4b\x00\x00\x01"
GLU2 = b"\x01\xc0\x5a\x4b\x00\x00\x02"
HR = b"\x01\xc0\x5a\x4b\x00\x00\x08"
STATE_DIR = state.DIR
HR_DB = [(1, 5, b"\x0a\x18", [(3, 0x02, b"\x29\x2a", 0)]),
         (6, 9, b"\x0d\x18", [(8, 0x10, b"\x37\x2a", 9)])]


class Clock:
    def ticks_ms(self):
        return int(__import__("time").time() * 1000) & 0x3FFFFFFF

    def ticks_diff(self, a, b):
        return a - b

    def utc_ms(self):
        return None  # no clock to set on the devices


class Counter:
    n = 0

    def reserve(self):
        self.n += 1
        return self.n


def _glucose(seq, mgdl):
    return profiles.encode(0x2A18, {"flags": 2, "seq": seq, "time": (2026, 11, 29, 8, 0, 0),
                                    "conc": (mgdl, -5), "unit": "kg/L", "type": 1, "loc": 1})


def glucose_meter(addr, records):
    """A peer that answers a RACP report with its stored records, then "success"."""
    p = bluetooth.Peer(addr)
    p.records = records  # [(seq, mg/dL)]

    def on_write(ble, h, vh, data):
        if vh != 11 or not data or data[0] != 1:  # RACP: report stored records
            return
        first = data[3] | data[4] << 8 if len(data) >= 5 and data[1] == 3 else 0
        for seq, mgdl in p.records:
            if seq >= first:
                ble._later(18, (h, 8, memoryview(_glucose(seq, mgdl))))
        ble._later(19, (h, 11, memoryview(b"\x06\x00\x01\x01")))  # response: report, success
    p.on_write = on_write
    return p


def rig(mode, peers, devices):
    root = "/tmp/samband-conf-%s" % "".join("%02x" % b for b in os.urandom(4))
    os.mkdir(root)
    state.DIR = root + "/state"  # the devices' record numbers, per test (never the machine's /state)
    j = Journal(root=root + "/j", capacity=64 * 1024)
    s = Sealer(b"\x00\x00\x5a\x4d\x00\x01", b"\x07" * 32, (1, x25519.scalarmult_base(b"\x09" * 32)), Counter(),
               os.urandom, j.context)
    store = Store(j, s, Clock(), 1)
    ble = bluetooth.reset(mode, peers)
    native._schedule = bluetooth.schedule
    bonds = BondStore(root + "/bonds", b"k" * 32)
    central = native.Central(bonds)
    c = Collector(central, store, Clock(), [{"addr": a, "kind": k} for a, k in devices], bonds, log=lambda m: None,
                  state_dir=state.DIR)
    return ble, central, c, bonds


async def until(cond, what, steps=3000):
    # bounded by steps of 10 ms of the collector's own timers, not a timing assertion
    for _ in range(steps):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened: " + what)


def collect(c, scenario):
    async def main():
        task = asyncio.create_task(c.run())
        try:
            await scenario()
        finally:
            task.cancel()
            for t in c._tasks:
                t.cancel()
            await asyncio.sleep(0)
    try:
        asyncio.run(main())
    finally:
        state.DIR = STATE_DIR


def test_nimble_glucose_backfill_lost_bond_and_peer_mtu():
    meter = glucose_meter(GLU, [(1, 104), (2, 110), (3, 98)])
    meter.in_discovery = [("mtu",)]
    ble, central, c, bonds = rig("nimble", [meter], [(GLU, "glucose")])
    d = c.devices[GLU]

    async def scenario():
        await until(lambda: d.backfilled == 3, "the first backfill")
        assert d.subscribed and d.errors == 0, d.last_error
        assert (9, b"\x01\x00") in ble.writes and (12, b"\x02\x00") in ble.writes  # both CCCDs found
        assert bonds.get(GLU) is not None and d.conn.mtu == 185
        # the meter is reset: it forgets our bond, and has a new record
        meter.knows_us = False
        meter.records.append((4, 120))
        ble.drop(d.conn.handle)
        await until(lambda: d.bond_losses == 1 and d.backfilled == 4, "the backfill after the lost bond")
        assert d.disconnects == 1 and d.needs_pairing is False

    collect(c, scenario)
    assert ble.crashed == [] and central.irq_errors == 0 and d.readings >= 4


def test_two_devices_connect_at_once():
    _two_at_once("nimble", "glucose", [glucose_meter(GLU, [(1, 104)]), glucose_meter(GLU2, [(1, 99), (2, 101)])])
    _two_at_once("btstack", "hr", [bluetooth.Peer(GLU, HR_DB, adv=b"\x03\x03\x0d\x18"),
                                   bluetooth.Peer(GLU2, HR_DB, adv=b"\x03\x03\x0d\x18")])


def _two_at_once(mode, kind, peers):
    ble, central, c, bonds = rig(mode, peers, [(GLU, kind), (GLU2, kind)])
    a, b = c.devices[GLU], c.devices[GLU2]

    async def scenario():
        await until(lambda: a.subscribed and b.subscribed, "both subscribed")
        assert a.errors == 0 and b.errors == 0, (mode, a.last_error, b.last_error)
        assert a.conn.handle != b.conn.handle
        if kind == "glucose":
            await until(lambda: a.backfilled == 1 and b.backfilled == 2, "both backfills")
        else:
            ble.notify(b.conn.handle, 8, b"\x00\x3e")  # 62/min
            await until(lambda: b.hr is not None, "a heart rate")

    collect(c, scenario)
    assert ble.crashed == [] and central.irq_errors == 0, mode


def test_btstack_refuses_bonded_kinds_in_words_and_collects_the_rest():
    meter = glucose_meter(GLU, [(1, 104)])
    strap = bluetooth.Peer(HR, HR_DB, adv=b"\x03\x03\x0d\x18")
    ble, central, c, bonds = rig("btstack", [meter, strap], [(GLU, "glucose"), (HR, "hr")])
    g, h = c.devices[GLU], c.devices[HR]

    async def scenario():
        await until(lambda: h.subscribed and g.errors >= 1, "the strap subscribed, the meter refused")
        assert "cannot bond" in g.last_error, g.last_error
        assert not g.subscribed and g.readings == 0
        assert h.errors == 0, h.last_error

    collect(c, scenario)
    assert ble.crashed == [] and central.irq_errors == 0
