"""`samband provision`: keys and configuration onto a hub, and the depot that remembers them."""

import json
import stat
import subprocess
import sys

from samband.depot import Depot
from samband.transport import Hub
from samband.vhub import VirtualHub

from conftest import firmware_tree


def run(*args):
    return subprocess.run([sys.executable, "-m", "samband.cli", *args], capture_output=True, text=True, timeout=60)


def test_provision_a_virtual_hub(tmp_path):
    flash, depot = tmp_path / "flash", tmp_path / "depot"
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n")
    pw = tmp_path / "pw"
    pw.write_text("s3cret-mqtt\n")
    p = run("provision", "--flash", str(flash), "--depot", str(depot), "--device", "glucose=C0:FF:EE:00:00:01",
            "--device", "polar=c0:ff:ee:00:00:02/r", "--pairing", "60", "--rebond", "window", "--broker", "127.0.0.1:8883",
            "--broker-ca", str(ca), "--broker-password-file", str(pw))
    assert p.returncode == 0, p.stderr
    assert "provisioned hub 00005a4d0001" in p.stdout
    hub_key = (flash / "keys" / "hub.key").read_bytes()
    assert len(hub_key) == 32 and hub_key.hex() not in p.stdout + p.stderr  # never printed
    assert stat.S_IMODE((depot / "authority.key").stat().st_mode) == 0o600
    assert (flash / "keys" / "ca.der").read_bytes() == bytes(range(6))  # PEM converted to DER
    assert (flash / "keys" / "mqtt.password").read_bytes() == b"s3cret-mqtt" and "s3cret" not in p.stdout
    devices = json.loads((flash / "config" / "devices.json").read_text())["devices"]
    assert devices == [{"addr": "C0:FF:EE:00:00:01", "kind": "glucose", "name": ""},
                       {"addr": "C0:FF:EE:00:00:02/r", "kind": "polar", "name": ""}]
    cfg = json.loads((flash / "config" / "hub.json").read_text())
    assert cfg == {"pairing_s": 60, "rebond": "window", "uplink": {"host": "127.0.0.1", "port": 8883}}
    d = Depot(depot, create=False)
    assert "00005a4d0001" in d.hubs()
    assert 1 in d.receiver_keys()
    # the hub accepts what it was given: it boots with a sealer and a journal, no problems
    firmware_tree()
    with VirtualHub(flash, heap="256k") as hub, Hub(hub.port) as h:
        out = h.exec("from hub import app\nh = app.boot_quiet()\nh.start_services()\nprint(h.problems)\n"
                     "print(h.sealer is not None, h.journal is not None)")
        problems, ready = out.split("\n")[:2]
        assert ready == "True True", out
        # keys and journal are fine; the only thing missing is a radio (no BLE bridge given)
        assert problems == "['no BLE radio: start the virtual hub with SAMBAND_BLE_BRIDGE=host:port']", out
        # a configuration the hub cannot follow is said in words, and the stricter choice taken
        (flash / "config" / "hub.json").write_text(json.dumps(dict(cfg, rebond="sometimes")))
        out = h.exec("h = app.boot_quiet()\nh.start_services()\nprint(h.problems)")
        assert "config: rebond \\'sometimes\\' is neither \"auto\" nor \"window\"; using \"window\"" in out, out


def test_provision_errors_are_one_line(tmp_path):
    p = run("provision", "--flash", str(tmp_path / "f"), "--depot", str(tmp_path / "d"), "--device", "toaster=00:11:22:33:44:55")
    assert p.returncode == 1 and p.stderr.startswith("samband: --device 'toaster=") and "Traceback" not in p.stderr
    p = run("provision", "--flash", str(tmp_path / "f"), "--depot", str(tmp_path / "d"), "--device", "glucose=00:11")
    assert p.returncode == 1 and "not a BLE address" in p.stderr
    p = run("provision", "--depot", str(tmp_path / "d"))
    assert p.returncode == 1 and "--flash DIR" in p.stderr
    p = run("provision", "--flash", str(tmp_path / "f"), "--depot", str(tmp_path / "d"), "--broker", "nohost")
    assert p.returncode == 1 and "HOST:PORT" in p.stderr


def test_unprovisioned_hub_says_so(tmp_path):
    firmware_tree()
    with VirtualHub(tmp_path / "flash") as hub, Hub(hub.port) as h:
        out = h.exec("from hub import app\nh = app.boot_quiet()\nh.start_services()\nprint(h.problems)")
        assert "not provisioned" in out
