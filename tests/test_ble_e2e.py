"""Collection end to end: the virtual hub (MicroPython unix port, full
firmware) against emulated devices on bumble, through the BLE bridge.
Every check reads the hub's sealed journal back with the depot, as the
receiver would: what counts is what reached flash."""

import collections
import time

import pytest

from samband.bridge.server import BleBridge
from samband.rig.hubs import Rig

GLUCOSE = "C0:5A:4B:00:00:01"
GLUCOSE_MDC = {160184, 160188, 160192, 160196, 160200, 160204, 160208, 160212, 160020}


def hub_addr(a):
    return a + "/r"  # the sims use random static addresses


@pytest.fixture
def bridge_factory():
    started = []

    def make(devices):
        b = BleBridge(devices=devices)
        addr = b.start()
        started.append(b)
        return b, addr

    yield make
    for b in started:
        b.stop()


def dev(stats, addr):
    for d in stats.get("ble", {}).get("devices", []):
        if d["addr"] == hub_addr(addr):
            return d
    return {}


def glucose_recs(rows):
    return [r[10] for seq, prio, r, err in rows if r is not None and r.get(2) in GLUCOSE_MDC and 10 in r]


# This test, the bonded reconnection and the power cut after a blood-pressure measurement
# run on the rig plugin's fixtures (docs/rig.md): rig_devices, rig_hub and rig_power give
# the virtual hub here and a bench board with --hub-port/--bench; they read the hub's
# flash back, which only the virtual hub allows, so they ask for flash-snapshot.
@pytest.mark.requires("flash-snapshot")
def test_500_records_backfilled_exactly_once_across_3_disconnects(tmp_path, rig_devices, rig_hub):
    bridge = rig_devices([{"kind": "glucose", "address": GLUCOSE, "records": 500}])
    with rig_hub([{"addr": hub_addr(GLUCOSE), "kind": "glucose", "name": ""}], bridge, root=tmp_path,
                 hub_config={"status_ms": 300}) as rig:
        for n in range(3):
            bridge.fault(GLUCOSE, "drop_link", 90 + 37 * n)  # in the middle of the RACP transfer
            rig.wait_status(lambda s, n=n: dev(s, GLUCOSE).get("disconnects", 0) > n, 120, f"forced disconnect {n + 1}")
        s = rig.wait_status(lambda s: dev(s, GLUCOSE).get("last_rec", -1) >= 500, 180, "the backfill to finish")
        d = dev(s, GLUCOSE)
        assert d["disconnects"] >= 3 and d["connects"] >= 4
        assert s["ble"]["fifo"]["dropped"] == 0
        rig.stop()
        rows = rig.readings()
    assert all(err is None for *_, err in rows), [r for r in rows if r[3]]
    recs = glucose_recs(rows)
    dup = [k for k, v in collections.Counter(recs).items() if v > 1]
    assert not dup, f"records stored twice: {dup[:10]}"
    assert sorted(recs) == list(range(1, 501)), f"missing: {sorted(set(range(1, 501)) - set(recs))[:20]}"


def test_off_list_device_ignored_and_pairing_window(tmp_path, bridge_factory):
    other = "C0:5A:4B:00:00:06"
    bridge, where = bridge_factory([{"kind": "glucose", "address": GLUCOSE, "records": 3},
                                    {"kind": "thermo", "address": other}])
    with Rig(tmp_path, devices=[{"addr": hub_addr(GLUCOSE), "kind": "glucose", "name": ""}], bridge=where,
             hub_config={"status_ms": 300}) as rig:
        s = rig.wait_status(lambda s: dev(s, GLUCOSE).get("last_rec", -1) >= 3 and s["ble"]["ignored_adv"] > 0, 60,
                            "the glucose meter's records and the thermometer's adverts")
        assert not dev(s, other), "a device off the allow-list was taken"
        assert [d["addr"] for d in s["ble"]["devices"]] == [hub_addr(GLUCOSE)]
    # the same thermometer is accepted during a pairing window, and remembered
    with Rig(tmp_path / "2", devices=[], bridge=where, hub_config={"status_ms": 300, "pairing_s": 60}) as rig:
        s = rig.wait_status(lambda s: dev(s, other).get("subscribed"), 60, "the thermometer paired in the window")
        assert dev(s, other)["kind"] == "thermo"
        saved = rig.hub.snapshot().read("/config/devices.json").decode()
        assert hub_addr(other) in saved


