"""The whole path under every fault at once, counted per device record.

Emulated devices that keep their records (a glucose meter and a CGM with
RACP; a blood-pressure cuff, a thermometer and a scale that keep a
measurement until it is confirmed) -> the BLE bridge -> a virtual hub (full
firmware from ROMFS, its flash a board's) -> a relay -> Mosquitto over TLS
-> the receiver -> SQLite. While the devices take measurements, the rig cuts
the hub's power every round and, on a schedule, kills the receiver,
restarts the broker, cuts the network, drops BLE links and takes devices
out of range. At the end, with every fault cleared, each record a device
made must be in the database exactly once (the receiver's view: duplicate
copies it recognised are kept aside, not shown). Streams the devices do not
keep (ECG, intermediate cuff pressures) are not counted: a hub without power
cannot hear them, on a board as here.

An indicated measurement (cuff, thermometer, scale) is confirmed by the BLE
stack on receipt and then deleted by the device, on every board's stack; the
hub commits it at once, but a cut between the stack's receipt and that commit
loses it - the window docs/ble.md measures (bench: indication_mpy). On this
rig that window is the virtual hub's scheduling on a loaded host, which can be
longer than the gap to the next cut. So the round waits until the hub has the
indicated measurement (in its journal or, already sent, in the database)
before it cuts: what is checked is that a measurement the hub has taken is
never lost nor doubled through every fault after it; the cuts still land
anywhere in the record-keeping devices' backfill, commits and batches.
"""

import collections
import random
import time

import pytest

from samband.receiver.store import open_store
from samband.rig.hubs import UID

ROUNDS = 40  # one power cut per round
SEED = 20261201

GLUCOSE, CGM, BP, THERMO, SCALE = (f"C0:5A:4B:00:01:0{i}" for i in range(1, 6))
SPECS = [
    {"kind": "glucose", "address": GLUCOSE, "records": 5},
    {"kind": "cgm", "address": CGM, "records": 3},
    {"kind": "bp", "address": BP, "stored": 1},
    {"kind": "thermo", "address": THERMO, "stored": 1},
    {"kind": "scale", "address": SCALE, "stored": 1},
]
GLUCOSE_CONC = {160184, 160188, 160192, 160196, 160200, 160204, 160208, 160212}
CGM_CONC = 160212
BP_MDC = 150020
TEMP_MDC = 188424  # type 6 (mouth)
WEIGHT_MDC = 188736


def named(addr):
    return addr + "/r"  # the emulated devices use random static addresses


class FaultRig:
    """The rig from the plugin's fixtures (docs/rig.md): emulated devices, the hub,
    the broker behind a bearer that can be cut, the receiver, the hub's power."""

    def __init__(self, root, devices, hub, broker, bearer, receiver, power):
        self.root = root
        self.broker = broker
        self.password = self.broker.add_hub(UID.hex())
        self.broker.start()
        self.bearer = bearer(self.broker)
        self.bridge = devices(SPECS)
        self.store = open_store(str(root / "receiver.db"))  # the receiver's, written from its thread
        # the test reads through a connection of its own: one SQLite connection used from two
        # threads interleaves their transactions (a commit here ended the receiver's mid-batch)
        self.view = open_store(str(root / "receiver.db"))
        self._receiver = receiver
        self.power = power
        self.rig = hub([{"addr": named(d["address"]), "kind": d["kind"], "name": ""} for d in SPECS], self.bridge,
                       root=root / "hub", heap="320k", romfs=True,
                       hub_config={"status_ms": 1000,
                                   "uplink": {"host": self.bearer.host, "port": self.bearer.port, "keepalive": 2,
                                              "batch_age_ms": 300, "status_ms": 2000}},
                       files={"/keys/ca.der": self.broker.ca_der.read_bytes(),
                              "/keys/mqtt.password": self.password.encode()})
        self.rx = None
        self.faults = collections.Counter()

    def start_receiver(self):
        self.rx = self._receiver(self.rig, self.broker, self.store)

    def measure(self, key, *args):
        s = self.bridge.sim(key)
        fn = s.tick if key == CGM else s.measure
        return self.bridge.call(fn(*args))

    def stop(self):
        """The hub and the receiver before the store they write (the fixtures then tear down the rest)."""
        for f in (self.rig.stop, lambda: self.rx and self.rx.stop(), self.store.close, self.view.close):
            try:
                f()
            except Exception as e:  # noqa: BLE001 - tear down all of it whatever one part says
                print("teardown:", e)

    def taken(self):
        """Per indicated kind, the device times of the measurements the hub has
        committed: in its journal, or already in the database."""
        from hub import reading as rd
        out = {"bp": set(), "thermo": set(), "scale": set()}
        want = {named(BP): ("bp", BP_MDC), named(THERMO): ("thermo", TEMP_MDC), named(SCALE): ("scale", WEIGHT_MDC)}
        for _seq, _prio, r, _err in self.rig.readings():
            n = rd.to_named(r) if r is not None else {}
            kind = want.get(n.get("dev"))
            if kind and n.get("mdc") == kind[1] and "dts" in n:
                out[kind[0]].add(n["dts"])
        for addr, (kind, mdc) in want.items():
            out[kind] |= {r["dts"] for r in self.view.readings(device=addr) if r["mdc"] == mdc and r.get("dts")}
        return out

    def wait_taken(self, made, timeout):
        """Until the hub has committed every indicated measurement made so far (1 stored before the run)."""
        end = time.monotonic() + timeout
        while True:
            have = {k: len(v) for k, v in self.taken().items()}
            if all(have[k] >= 1 + made[k] for k in have):
                return
            if time.monotonic() > end:
                got = self.taken()
                sims = {k: self.bridge.sim(a) for k, a in (("bp", BP), ("thermo", THERMO), ("scale", SCALE))}
                raise AssertionError(f"the hub did not take the indicated measurements: {have} of {dict(made)}; "
                                     f"device times {got}; devices keep "
                                     f"{ {k: len(s.store.items) for k, s in sims.items()} }, "
                                     f"bridge {self.bridge.stats}")
            time.sleep(0.2)

    def rows(self, addr, mdcs):
        # interim values (a thermometer's intermediate temperatures, same code) are progress
        # shown while measuring, not measurements the device keeps: not counted
        return [r for r in self.view.readings(device=named(addr))
                if r["mdc"] in mdcs and not (isinstance(r.get("ctx"), dict) and r["ctx"].get("interim"))]


