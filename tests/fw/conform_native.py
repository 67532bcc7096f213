# The conformance scenarios (ble_scenarios.py) over hub.ble.native, against
# the `bluetooth` stack double (fakebt/bluetooth.py) in NimBLE or BTstack mode:
#   micropython conform_native.py MODE SCENARIO      (the unix port; or CPython)
# runs the whole collector (hub.collect) on a journal and prints the outcome
# as one JSON line after a record separator; tests/test_ble_conformance.py
# judges it with ble_scenarios.check, as it judges the bridge's.
#
# Each emulated device is a fakebt Peer given the kind's GATT table and what
# the device does about writes (a meter answers RACP, a thermometer indicates
# what it holds once indications are enabled), built from the scenario's
# device options, so that the bridge's bumble devices and these behave alike.

import asyncio
import json
import os
import sys

sys.path.insert(0, (__file__.rsplit("/", 1)[0] if "/" in __file__ else ".") + "/fakebt")

import ble_scenarios as bs  # noqa: E402
from fwtest import MemCounter, rmtree  # noqa: E402
import bluetooth  # noqa: E402 - the stand-in
from hub import profiles, state  # noqa: E402
from hub.ble import native  # noqa: E402
from hub.ble.bonds import BondStore  # noqa: E402
from hub.collect import Collector  # noqa: E402
from hub.crypto import x25519  # noqa: E402
from hub.journal import Journal  # noqa: E402
from hub.seal import Sealer  # noqa: E402
from hub.store import Store  # noqa: E402

SEP = "\x1e"
STEPS_10MS = 3000  # how long a wait may last, in 10 ms steps of the collector's own timers

# (start, end, service UUID LE, [(value handle, props, UUID LE, CCCD or 0)]), as fakebt.GLUCOSE_DB
THERMO_DB = [(1, 5, b"\x0a\x18", [(3, 0x02, b"\x29\x2a", 0)]),                                 # DIS: manufacturer
             (6, 9, b"\x0f\x18", [(8, 0x12, b"\x19\x2a", 9)]),                                  # battery level
             (10, 16, b"\x09\x18", [(12, 0x20, b"\x1c\x2a", 13), (15, 0x10, b"\x1e\x2a", 16)])]  # HTS: meas, interim
GLU_MEAS, GLU_MEAS_CCCD, GLU_RACP, GLU_RACP_CCCD = 8, 9, 11, 12
TEMP_MEAS, TEMP_MEAS_CCCD, TEMP_INTERIM, TEMP_INTERIM_CCCD = 12, 13, 15, 16


class Clock:
    def ticks_ms(self):
        return int(__import__("time").time() * 1000) & 0x3FFFFFFF

    def ticks_diff(self, a, b):
        return a - b

    def utc_ms(self):
        return None  # no clock to set on the devices


def _glucose(seq):
    return profiles.encode(0x2A18, {"flags": 2, "seq": seq, "time": (2026, 11, 29, 8, 0, 0),
                                    "conc": (100 + seq % 40, -5), "unit": "kg/L", "type": 1, "loc": 1})


def _temp(i, interim=False):
    return profiles.encode(0x2A1E if interim else 0x2A1C,
                           {"flags": 0x06, "temp": (3670 + i % 30, -2), "time": (2026, 11, 29, 8, 0, 0), "type": 6})


class Emulated:
    """One scenario device as a fakebt Peer, and what it does (measure)."""

    def __init__(self, spec):
        self.spec = spec
        self.kind = spec["kind"]
        glucose = self.kind == "glucose"
        self.peer = p = bluetooth.Peer(bs.addr7(spec["address"]), None if glucose else THERMO_DB,
                                       {3: b"Acme"} if glucose else {3: b"Acme", 8: b"\x57"},
                                       adv=b"\x03\x03\x08\x18" if glucose else b"\x03\x03\x09\x18")
        if spec.get("peer_mtu"):
            p.mtu = spec["peer_mtu"]
            p.in_discovery = [("mtu",)]
        self.records = list(range(1, spec.get("records", 0) + 1))
        self.held = [_temp(i) for i in range(spec.get("stored", 0))]  # kept until indicated
        self.cccd = {}  # (link, CCCD handle) -> what the hub enabled: it sends only what was asked for
        self.i = 0
        p.on_write = self.on_write

    def on(self, h, cccd, bit):
        return self.cccd.get((h, cccd), 0) & bit

    def on_write(self, ble, h, vh, data):
        if vh in ((GLU_MEAS_CCCD, GLU_RACP_CCCD) if self.kind == "glucose" else (TEMP_MEAS_CCCD, TEMP_INTERIM_CCCD)):
            self.cccd[(h, vh)] = data[0] if data else 0
        if self.kind == "glucose":
            if vh != GLU_RACP or not data or data[0] != 1:  # RACP: report stored records
                return
            if not self.on(h, GLU_RACP_CCCD, 2):
                return  # (bumble's meter refuses the write: ATT 0xFD; this one never answers)
            first = data[3] | data[4] << 8 if len(data) >= 5 and data[1] == 3 else 0
            for seq in self.records:
                if seq >= first and self.on(h, GLU_MEAS_CCCD, 1):
                    ble._later(18, (h, GLU_MEAS, memoryview(_glucose(seq))))
            ble._later(19, (h, GLU_RACP, memoryview(b"\x06\x00\x01\x01")))  # response: report, success
        elif vh == TEMP_MEAS_CCCD:
            self._deliver(ble, h)

    def _deliver(self, ble, h):
        # the stack confirms an indication when the hub's IRQ handler has taken it: the device deletes it
        while self.on(h, TEMP_MEAS_CCCD, 2) and self.held:
            ble._later(19, (h, TEMP_MEAS, memoryview(self.held.pop(0))))

    def measure(self, ble, h, n):
        for _ in range(n):
            if self.kind == "glucose":
                seq = (self.records[-1] if self.records else 0) + 1
                self.records.append(seq)
                if h is not None and self.on(h, GLU_MEAS_CCCD, 1):
                    ble._later(18, (h, GLU_MEAS, memoryview(_glucose(seq))))
            else:
                self.i += 1
                if h is not None and self.on(h, TEMP_INTERIM_CCCD, 1):
                    for k in range(3):
                        ble._later(18, (h, TEMP_INTERIM, memoryview(_temp(self.i + k, True))))
                self.held.append(_temp(self.i))
                if h is not None:
                    self._deliver(ble, h)