@pytest.mark.requires("flash-snapshot")
def test_bond_keys_are_sealed_on_flash(tmp_path, rig_devices, rig_hub):
    """The reconnection on the stored bond and the lost bond are the conformance set's
    reconnect_bonded and lost_bond (tests/test_ble_conformance.py); what only this
    checks is how the hub keeps the keys."""
    bridge = rig_devices([{"kind": "glucose", "address": GLUCOSE, "records": 5}])
    with rig_hub([{"addr": hub_addr(GLUCOSE), "kind": "glucose", "name": ""}], bridge, root=tmp_path,
                 hub_config={"status_ms": 300}) as rig:
        rig.wait_status(lambda s: dev(s, GLUCOSE).get("last_rec", -1) >= 5, 60, "first session")
        bonds = rig.hub.snapshot().read("/keys/bonds")
        assert b"ltk" not in bonds.lower() and len(bonds) > 40  # sealed, not plaintext JSON


def test_lost_bond_waits_for_a_pairing_window_when_told_to(tmp_path, bridge_factory):
    """rebond "window": a device that lost its bond (or an impostor with its
    address) is reported once and not paired until a pairing window is open,
    here by plugging the hub in again with one configured."""
    bridge, where = bridge_factory([{"kind": "glucose", "address": GLUCOSE, "records": 3}])
    config = {"status_ms": 300, "rebond": "window"}
    rig = Rig(tmp_path, devices=[{"addr": hub_addr(GLUCOSE), "kind": "glucose", "name": ""}], bridge=where,
              hub_config=config)
    with rig:
        rig.wait_status(lambda s: dev(s, GLUCOSE).get("last_rec", -1) >= 3, 60, "first session")
        bridge.fault(GLUCOSE, "forget_bond")
        bridge.fault(GLUCOSE, "drop_link")
        s = rig.wait_status(lambda s: dev(s, GLUCOSE).get("errors", 0) >= 3, 90, "three refused reconnections")
        d = dev(s, GLUCOSE)
        assert d["needs_pairing"] and d["bond_losses"] == 1 and not d["subscribed"], d
        assert "pairing window" in d["last_error"]
        rig.stop()
        rig.hub_config = dict(config, pairing_s=60)  # someone plugs the hub in again: a window opens
        rig.start()
        s = rig.wait_status(lambda s: dev(s, GLUCOSE).get("subscribed"), 90, "pairing again in the window")
        d = dev(s, GLUCOSE)
        assert not d["needs_pairing"] and d["errors"] == 0, d
    lost = [r for seq, prio, r, err in rig.readings() if r is not None and r.get(2) == _mdc("MDC_HUB_BOND_LOST")]
    assert len(lost) == 2  # once per boot that finds the bond lost, not at every refused attempt


