"""`samband limits`: per-patient alarm limits made with the depot's authority key, taken by
a virtual hub running the whole firmware; a stolen laptop (no authority key, or one of its
own) cannot widen them, and a replayed config is refused."""

import json
import shutil
import subprocess
import sys

from conftest import firmware_tree

from samband.device.console import format_status
from samband.device.transport import Hub
from samband.vhub import Flash, VirtualHub

HUB_SAYS = """\
from hub import alarms, app, kinds, reading
h = app.boot_quiet()
h.start_services()
k = kinds.get("cgm")
def prio(v):
    return alarms.classify({reading.MDC: 160212, reading.VAL: v, reading.UNIT: "mg/dL"}, k.LIMITS, k.ALARM_FLAGS)
print(app.json.dumps({"limits": h.status().get("limits"), "problems": h.problems,
                      "prio": [prio(45), prio(65), prio(120), prio(300)]}))
"""
# what the hub thinks of 45, 65, 120, 300 mg/dL: alarm (1) or routine (0)
DEFAULTS = [1, 0, 0, 0]  # level 2 hypoglycaemia below 54, above 400
PATIENT = [1, 1, 0, 1]  # this patient's limits: 70..250


def run(*args):
    return subprocess.run([sys.executable, "-m", "samband.cli", *args], capture_output=True, text=True, timeout=60)


def ask(port, before=""):
    with Hub(port) as h:
        return json.loads(h.exec(before + HUB_SAYS).strip().splitlines()[-1])


def test_limits_reach_the_hub_and_a_stolen_laptop_cannot_widen_them(tmp_path):
    flash, depot, laptop = tmp_path / "flash", tmp_path / "depot", tmp_path / "laptop"
    p = run("provision", "--flash", str(flash), "--depot", str(depot), "--device", "cgm=C0:FF:EE:00:00:01")
    assert p.returncode == 0, p.stderr
    for bad, words in ((["--set", "glucose:low=250,high=70"], "not below high"),
                       (["--set", "glucose:lo=70"], "low=N and/or high=N"),
                       (["--set", "sugar:low=70"], "glucose, glucose_mmol, spo2"), ([], "say which limits")):
        p = run("limits", "--flash", str(flash), "--depot", str(depot), *bad)
        assert p.returncode == 1 and words in p.stderr and "Traceback" not in p.stderr, (bad, p.stderr)
    p = run("limits", "--flash", str(flash), "--depot", str(depot), "--set", "glucose:low=70,high=250",
            "--set", "spo2:low=92")
    assert p.returncode == 0, p.stderr
    assert "glucose: alarm below 70 and above 250 mg/dL" in p.stdout and "spo2: alarm below 92 %" in p.stdout
    serial = json.loads((depot / "limits.json").read_text())["00005a4d0001"]["serial"]
    genuine = Flash(flash).read("/keys/limits.new")
    # the laptop: the depot's files copied, all but the authority key
    shutil.copytree(depot, laptop, ignore=shutil.ignore_patterns("authority.key"))
    p = run("limits", "--flash", str(flash), "--depot", str(laptop), "--set", "glucose:low=40,high=400")
    assert p.returncode == 1 and "no authority key" in p.stderr, p.stderr
    assert not (laptop / "authority.key").exists()  # and none made on the way
    assert Flash(flash).read("/keys/limits.new") == genuine

    firmware_tree()
    with VirtualHub(flash, heap="256k") as hub:
        assert format_status({"limits": {"serial": 0, "rules": 0, "refused": 0}}).endswith(
            " | limits the kinds' defaults")
        s = ask(hub.port)
        assert s["limits"] == {"serial": serial, "rules": 2, "refused": 0}, s
        assert not [x for x in s["problems"] if "limits" in x] and s["prio"] == PATIENT, s
        # the laptop with an authority key of its own reaches the hub through its port...
        (laptop / "authority.key").write_bytes(bytes(range(32)))
        (laptop / "authority.key").chmod(0o600)
        p = run("limits", "--port", hub.port, "--depot", str(laptop), "--set", "glucose:low=40,high=400")
        assert p.returncode == 0 and "(the hub restarted)" in p.stdout, p.stderr
        # ... and the hub, restarted by it, refuses its config as it boots: the patient's limits stay.
        # Its running application says so (samband status, the technician's way).
        p = run("status", "--json", "--timeout", "30", hub.port)
        assert p.returncode == 0, p.stderr
        s = json.loads(p.stdout)
        assert s["limits"] == {"serial": serial, "rules": 2, "refused": 1}, s
        assert [x for x in s["problems"] if "not authentic" in x and "limits %d stay" % serial in x], s
        assert format_status(s).endswith(f" | limits {serial} (2 rules), 1 refused")
        assert ask(hub.port)["prio"] == PATIENT
        # the genuine config again (a replay, say from a backup of the flash): refused too
        s = ask(hub.port, "f = open('/keys/limits.new', 'wb')\nf.write(%r)\nf.close()\n" % genuine)
        assert s["limits"]["refused"] == 2 and s["prio"] == PATIENT, s
        assert [x for x in s["problems"] if "replayed" in x], s
