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
from pathlib import Path

import ble_scenarios as bs
import conform_kit
import pytest

from samband.bridge.server import BleBridge
from samband.rig.hubs import Rig

NATIVE_HEAP = "512k"  # collector, journal, crypto and the driver's bytecode in the unix port's heap
SEP = "\x1e"
FW = Path(__file__).resolve().parent / "fw"


@pytest.fixture(scope="module")
def bridge():
    b = BleBridge(devices=bs.all_devices())
    where = b.start()
    yield b, where
    b.stop()


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
        bridge, where = request.getfixturevalue("bridge")
        # The hub package runs in place from its ROMFS image, as on a board (docs/development.md, "Heap":
        # the hub does not fit a board's heap with its bytecode copied in). From a folder at the full
        # heap, with the other scenarios' ten devices advertising around it, two meters' sessions fail
        # (MemoryError importing hub.profiles.racp on a fragmented heap): docs/ble.md, "The conformance set".
        rig = Rig(tmp_path, devices=conform_kit.allow_list(s), bridge=where, hub_config={"status_ms": 300},
                  romfs=True)
        with rig:
            runs = {"virtual hub": conform_kit.drive(s, "bridge", bridge, rig)}
    else:
        runs = run_native(transport, sid, mpy)
    problems = []
    for runtime, (got, never) in runs.items():
        problems += [f"{runtime}: never reached: {w}" for w in never]
        problems += [f"{runtime}: {p}" for p in bs.check(s, transport, got)]
    assert not problems, "\n".join([f"{sid} over {transport}: {s['about']}"] + problems)