def wait_for(pred, timeout, what):
    """Poll a condition on the emulated devices (their state lives on the bridge's thread)."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def exactly_once(recs, want):
    dup = [k for k, v in collections.Counter(recs).items() if v > 1]
    assert not dup, f"records stored twice: {dup[:10]}"
    missing = sorted(set(want) - set(recs))
    assert not missing, f"records never stored: {missing[:40]} ({len(missing)} of {len(want)})"
    assert sorted(recs) == sorted(want)


def test_records_taken_out_of_range_all_stored_although_a_new_one_arrives_first(tmp_path, bridge_factory):
    """Issue 10: the meter is out of range for 30 measurements; back in range, a new
    measurement is notified after the hub subscribes and before its backfill. The old
    collector asked only for records above that new one: 21..50 were never fetched."""
    bridge, where = bridge_factory([{"kind": "glucose", "address": GLUCOSE, "records": 20}])
    meter = bridge.sim(GLUCOSE)
    with Rig(tmp_path, devices=[{"addr": hub_addr(GLUCOSE), "kind": "glucose", "name": ""}], bridge=where,
             hub_config={"status_ms": 300}) as rig:
        rig.wait_status(lambda s: dev(s, GLUCOSE).get("last_rec", -1) >= 20, 60, "first session")
        bridge.fault(GLUCOSE, "silent", True)
        bridge.fault(GLUCOSE, "drop_link")
        rig.wait_status(lambda s: not dev(s, GLUCOSE).get("subscribed", True), 30, "the meter out of range")
        assert len(bridge.call(meter.measure(30))) == 30  # nobody hears these
        bridge.call(meter.measure_when_subscribed(1))
        bridge.fault(GLUCOSE, "silent", False)
        s = rig.wait_status(lambda s: dev(s, GLUCOSE).get("connects", 0) >= 2 and dev(s, GLUCOSE).get("last_rec", -1)
                            >= 51 and dev(s, GLUCOSE).get("gaps", 0) == 0, 120, "back in range, backfilled")
        assert meter.next_seq == 52
        rig.stop()
        rows = rig.readings()
    exactly_once(glucose_recs(rows), range(1, 52))
    assert dev(s, GLUCOSE)["duplicates"] <= 1  # the early one, sent again by the report at most


def test_a_measurement_during_an_racp_report_is_delivered(tmp_path, bridge_factory):
    """The emulated meter used to drop a measurement taken while it sent a report
    (its comment said it waited; it never sent it): now it notifies it after the report,
    in the same session."""
    thermo = "C0:5A:4B:00:00:06"
    bridge, where = bridge_factory([{"kind": "glucose", "address": GLUCOSE, "records": 300},
                                    {"kind": "thermo", "address": thermo, "stored": 0}])
    meter = bridge.sim(GLUCOSE)
    bridge.call(meter.measure_during_report(1, after=100))
    with Rig(tmp_path, devices=[{"addr": hub_addr(GLUCOSE), "kind": "glucose", "name": ""},
                                {"addr": hub_addr(thermo), "kind": "thermo", "name": ""}], bridge=where,
             hub_config={"status_ms": 300}) as rig:
        rig.wait_status(lambda s: dev(s, GLUCOSE).get("last_rec", -1) >= 300 and dev(s, thermo).get("subscribed"),
                        120, "the report")
        wait_for(lambda: meter.racp.reports >= 1 and not meter.racp.sending, 30, "the meter to finish its report")
        assert meter.next_seq == 302  # record 301 was taken during the report
        bridge.call(bridge.sim(thermo).measure())  # an indicated reading: the hub commits at once
        s = rig.wait_status(lambda s: dev(s, GLUCOSE).get("last_rec", -1) >= 301, 30,
                            "record 301 (measured during the report) on flash")
        assert dev(s, GLUCOSE)["connects"] == 1 and dev(s, GLUCOSE).get("gaps", 0) == 0
        rig.stop()
        rows = rig.readings()
    exactly_once(glucose_recs(rows), range(1, 302))


@pytest.mark.requires("flash-snapshot", "power")
def test_power_cut_after_a_blood_pressure_measurement_loses_nothing(tmp_path, rig_devices, rig_hub, rig_power):
    """The cuff deletes a measurement once the indication is confirmed; the hub used to
    stage it for up to LIVE_MS (2 s) before committing: a cut then lost it."""
    bp = "C0:5A:4B:00:00:04"
    bridge = rig_devices([{"kind": "bp", "address": bp, "stored": 1}])
    cuff = bridge.sim(bp)
    with rig_hub([{"addr": hub_addr(bp), "kind": "bp", "name": ""}], bridge, root=tmp_path,
                 hub_config={"status_ms": 300}) as rig:
        wait_for(lambda: cuff.store.sent >= 1, 60, "the stored measurement confirmed")
        rig.wait_status(lambda s: dev(s, bp).get("readings", 0) >= 1, 30, "the hub to take it")
        bridge.call(cuff.measure())
        wait_for(lambda: cuff.store.sent >= 2 and not cuff.store.items, 30, "the new measurement confirmed")
        time.sleep(0.5)  # where the cut lands (not an assertion about speed)
        boots = rig.hub.boots
        rig_power.cut(rig)
        rig.hub.wait_boots(boots + 1, 60)
        rig.wait_status(lambda s: dev(s, bp).get("subscribed"), 60, "the cuff again after the cut")
        rig.stop()
        rows = rig.readings()
    systolic = [r for seq, prio, r, err in rows if r is not None and r.get(2) == 150020]
    assert len(systolic) == 2, f"{len(systolic)} blood-pressure measurements on flash, 2 confirmed by the hub"


def _mdc(name):
    from hub import collect
    return getattr(collect, name)


def test_seven_devices_at_once(tmp_path, bridge_factory):
    from samband.bridge.sim import DEFAULT_SET
    bridge, where = bridge_factory(DEFAULT_SET)
    devices = [{"addr": hub_addr(d["address"]), "kind": d["kind"], "name": ""} for d in DEFAULT_SET]
    # The hub package runs in place from its ROMFS image, as on a board with a ROM partition.
    with Rig(tmp_path, devices=devices, bridge=where, hub_config={"status_ms": 500}, heap="320k", romfs=True) as rig:
        s = rig.wait_status(lambda s: all(dev(s, d["address"]).get("subscribed") for d in DEFAULT_SET)
                            and all(dev(s, d["address"]).get("readings", 0) > 0 for d in DEFAULT_SET),
                            150, "all seven devices subscribed with readings")
        assert s["ble"]["fifo"]["dropped"] == 0
        assert s["problems"] == []
        steps = dict(s["heap_steps"])
        assert list(steps) == ["code", "journal", "seal", "ble", "collect"], steps
        assert all(v > 0 for v in steps.values()), steps

        def kinds():
            # a reading the status counts may still be staged (hub/store.py commits groups):
            # what counts here is what the journal holds
            out = collections.Counter()
            for _seq, _prio, r, err in rig.readings():
                assert err is None, err
                out[r[1].hex()] += 1
            return out

        end = time.monotonic() + 60
        while len(kinds()) < 7 and time.monotonic() < end:
            time.sleep(0.5)
        rig.stop()
        have = kinds()
    assert len(have) == 7, have


POLAR = "C0:5A:4B:00:00:03"
ECG_MDC = 131328


def test_ten_minutes_of_ecg_without_gap_or_duplicate(tmp_path, bridge_factory):
    speed = 30.0
    bridge, where = bridge_factory([{"kind": "polar", "address": POLAR, "speed": speed}])
    want = 10 * 60 * 130  # samples in ten minutes at 130 Hz
    with Rig(tmp_path, devices=[{"addr": hub_addr(POLAR), "kind": "polar", "name": ""}], bridge=where,
             hub_config={"status_ms": 500}) as rig:
        rig.wait_status(lambda s: dev(s, POLAR).get("readings", 0) * 60 > want * 1.02, 10 * 60 / speed * 4 + 60,
                        "ten minutes of ECG")
        s = rig.statuses[-1]
        assert s["ble"]["fifo"]["dropped"] == 0
        rig.stop()
        rows = rig.readings()
    frames = [r for seq, prio, r, err in rows if r is not None and r.get(2) == ECG_MDC]
    assert sum(len(f[3]) for f in frames) >= want
    period_ns = 1e9 / 130
    first = frames[0]
    t0 = first[6] * 10 ** 9 + first[16]["ns"] - (len(first[3]) - 1) * period_ns
    n = 0
    for i, f in enumerate(frames):
        n += len(f[3])
        t_last = f[6] * 10 ** 9 + f[16]["ns"]
        expect = t0 + (n - 1) * period_ns
        off = (t_last - expect) / period_ns
        assert abs(t_last - expect) < period_ns / 2, f"frame {i}: gap or overlap of {off:.1f} samples"
    assert all(f[15] == 7692 for f in frames)


def test_silent_device_is_reported(tmp_path, bridge_factory):
    bridge, where = bridge_factory([{"kind": "polar", "address": POLAR, "speed": 1.0}])
    with Rig(tmp_path, devices=[{"addr": hub_addr(POLAR), "kind": "polar", "name": ""}], bridge=where,
             hub_config={"status_ms": 500}) as rig:
        rig.wait_status(lambda s: dev(s, POLAR).get("readings", 0) > 3, 60, "ECG flowing")
        bridge.fault(POLAR, "silent", True)  # stops notifying, the link stays up
        deadline = time.monotonic() + 40
        found = None
        while time.monotonic() < deadline and not found:
            time.sleep(1)
            found = [r for *_, r, e in rig.readings() if r and r.get(2) == (1024 << 16 | 1)]
        assert found, "no 'device silent' telemetry within 40 s (limit 10 s for a Polar)"
        assert found[0][12] == 2 and found[0][3] >= 10  # telemetry priority, seconds silent
