"""Hardware in the loop: the BLE conformance scenarios of issue 18 and the
technician's deploy and self-test, on a real ESP32-DevKitC (NimBLE) or Pico W
(BTstack) on the reference bench (hardware/bench/), the emulated devices on
nRF52840 dongles over the air. Every test here is marked `hil` and skips on
the virtual hub, saying how to run it:

    pytest tests/test_hil_bench.py --bench hardware/bench/bench.toml --board esp32-devkit
    pytest tests/test_hil_bench.py --bench hardware/bench/bench.toml --board picow

The conformance scenarios are the set in tests/fw/ble_scenarios.py, by the
same ids that `make test` runs over the bridge and against the stack double
in both modes (tests/test_ble_conformance.py); docs/ble.md, "The conformance
set". What a board can only show on its own radio (docs/ble.md, "What only
hardware decides") is what these add. A board keeps its journal to itself
while it runs, so these check the hub's own counters (its STATUS lines),
which are the collector's view: connects, subscribed, last record, gaps,
duplicates, bond losses, errors, the link's MTU."""

import ble_scenarios as bs
import conform_kit
import pytest

from samband.device import console, selftest

GLUCOSE = "C0:5A:4B:00:02:01"
HR = "C0:5A:4B:00:02:08"

pytestmark = pytest.mark.hil


def named(addr):
    return addr + "/r"  # the emulated devices use random static addresses


def dev(status, addr):
    for d in status.get("ble", {}).get("devices", []):
        if d["addr"] == named(addr):
            return d
    return {}


def allow(*specs):
    return [{"addr": named(s["address"]), "kind": s["kind"], "name": ""} for s in specs]


@pytest.mark.board("esp32", "rp2")
def test_deploy_provision_and_selftest_on_the_board(rig_hub, rig_target):
    """The technician's path on the board itself: deploy this build, provision,
    then the self-test's checks that do not need a network pass, and the hub is
    still running after it (it answers its status again)."""
    with rig_hub(hub_config={"status_ms": 1000}) as rig:
        assert rig.deployed["board"] == rig_target.board
        rig.wait_status(lambda s: s.get("heap_free"), 60, "the first STATUS line")
        with rig.release_console() as port, console.open_port(port) as ser:
            s = console.status(ser, timeout=10)
            blink = console.command(ser, "blink", 3, timeout=10)
            again = console.status(ser, timeout=10)
        results = {name: (ok, detail) for name, ok, detail in selftest.checks(s)}
        for name in ("firmware", "keys", "journal", "flash", "heap"):
            assert results[name][0], f"{name}: {results[name][1]}"
        assert blink is not None and blink[0], blink
        assert again is not None and again["uptime_ms"] > s["uptime_ms"]


# The conformance set (tests/fw/ble_scenarios.py), by the same ids as over the bridge and the
# stack double (tests/test_ble_conformance.py) and judged by the same check: the ESP32's
# NimBLE by what the scenario expects of "nimble", the Pico W's BTstack by "btstack" (its
# bonded kinds refused in words). A board keeps its journal to itself while it runs, so
# the outcome is the collector's status (stored readings are not compared here). A scenario
# with more devices than the bench has dongles skips, saying how many it needs.
STACK = {"esp32": "nimble", "rp2": "btstack"}


@pytest.mark.board("esp32", "rp2")
@pytest.mark.requires("ble-radio")
@pytest.mark.parametrize("sid", bs.IDS)
def test_conformance_over_the_air(sid, rig_target, rig_devices, rig_hub):
    s = bs.scenario(sid)
    stack = next(STACK[f] for f in STACK if f in rig_target.families())
    bridge = rig_devices([dict(d) for d in s["devices"].values()])
    with rig_hub(conform_kit.allow_list(s), bridge, hub_config={"status_ms": 500}) as rig:
        got, never = conform_kit.drive(s, stack, bridge, rig, journal=False, wait_s=180)
    problems = [f"never reached: {w}" for w in never] + bs.check(s, stack, got, stored=False)
    assert not problems, "\n".join([f"{sid} on {rig_target.describe()} ({stack}): {s['about']}"] + problems)


@pytest.mark.board("esp32")
@pytest.mark.requires("ble-radio")
def test_racp_backfill_across_disconnects_over_the_air(rig_devices, rig_hub):
    """A glucose meter's 300 records fetched with RACP while the link drops twice mid-transfer:
    every record once (last record 300, no gap, no duplicate). (Heavier than the conformance
    set's racp_backfill: the drops land inside the transfer.)"""
    specs = [{"kind": "glucose", "address": GLUCOSE, "records": 300}]
    bridge = rig_devices(specs)
    with rig_hub(allow(*specs), bridge, hub_config={"status_ms": 500}) as rig:
        for n in range(2):
            bridge.fault(GLUCOSE, "drop_link", 60 + 40 * n)
            rig.wait_status(lambda s, n=n: dev(s, GLUCOSE).get("disconnects", 0) > n, 120, f"forced drop {n + 1}")
        s = rig.wait_status(lambda s: dev(s, GLUCOSE).get("last_rec", -1) >= 300, 300, "the backfill")
        d = dev(s, GLUCOSE)
        assert d.get("gaps", 0) == 0 and d.get("duplicates", 0) == 0, d
        assert d["connects"] >= 3


@pytest.mark.board("esp32", "rp2")
@pytest.mark.requires("power", "ble-radio")
def test_power_cut_on_the_bench_and_the_hub_comes_back_collecting(rig_devices, rig_hub, rig_power):
    """The bench's USB hub cuts the board's port: it boots again (reset cause power-on) and
    collects the strap again."""
    specs = [{"kind": "hr", "address": HR}]
    bridge = rig_devices(specs)
    with rig_hub(allow(*specs), bridge, hub_config={"status_ms": 500}) as rig:
        before = rig.wait_status(lambda s: dev(s, HR).get("subscribed"), 120, "the strap subscribed")
        rig_power.cut(rig)
        s = rig.wait_status(lambda s: s["boot"] > before["boot"] and dev(s, HR).get("subscribed"), 120,
                            "the board back after the cut, collecting")
        assert rig_power.cuts == 1 and s["reset"] == "power-on" and dev(s, HR)["errors"] == 0
