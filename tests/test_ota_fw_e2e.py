"""A whole-firmware update over the hub's own uplink, end to end: a virtual hub (the
compiled firmware, tests/data/uplink_main.py wiring hub.uplink and hub.ota as
hub/app.py does) whose OTA app partitions and bootloader are the esp32 stand-in
(tests/fw/esp32stand.py, kept in files on the hub's flash so that they outlive its
resets: tests/data/uplink_esp32.py), Mosquitto with TLS and ACLs, the receiver, and
`samband ota`'s Rollout serving signed firmware releases.

One run: firmware 1.1.0 is fetched while alarms keep flowing (the rollout holds
every chunk back until alarms reached the database after the download began; the
hub asks for each chunk with no alarm pending), written into the idle partition,
booted by the bootloader as a trial and confirmed once the hub reported; the
application (hub.VERSION) stays 0.1.0, the firmware's own version (its app
descriptor) is what changed. Then 1.2.0, an image that cannot start: the hub
resets in its trial, the bootloader goes back to 1.1.0, and the hub marks 1.2.0
failed. Every reading appended over the four boots is in the database exactly
once. The releases are signed for the board "vhub" (the host signs firmware
releases only for ESP32 boards: this one is assembled here)."""

from pathlib import Path

import nacl.bindings as nb
from conftest import firmware_tree
from ota_kit import AlarmGate, after_rollback, rolled_back
from ota_kit import login as ota_login
from test_ota_release import esp_app

from samband.device import release as rel
from samband.device.ota import Fleet, Rollout
from samband.rig.uplink import UplinkRig
from samband.vhub import Flash

DATA = Path(__file__).parent / "data"
MAIN = DATA / "uplink_main.py"
HUB = "00005a4d00e2"
SEED = bytes(range(100, 132))
TOTAL = 240
TIMEOUT = 90


def firmware_release(version, crash=False):
    img = bytearray(esp_app(version, 10002))
    if crash:
        img[80:85] = b"crash"  # the app descriptor's project name: tests/data/uplink_esp32.py
    img = bytes(img)
    return rel.assemble(rel.manifest("vhub", "firmware", version, "1.0.0", img, 1764633600), img, SEED)


def otadata(h):
    """(boot, running, {partition: image state}) of the stand-in's otadata on the hub's flash."""
    w = h._read("/esp32/otadata").decode().split()
    return w[0], w[1], dict(x.split("=") for x in w[3:])


def why(h):
    """What the hub said about its update and why it stopped, for a failure's message."""
    ota = (h._read("/uplink.ota") or b"").decode().splitlines()
    return "crash: %s\nota log: %s" % ((h._read("/uplink.crash") or b"-").decode(),
                                        "\n".join(x for x in ota if not x.startswith(("W ", "M ")))[-2000:])


def test_firmware_update_over_the_uplink_and_one_that_cannot_start_rolled_back(tmp_path):
    good = firmware_release("1.1.0")
    bad = firmware_release("1.2.0", crash=True)
    alarms = AlarmGate()  # the download held until two alarms reached the database after it began
    watch = None
    # 300k as the tree update's test, and room for the stand-in, which holds both 16 KB partitions in the heap
    rig = UplinkRig(tmp_path / "rig", heap="360k", firmware=firmware_tree(), on_reading=alarms.on_reading)
    try:
        h = rig.add_hub(HUB, MAIN, {"total": TOTAL, "alarm_every": 3, "interval_ms": 50, "esp32": True,
                                    "ota": {"window": 4, "retry_ms": 300, "trial_s": 60}})
        Flash(h.flash).write_files({"/keys/release.pub": nb.crypto_sign_seed_keypair(SEED)[0],
                                    "/esp32stand.py": (Path(__file__).parent / "fw" / "esp32stand.py").read_bytes(),
                                    "/uplink_esp32.py": (DATA / "uplink_esp32.py").read_bytes()})
        rig.start()
        login = ota_login(rig)
        seen = []  # (firmware version, state) as `samband ota watch` sees them change
        watch = Fleet(None, on_progress=lambda hub, st: seen.append((st.get("fv"), st.get("st"))), **login).start()
        r = Rollout(good, [HUB], chunk=4096, gate=alarms.gate, **login).start()
        try:
            assert r.wait(TIMEOUT), f"hub at {r.progress.get(HUB)}\n{why(h)}"
            r.clear()
            assert r.progress[HUB]["v"] == "0.1.0"  # the application is the one it ran
        finally:
            r.close()
        assert otadata(h) == ("ota_1", "ota_1", {"ota_0": "valid", "ota_1": "valid"}), otadata(h)
        alarms.check(h)
        assert "out of heap" not in why(h), why(h)  # applied at the first go

        assert rolled_back(rig, bad, HUB, login, TIMEOUT, "the bad firmware rolled back")["fv"] == "1.1.0"
        assert otadata(h) == ("ota_1", "ota_1", {"ota_0": "aborted", "ota_1": "valid"}), otadata(h)
        # boots: the first, the trial of 1.1.0 (confirmed), the trial of 1.2.0 (cannot start), back on 1.1.0;
        # the receiver's record: the application 0.1.0 on firmware 1.1.0, the failed 1.2.0 noted
        row = after_rollback(rig, h, TOTAL, TIMEOUT, watch, seen,
                             [("1.0.0", "fetch"), ("1.1.0", "trial"), ("1.1.0", "failed")])
        assert (row["hub"], row["version"], row["firmware"], row["ota_refused"]) == (HUB, "0.1.0", "1.1.0", None), row
    finally:
        if watch is not None:
            watch.close()
        rig.stop()
