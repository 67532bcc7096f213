"""Hardware in the loop: the BLE conformance scenarios of issue 18 and the
technician's deploy and self-test, on a real ESP32-DevKitC (NimBLE) or Pico W
(BTstack) on the reference bench (hardware/bench/), the emulated devices on
nRF52840 dongles over the air. Every test here is marked `hil` and skips on
the virtual hub, saying how to run it:

    pytest tests/test_hil_bench.py --bench hardware/bench/bench.toml --board esp32-devkit
    pytest tests/test_hil_bench.py --bench hardware/bench/bench.toml --board picow

The same scenarios run in `make test` over the bridge (tests/test_ble_e2e.py,
tests/test_blebridge.py) and against the stack double in both modes
(tests/fw/test_ble_native_conformance.py); docs/ble.md has the table. What a
board can only show on its own radio (docs/ble.md, "still to be settled on
hardware") is what these add. A board keeps its journal to itself while it
runs, so these check the hub's own counters (its STATUS lines), which are
the collector's view: connects, subscribed, last record, gaps, duplicates,
bond losses, errors."""

import pytest

from samband.device import console, selftest

GLUCOSE = "C0:5A:4B:00:02:01"
HR = "C0:5A:4B:00:02:08"
THERMO = "C0:5A:4B:00:02:06"

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


@pytest.mark.board("esp32", "rp2")
@pytest.mark.requires("ble-radio")
def test_connect_discover_subscribe_over_the_air(rig_devices, rig_hub):
    """A heart-rate strap (no bonding: both boards) found, connected, discovered and subscribed."""
    specs = [{"kind": "hr", "address": HR}]
    bridge = rig_devices(specs)
    with rig_hub(allow(*specs), bridge, hub_config={"status_ms": 500}) as rig:
        s = rig.wait_status(lambda s: dev(s, HR).get("subscribed") and dev(s, HR).get("readings", 0) >= 3, 120,
                            "the strap subscribed and three readings")
        assert dev(s, HR)["errors"] == 0, dev(s, HR)
        assert s["ble"]["fifo"]["dropped"] == 0
    assert bridge.stats["errors"] == 0


@pytest.mark.board("esp32")
@pytest.mark.requires("ble-radio")
def test_racp_backfill_across_disconnects_over_the_air(rig_devices, rig_hub):
    """A glucose meter's 300 records fetched with RACP while the link drops twice mid-transfer:
    every record once (last record 300, no gap, no duplicate)."""
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


@pytest.mark.board("esp32")
@pytest.mark.requires("ble-radio")
def test_lost_bond_over_the_air(rig_devices, rig_hub):
    """The meter forgets its bond: NimBLE's ENCRYPTION_UPDATE carries no status, the hub must
    still see the failed re-encryption as a lost bond (once), then pair again."""
    specs = [{"kind": "glucose", "address": GLUCOSE, "records": 3}]
    bridge = rig_devices(specs)
    with rig_hub(allow(*specs), bridge, hub_config={"status_ms": 500}) as rig:
        rig.wait_status(lambda s: dev(s, GLUCOSE).get("last_rec", -1) >= 3, 120, "the first, bonding session")
        bridge.fault(GLUCOSE, "drop_link")
        rig.wait_status(lambda s: dev(s, GLUCOSE).get("connects", 0) >= 2 and dev(s, GLUCOSE).get("subscribed"),
                        120, "a reconnection on the stored bond")
        bridge.fault(GLUCOSE, "forget_bond")
        bridge.fault(GLUCOSE, "drop_link")
        s = rig.wait_status(lambda s: dev(s, GLUCOSE).get("connects", 0) >= 3 and dev(s, GLUCOSE).get("subscribed"),
                            180, "pairing again after the lost bond")
        assert dev(s, GLUCOSE)["bond_losses"] == 1, dev(s, GLUCOSE)


@pytest.mark.board("esp32", "rp2")
@pytest.mark.requires("ble-radio")
def test_two_devices_connect_at_once_over_the_air(rig_devices, rig_hub):
    """Two devices advertising together: connects are serialized (and, on NimBLE, one
    discovery at a time), so both end subscribed without a refused attempt."""
    specs = [{"kind": "hr", "address": HR}, {"kind": "thermo", "address": THERMO}]
    bridge = rig_devices(specs)
    with rig_hub(allow(*specs), bridge, hub_config={"status_ms": 500}) as rig:
        s = rig.wait_status(lambda s: dev(s, HR).get("subscribed") and dev(s, THERMO).get("subscribed"), 120,
                            "both devices subscribed")
        assert dev(s, HR)["errors"] == 0 and dev(s, THERMO)["errors"] == 0, (dev(s, HR), dev(s, THERMO))


@pytest.mark.board("rp2")
@pytest.mark.requires("ble-radio")
def test_the_pico_w_refuses_bonded_kinds_in_words_and_collects_the_rest(rig_devices, rig_hub):
    """MicroPython's Pico W build has bonding compiled out: the meter (which needs a bond) is
    refused with a reason, the strap is collected."""
    specs = [{"kind": "glucose", "address": GLUCOSE, "records": 3}, {"kind": "hr", "address": HR}]
    bridge = rig_devices(specs)
    with rig_hub(allow(*specs), bridge, hub_config={"status_ms": 500}) as rig:
        s = rig.wait_status(lambda s: dev(s, HR).get("subscribed") and dev(s, GLUCOSE).get("errors", 0) >= 1, 120,
                            "the strap subscribed, the meter refused")
        assert "cannot bond" in dev(s, GLUCOSE)["last_error"] and not dev(s, GLUCOSE).get("subscribed")


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
