"""`samband provision`: keys and configuration onto a hub, and the depot that remembers them."""

import json
import stat
import subprocess
import sys

from conftest import firmware_tree

from samband.device import vault
from samband.device.depot import Depot
from samband.device.transport import Hub
from samband.rig.broker import make_certs
from samband.vhub import Flash, VirtualHub


def run(*args):
    return subprocess.run([sys.executable, "-m", "samband.cli", *args], capture_output=True, text=True, timeout=60)


def test_provision_a_virtual_hub(tmp_path):
    flash, depot = tmp_path / "flash", tmp_path / "depot"
    make_certs(tmp_path, "localhost")  # a real CA certificate: provision refuses anything else
    ca = tmp_path / "ca.pem"
    pw = tmp_path / "pw"
    pw.write_text("s3cret-mqtt\n")
    p = run("provision", "--flash", str(flash), "--depot", str(depot), "--device", "glucose=C0:FF:EE:00:00:01",
            "--device", "polar=c0:ff:ee:00:00:02/r", "--pairing", "60", "--rebond", "window",
            "--rr-intervals", "keep", "--broker", "127.0.0.1:8883",
            "--broker-ca", str(ca), "--broker-password-file", str(pw))
    assert p.returncode == 0, p.stderr
    assert "provisioned hub 00005a4d0001" in p.stdout
    image = Flash(flash)  # the virtual hub's flash is a littlefs image (vhub/flash.py)
    assert stat.S_IMODE(image.image.stat().st_mode) == 0o600  # it holds the hub's secret key
    hub_key = image.read("/keys/hub.key")
    assert len(hub_key) == 32 and hub_key.hex() not in p.stdout + p.stderr  # never printed
    assert stat.S_IMODE((depot / "authority.key").stat().st_mode) == 0o600
    assert image.read("/keys/ca.der") == (tmp_path / "ca.der").read_bytes()  # PEM converted to DER
    # the MQTT password is sealed under the hub's key (the vault), never on the flash in clear
    assert not image.exists_file("/keys/mqtt.password") and "s3cret" not in p.stdout + p.stderr
    assert b"s3cret" not in image.image.read_bytes()
    assert vault.unseal(image.read("/keys/vault"), hub_key) == {"mqtt": "s3cret-mqtt"}
    devices = json.loads(image.read("/config/devices.json"))["devices"]
    assert devices == [{"addr": "C0:FF:EE:00:00:01", "kind": "glucose", "name": ""},
                       {"addr": "C0:FF:EE:00:00:02/r", "kind": "polar", "name": ""}]
    cfg = json.loads(image.read("/config/hub.json"))
    assert cfg == {"pairing_s": 60, "rebond": "window", "keep_rr": True,
                   "uplink": {"host": "127.0.0.1", "port": 8883, "password_sealed": "mqtt"}}
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
        h.exec(f"f = open('/config/hub.json', 'w')\nf.write({json.dumps(dict(cfg, rebond='sometimes'))!r})\nf.close()")
        out = h.exec("h = app.boot_quiet()\nh.start_services()\nprint(h.problems)")
        assert "config: rebond \\'sometimes\\' is neither \"auto\" nor \"window\"; using \"window\"" in out, out


def test_provision_errors_are_one_line(tmp_path):
    p = run("provision", "--flash", str(tmp_path / "f"), "--depot", str(tmp_path / "d"),
            "--device", "toaster=00:11:22:33:44:55")
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


def test_provision_refuses_a_kind_the_board_cannot_collect(tmp_path):
    # issue 18: the Pico W's MicroPython cannot bond; glucose and CGM need a bond
    p = run("provision", "--flash", str(tmp_path / "f"), "--depot", str(tmp_path / "d"), "--board", "picow",
            "--device", "polar=C0:FF:EE:00:00:02", "--device", "glucose=C0:FF:EE:00:00:01")
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1 and "glucose" in p.stderr and "picow cannot bond" in p.stderr, p.stderr
    assert "esp32-devkit" in p.stderr  # where it would work
    assert not (tmp_path / "f").exists() and not (tmp_path / "d").exists()  # nothing half-written
    for board, device in (("picow", "polar=C0:FF:EE:00:00:02"), ("esp32-devkit", "glucose=C0:FF:EE:00:00:01")):
        p = run("provision", "--flash", str(tmp_path / board), "--depot", str(tmp_path / "d"), "--board", board,
                "--device", device)
        assert p.returncode == 0, p.stderr


def test_every_board_says_whether_it_can_bond():
    import pytest

    from samband.device import boards
    from samband.errors import BoardError
    assert {n: boards.load(n)["ble_bonding"] for n in ("esp32-devkit", "picow", "vhub")} == \
        {"esp32-devkit": True, "picow": False, "vhub": True}
    with pytest.raises(BoardError, match="ble_bonding"):
        boards.validate({k: v for k, v in boards.load("picow").items() if k != "ble_bonding"})


def test_docs_board_table_matches_the_kinds_and_boards():
    import re
    from pathlib import Path

    from hub import kinds
    from samband.device import boards
    text = (Path(__file__).resolve().parent.parent / "docs" / "ble.md").read_text()
    rows = {m.group(1): m.group(2, 3, 4, 5) for m in re.finditer(
        r"^\| (\w+) \| (yes|no) \| (\S+) \| (\S+) \| (\S+) \|$", text, re.M)}
    assert set(rows) == set(kinds.names())
    for k, (bond, esp, pico, vhub) in rows.items():
        assert bond == ("yes" if kinds.get(k).BOND else "no"), k
        for name, cell in (("esp32-devkit", esp), ("picow", pico), ("vhub", vhub)):
            can = not boards.kinds_it_cannot_serve(boards.load(name), [k])
            assert cell.strip("*") == ("yes" if can else "no"), (k, name)