@pytest.fixture
def frig(tmp_path, rig_devices, rig_hub, rig_broker, rig_bearer, rig_receiver, rig_power):
    f = FaultRig(tmp_path, rig_devices, rig_hub, rig_broker, rig_bearer, rig_receiver, rig_power)
    yield f
    f.stop()


# it counts records in the hub's journal as well as in the database (FaultRig.taken)
@pytest.mark.requires("flash-snapshot", "power", "bearer-faults")

def test_every_record_exactly_once_through_power_cuts_and_outages(frig):
    rnd = random.Random(SEED)
    rig = frig.rig
    frig.start_receiver()
    rig.start()
    rig.wait_status(lambda s: all(d.get("subscribed") for d in s.get("ble", {}).get("devices", []))
                    and len(s.get("ble", {}).get("devices", [])) == len(SPECS), 180, "every device subscribed")
    made = collections.Counter()
    boots = rig.hub.boots
    for i in range(ROUNDS):
        # the devices measure (each at most once a round: two identical readings in one
        # device second would be one record to the receiver, as they are to a clinician)
        frig.measure(GLUCOSE)
        made["glucose"] += 1
        frig.measure(CGM, 1)
        if i % 2 == 0:
            frig.measure(BP)
            made["bp"] += 1
        if i % 3 == 0:
            frig.measure(THERMO)
            made["thermo"] += 1
        if i % 4 == 0:
            frig.measure(SCALE)
            made["scale"] += 1
        # faults besides the power cut
        if i % 5 == 1:
            frig.rx.stop()
            frig.rx = None
            frig.faults["receiver kill"] += 1
        if i % 7 == 3:
            frig.broker.restart()
            frig.faults["broker restart"] += 1
        if i % 4 == 2:
            frig.bearer.cut()
            frig.faults["network cut"] += 1
        if i % 3 == 1:
            victim = rnd.choice([GLUCOSE, CGM, BP, THERMO, SCALE])
            frig.bridge.fault(victim, "drop_link")
            frig.faults["BLE drop"] += 1
        absent = None
        if i % 8 == 5:
            absent = rnd.choice([GLUCOSE, CGM, BP])
            frig.bridge.fault(absent, "silent", True)
            frig.bridge.fault(absent, "drop_link")
            frig.faults["device absence"] += 1
        frig.wait_taken(made, 60)
        time.sleep(rnd.uniform(0.3, 1.5))  # the cut lands anywhere: mid-backfill, mid-commit, mid-batch
        frig.power.cut(rig)
        frig.faults["power cut"] += 1
        boots += 1
        rig.hub.wait_boots(boots, 60)
        time.sleep(rnd.uniform(0.8, 2.0))
        if absent is not None:
            frig.bridge.fault(absent, "silent", False)
        frig.bearer.up()
        if frig.rx is None:
            frig.start_receiver()
    print("faults:", dict(frig.faults), "measurements:", dict(made))

    g = frig.bridge.sim(GLUCOSE)
    c = frig.bridge.sim(CGM)
    want = {
        "glucose": sorted(g.sequence_numbers),
        "cgm": sorted(r["toff"] for r in c.recs),
        "bp": 1 + made["bp"], "thermo": 1 + made["thermo"], "scale": 1 + made["scale"],
    }

    def got():
        return {
            "glucose": sorted(r["rec"] for r in frig.rows(GLUCOSE, GLUCOSE_CONC)),
            "cgm": sorted(r["rec"] for r in frig.rows(CGM, {CGM_CONC})),
            "bp": len(frig.rows(BP, {BP_MDC})), "thermo": len(frig.rows(THERMO, {TEMP_MDC})),
            "scale": len(frig.rows(SCALE, {WEIGHT_MDC})),
        }

    end = time.monotonic() + 240
    while got() != want and time.monotonic() < end:
        time.sleep(1)
    have = got()
    for kind in ("glucose", "cgm"):
        dup = [k for k, n in collections.Counter(have[kind]).items() if n > 1]
        assert not dup, f"{kind}: records stored twice: {dup}"
        missing = sorted(set(want[kind]) - set(have[kind]))
        assert not missing, f"{kind}: records lost: {missing} of {len(want[kind])}; faults {dict(frig.faults)}"
    wrong = []  # every kind checked, so that one failure does not hide another
    for kind, addr in (("bp", BP), ("thermo", THERMO), ("scale", SCALE)):
        sim = frig.bridge.sim(addr)
        if have[kind] != want[kind]:
            wrong.append(f"{kind}: {have[kind]} stored, {want[kind]} measured; the device still keeps "
                         f"{len(sim.store.items)}, indicated {sim.store.sent}")
    assert not wrong, "; ".join(wrong) + f"; bridge {frig.bridge.stats}"
    assert frig.faults["power cut"] >= 40
