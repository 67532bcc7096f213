"""An update over the hub's own uplink, end to end: a virtual hub (the compiled
firmware, tests/data/uplink_main.py wiring hub.uplink and hub.ota as hub/app.py
does), Mosquitto with TLS and ACLs, the receiver, and `samband ota`'s Rollout
serving signed tree releases as the receiver's login.

One run: release 0.2.0 is fetched while alarms keep flowing (the rollout holds
every chunk back until alarms have reached the database after the download
began, and the hub logs that it asked for each chunk with no alarm pending), is
applied, boots as a trial and is confirmed; then 0.3.0, a build that crashes at
boot, is fetched and applied, crashes, and the hub is back on 0.2.0 by itself
with 0.3.0 marked failed. Every reading appended over the three boots is in the
database exactly once."""

import re
import shutil
from pathlib import Path

import nacl.bindings as nb
from conftest import firmware_tree
from ota_kit import AlarmGate, after_rollback, rolled_back
from ota_kit import login as ota_login

from samband.device import release as rel
from samband.device.ota import Fleet, Rollout
from samband.receiver import versions
from samband.rig.uplink import UplinkRig
from samband.vhub import Flash

MAIN = Path(__file__).parent / "data" / "uplink_main.py"
HUB = "00005a4d00e1"
SEED = bytes(range(100, 132))
TOTAL = 240
TIMEOUT = 90


def release_of(tmp, version, broken=False):
    """A tree release of the vhub build with hub.VERSION = version (and, broken, a
    hub.clock that raises at import: the hub's main cannot start)."""
    t = tmp / version
    shutil.copytree(firmware_tree(), t)
    (t / "hub" / "__init__.mpy").unlink()
    # the package's own __init__ with its version changed: the rest of it (hub.forget) is code
    # the new image needs too (a bare VERSION line made every trial crash at its first epoch)
    init = (Path(__file__).resolve().parents[1] / "firmware" / "hub" / "__init__.py").read_text()
    assert init.count('VERSION = "') == 1
    (t / "hub" / "__init__.py").write_text(re.sub(r'VERSION = "[^"]*"', f'VERSION = "{version}"', init))
    if broken:
        (t / "hub" / "clock.mpy").unlink()
        (t / "hub" / "clock.py").write_text('raise ImportError("a broken build")\n')
    img = rel.tree_image(t)
    return rel.assemble(rel.manifest("vhub", "tree", version, "0.1.0", img, 1764633600), img, SEED)


def test_update_over_the_uplink_and_a_crashing_one_rolled_back(tmp_path):
    good = release_of(tmp_path, "0.2.0")
    bad = release_of(tmp_path, "0.3.0", broken=True)
    alarms = AlarmGate()  # the download held until two alarms reached the database after it began
    watch = None
    rig = UplinkRig(tmp_path / "rig", heap="300k", firmware=firmware_tree(), on_reading=alarms.on_reading)
    try:
        h = rig.add_hub(HUB, MAIN, {"total": TOTAL, "alarm_every": 3, "interval_ms": 50,
                                    "ota": {"window": 4, "retry_ms": 300, "trial_s": 60}})
        Flash(h.flash).write_files({"/keys/release.pub": nb.crypto_sign_seed_keypair(SEED)[0]})
        rig.start()
        login = ota_login(rig)
        seen = []  # (version, state) as `samband ota watch` sees them change
        watch = Fleet(None, on_progress=lambda hub, st: seen.append((st.get("v"), st.get("st"))), **login).start()
        r = Rollout(good, [HUB], chunk=4096, gate=alarms.gate, **login).start()
        try:
            assert r.wait(TIMEOUT), f"hub at {r.progress.get(HUB)}"
            r.clear()
        finally:
            r.close()
        assert h._read("/fw/active") == b"a"
        alarms.check(h)

        assert rolled_back(rig, bad, HUB, login, TIMEOUT, "the bad release rolled back")["v"] == "0.2.0"
        assert h._read("/fw/active") == b"a"  # the roll-back noted: slot a, confirmed
        # boots: the first, the trial of 0.2.0 (confirmed), the trial of 0.3.0 (crashed), back on 0.2.0;
        # the receiver's record of which hub runs what (receiver/versions.py), from the same statuses
        row = after_rollback(rig, h, TOTAL, TIMEOUT, watch, seen,
                             [("0.1.0", "fetch"), ("0.2.0", "trial"), ("0.2.0", "failed")])
        assert (row["hub"], row["version"], row["slot"]) == (HUB, "0.2.0", "a"), row
        hist = [(x["version"], x["previous"]) for x in versions.history(rig.store, HUB)]
        assert hist[:2] == [("0.1.0", None), ("0.2.0", "0.1.0")] and hist[-1] == ("0.2.0", hist[-1][1]), hist
    finally:
        if watch is not None:
            watch.close()
        rig.stop()
