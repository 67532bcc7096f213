"""`samband config push` to a provisioned virtual hub running the whole firmware
(hub/app.py, under the full heap) through a real Mosquitto: limits and then a new
receiver key reach it over its own uplink and are in force without a reboot (its
status says so, its flash keeps them); a laptop with the depot's files but its own
authority key is refused, in one line, and the hub counts it; bad options are one
line each."""

import os
import shutil
import time

from conftest import firmware_tree

from samband.cli import main
from samband.device import console
from samband.device.depot import Depot
from samband.rig.broker import Broker
from samband.rig.hubs import FULL_HEAP
from samband.vhub import Flash, VirtualHub

UID = "00005a4d00cc"


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def status_until(ser, ok, timeout=30):
    end, s = time.monotonic() + timeout, None
    while time.monotonic() < end:
        s = console.status(ser, timeout=5)
        if s and ok(s):
            return s
        time.sleep(0.2)
    raise AssertionError(f"the hub's status never got there: {s}")


def test_limits_and_receiver_keys_pushed_to_a_running_hub(tmp_path, capsys):
    firmware_tree()
    broker = Broker(tmp_path / "broker")
    pw = tmp_path / "mqtt.pw"
    pw.write_text(broker.add_hub(UID) + "\n")
    depot = tmp_path / "depot"
    with broker:
        code, out, err = cli(capsys, "provision", "--flash", tmp_path / "flash", "--depot", depot, "--uid", UID,
                             "--broker", f"localhost:{broker.port}", "--broker-ca", broker.ca_pem,
                             "--broker-password-file", pw)
        assert code == 0, err
        login = ["--host", "localhost", "--port", broker.port, "--ca", broker.ca_pem,
                 "--password-file", broker.folder / "receiver.password", "--timeout", 60]
        # bad options: one line each, nothing sent
        for args, says in ((["--set", "glucose:high=250", "--receiver-keys"], "say what to push"),
                           ([], "say what to push"),
                           (["--set", "glucose:high=x"], "is not a number")):
            code, out, err = cli(capsys, "config", "push", "--hub", UID, *args, *login, "--depot", depot)
            assert code == 1 and err.startswith("samband: ") and says in err and err.count("\n") == 1, err
        code, out, err = cli(capsys, "config", "push", "--hub", "zz", "--receiver-keys", *login, "--depot", depot)
        assert code == 1 and err.startswith("samband: --hub 'zz'") and err.count("\n") == 1, err

        with VirtualHub(tmp_path / "flash", heap=FULL_HEAP, uid=UID) as hub, console.open_port(hub.port) as ser:
            s = status_until(ser, lambda s: s.get("uplink", {}).get("connected"))
            assert s["cfg"] == {"k": 1, "l": 0} and s["problems"] == [], s  # provisioning's keys, default limits

            code, out, err = cli(capsys, "config", "push", "--hub", UID, "--set", "glucose:low=70,high=250",
                                 *login, "--depot", depot)
            assert code == 0, err
            serial = int(out.split("limits config ")[1].split()[0])
            assert f"hub {UID} runs limits config {serial}" in out
            s = status_until(ser, lambda s: s["cfg"]["l"] == serial)
            assert "bad" not in s["cfg"], s

            kid = max(Depot(depot, create=False).receiver_keys()) + 1
            Depot(depot, create=False).new_receiver_key(kid)  # the receivers would be restarted with it now
            code, out, err = cli(capsys, "config", "push", "--hub", UID, "--receiver-keys", *login, "--depot", depot)
            assert code == 0, err
            kserial = int(out.split("receiver-key config ")[1].split()[0])
            assert f"(keys {kid}, 1)" in out
            s = status_until(ser, lambda s: s["cfg"]["k"] == kserial)

            # a laptop with a copy of the depot's files but an authority key of its own
            thief = tmp_path / "thief"
            shutil.copytree(depot, thief)
            (thief / "authority.key").write_bytes(os.urandom(32))
            code, out, err = cli(capsys, "config", "push", "--hub", UID, "--set", "glucose:low=20", *login,
                                 "--depot", thief)
            assert code == 1 and f"samband: hub {UID} refused limits config" in err and "(forged)" in err, err
            assert err.count("\n") == 1
            s = status_until(ser, lambda s: s["cfg"].get("bad") == 1)
            assert s["cfg"]["l"] == serial and s["cfg"]["r"] == "forged", s
    flash = Flash(tmp_path / "flash")
    assert flash.read("/keys/receivers")[1:5] == kserial.to_bytes(4, "big")
    assert flash.read("/keys/receivers")[6] == kid  # sealed to the new key first, at the next boot too
    assert flash.read("/keys/limits")[1:5] == serial.to_bytes(4, "big")