async def until(cond):
    for _ in range(STEPS_10MS):
        if cond():
            return True
        await asyncio.sleep(0.01)
    return False


def run(mode, sid):
    s = bs.scenario(sid)
    root = "/tmp/samband-conform-%s" % "".join("%02x" % b for b in os.urandom(4))
    os.mkdir(root)
    saved_dir = state.DIR
    state.DIR = root + "/state"  # the devices' record numbers, per run (never the machine's /state)
    j = Journal(root=root + "/j", capacity=64 * 1024)
    sealer = Sealer(b"\x00\x00\x5a\x4d\x00\x01", b"\x07" * 32, (1, x25519.scalarmult_base(b"\x09" * 32)), MemCounter(),
                    os.urandom, j.context)
    store = Store(j, sealer, Clock(), 1)
    put = store.put
    stored = []  # (seq, addr7, reading) as the collector handed them to the store

    def keep(partial, dev, *a, **kw):
        seq = put(partial, dev, *a, **kw)
        stored.append((seq, bytes(dev), dict(partial)))
        return seq
    store.put = keep
    devs = {role: Emulated(spec) for role, spec in s["devices"].items()}
    ble = bluetooth.reset(mode, [e.peer for e in devs.values()])
    native._schedule = bluetooth.schedule
    bonds = BondStore(root + "/bonds", b"k" * 32)
    central = native.Central(bonds)
    c = Collector(central, store, Clock(), [{"addr": e.peer.addr, "kind": e.kind} for e in devs.values()], bonds,
                  log=lambda m: None, state_dir=state.DIR)

    def dev(role):
        return c.devices[devs[role].peer.addr]

    def handle(role):
        d = dev(role)
        return None if d.conn is None or not d.subscribed else d.conn.handle

    statuses = {}
    never = []  # what a wait never saw (the outcome then says how it differs)

    async def main():
        task = asyncio.create_task(c.run())
        commits = asyncio.create_task(store.run())  # the commit task, which app.main starts on a hub
        try:
            for step in bs.steps(s, mode):
                if step[0] == "until":
                    if not await until(lambda st=step: bs.reached(st[2], dev(st[1]).stats())):
                        never.append("%s %r" % (step[1], step[2]))
                        break
                elif step[0] == "measure":
                    devs[step[1]].measure(ble, handle(step[1]), step[2])
                elif step[0] == "forget_bond":
                    devs[step[1]].peer.knows_us = False
                elif step[0] == "drop_link":
                    ble.drop(dev(step[1]).conn.handle)
                else:
                    raise ValueError("unknown step %r" % (step,))
            if not never and not await until(lambda: bs.settled(s, mode, lambda r: dev(r).stats())):
                never.append("the expected status")
            await ble.settle()
            store.flush()
            for role in devs:
                statuses[role] = dev(role).stats()  # while connected (the link's MTU)
        finally:
            task.cancel()
            commits.cancel()
            for t in c._tasks:
                t.cancel()
            await asyncio.sleep(0)

    try:
        asyncio.run(main())
    finally:
        state.DIR = saved_dir
    on_flash = set(r[0] for r in j.records())
    lost = [seq for seq, _a, _r in stored if seq not in on_flash]
    got = bs.outcome(s, [(a, r) for _seq, a, r in stored if _seq in on_flash],
                     statuses,
                     {role: e.peer.mtu_started for role, e in devs.items()})
    j.close()
    rmtree(root)
    return {"outcome": got, "never": never, "not_on_flash": lost, "crashed": [repr(e) for e in ble.crashed],
            "irq_errors": central.irq_errors}


def main():
    out = run(sys.argv[1], sys.argv[2])
    print(SEP + json.dumps(out))


if __name__ == "__main__":
    main()
