"""The BLE conformance set (tests/fw/ble_scenarios.py, issue 18 items 4-5):
the same scenarios, by the same ids, on every transport, judged by the same
check (ble_scenarios.check):

  bridge   the virtual hub (the whole firmware on the unix port) through the
           BLE bridge to bumble's emulated devices: one bridge with every
           scenario's devices for the module, one hub per scenario
  nimble   hub.ble.native and the collector against the `bluetooth` stack
           double in NimBLE mode (tests/fw/conform_native.py on the unix port)
  btstack  the same in BTstack mode (the Pico W build: no bonding; each
           scenario says what it is expected to do instead)

tests/test_hil_bench.py runs the same scenarios on a real board. What the
bridge's hub stored is read back from its sealed journal with the depot, as
the receiver would; the double's run checks what it stored reached its journal."""

import json
import subprocess
import sys
import time
from pathlib import Path

import ble_scenarios as bs
import pytest

from samband.bridge.server import BleBridge
from samband.errors import HubError
from samband.rig.hubs import Rig

NATIVE_HEAP = "512k"  # collector, journal, crypto and the driver's bytecode in the unix port's heap
SEP = "\x1e"
FW = Path(__file__).resolve().parent / "fw"
WAIT_S = 90  # how long a step may take on a loaded 2-core machine (a bound, not an expectation)


@pytest.fixture(scope="module")
def bridge():
    b = BleBridge(devices=bs.all_devices())
    where = b.start()
    yield b, where
    b.stop()


def _status_of(status, spec):
    for d in status.get("ble", {}).get("devices", []):
        if d["addr"] == bs.hub_name(spec["address"]):
            return d
    return {}


def run_bridge(s, bridge_and_where, root):
    """The scenario over the bridge: (outcome, [what a wait never saw])."""
    bridge, where = bridge_and_where
    specs = s["devices"]
    devices = [{"addr": bs.hub_name(d["address"]), "kind": d["kind"], "name": ""} for d in specs.values()]
    never = []

    def wait(pred, what):
        try:
            rig.wait_status(pred, WAIT_S, what)
            return True
        except HubError:  # the outcome says how it differs
            never.append(what)
            return False

    # The hub package runs in place from its ROMFS image, as on a board (docs/development.md, "Heap": the
    # hub does not fit a board's heap with its bytecode copied in). From a folder at the full heap, with
    # the other scenarios' ten devices advertising around it, two meters' sessions fail (MemoryError
    # importing hub.profiles.racp on a fragmented heap): see docs/ble.md, "The conformance set".
    with Rig(root, devices=devices, bridge=where, hub_config={"status_ms": 300}, romfs=True) as rig:
        for step in bs.steps(s, "bridge"):
            what, role = step[0], step[1]
            addr = specs[role]["address"]
            if what == "until":
                if not wait(lambda st, w=step[2], sp=specs[role]: bs.reached(w, _status_of(st, sp)),
                            "%s %r" % (role, step[2])):
                    break
            elif what == "measure":
                sim = bridge.sim(addr)
                for _ in range(step[2]):
                    if specs[role]["kind"] == "glucose":
                        bridge.call(sim.measure(1))
                    else:
                        bridge.call(sim.measure())
            elif what in ("forget_bond", "drop_link"):
                bridge.fault(addr, what)
            else:
                raise ValueError(f"unknown step {step!r}")
        if not never:
            wait(lambda st: bs.settled(s, "bridge", lambda r: _status_of(st, specs[r])), "the expected status")
        # What the status counts may still be staged for a group commit (hub/store.py): what
        # counts is what the journal holds, read as the receiver would, until it is what the
        # scenario expects or the wait is over (then the difference is the failure).
        end = time.monotonic() + (WAIT_S if not never else 0)
        while True:
            got = _outcome(s, rig, bridge)
            if not bs.check(s, "bridge", got) or time.monotonic() > end:
                return got, never
            time.sleep(0.25)


def _outcome(s, rig, bridge):
    rows = rig.readings()
    bad = [r for r in rows if r[3] is not None]
    assert not bad, f"readings that do not open: {bad[:3]}"
    readings = [(r[2][1], r[2]) for r in rows if r[2] is not None]
    last = rig.statuses[-1]
    specs = s["devices"]
    return bs.outcome(s, readings, {role: _status_of(last, spec) for role, spec in specs.items()},
                      {role: bridge.sim(spec["address"]).peer_mtu_exchanges for role, spec in specs.items()})


def run_native(mode, sid, mpy):
    """The scenario over hub.ble.native on the double, on the unix port and on CPython (the
    firmware's two runtimes): {runtime: (outcome, [what a wait never saw])}."""
    out = {}
    for runtime in ("unix-port", "cpython"):
        if runtime == "unix-port":
            p = mpy(["conform_native.py", mode, sid], heap=NATIVE_HEAP, timeout=300)
        else:
            p = subprocess.run([sys.executable, "conform_native.py", mode, sid], cwd=FW, capture_output=True,
                               timeout=300)
        text = p.stdout.decode("utf-8", "replace")
        assert p.returncode == 0 and SEP in text, (runtime, (text + p.stderr.decode("utf-8", "replace"))[-3000:])
        run = json.loads(text.rsplit(SEP, 1)[1])
        assert run["crashed"] == [] and run["irq_errors"] == 0, (runtime, run)  # the handler was never disabled
        assert run["not_on_flash"] == [], (runtime, run)  # every reading the collector stored is in the journal
        out[runtime] = (run["outcome"], run["never"])
    return out


@pytest.mark.parametrize("sid", bs.IDS)
@pytest.mark.parametrize("transport", bs.TRANSPORTS)
def test_conformance(transport, sid, request, tmp_path, mpy):
    s = bs.scenario(sid)
    if transport == "bridge":
        runs = {"virtual hub": run_bridge(s, request.getfixturevalue("bridge"), tmp_path)}
    else:
        runs = run_native(transport, sid, mpy)
    problems = []
    for runtime, (got, never) in runs.items():
        problems += [f"{runtime}: never reached: {w}" for w in never]
        problems += [f"{runtime}: {p}" for p in bs.check(s, transport, got)]
    assert not problems, "\n".join([f"{sid} over {transport}: {s['about']}"] + problems)
