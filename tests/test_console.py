"""The technician's console: `samband status`, `console` and `selftest` talk to
the running hub (a line protocol its application reads), so that after them the
hub is still the same boot, still collecting - never stopped at a REPL, as the
raw-REPL status did. Runs the real commands against the full firmware on the
virtual hub, with an emulated glucose meter over the BLE bridge."""

import json
import subprocess
import sys

import test_ble_e2e
from test_ble_e2e import GLUCOSE, dev, hub_addr

from hub import console as fw_console
from samband.rig.hubs import Rig

bridge_factory = test_ble_e2e.bridge_factory  # the end-to-end tests' fixture, here too


def cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "samband.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_request_lines_parse():
    assert fw_console.parse(b"?status\r\n") == ("status", None)
    assert fw_console.parse("?pair  120 ") == ("pair", "120")
    assert fw_console.parse(b">>> ?status") is None
    assert fw_console.parse(b"?") is None
    assert fw_console.parse(b"?\xff\xfe") is None
    assert fw_console.parse(b"status") is None


def test_status_console_and_selftest_leave_the_hub_collecting(tmp_path, bridge_factory):
    bridge, where = bridge_factory([{"kind": "glucose", "address": GLUCOSE, "records": 3}])
    with Rig(tmp_path, devices=[{"addr": hub_addr(GLUCOSE), "kind": "glucose", "name": ""}], bridge=where,
             hub_config={"status_ms": 500}) as rig:
        before = rig.wait_status(lambda s: dev(s, GLUCOSE).get("last_rec", -1) >= 3, 120, "the first records")
        with rig.release_console() as port:
            p = cli("status", "--json", port)
            assert p.returncode == 0, p.stderr
            s = json.loads(p.stdout)
            # the running hub's own status: same boot, still up, its devices
            assert s["boot"] == before["boot"] and s["uptime_ms"] > before["uptime_ms"]
            assert dev(s, GLUCOSE)["last_rec"] >= 3
            assert s["led"] == "no-bearer"  # no uplink provisioned: the LED says nothing can leave (hub/led.py)

            p = cli("console", port, "--seconds", "2", "--send", "pair 0", "--send", "help", "--send", "bogus")
            assert p.returncode == 0, p.stderr
            assert "ERR pair seconds must be 1..3600" in p.stdout
            assert 'OK help {"commands": ["status", "pair", "blink", "help"]}' in p.stdout
            assert "ERR bogus unknown command" in p.stdout
            assert "vhub uid 00005a4d0001 | boot 1" in p.stdout  # STATUS lines shown in words

            p = cli("selftest", port, "--blink", "2")
            out = p.stdout
            assert p.returncode == 1, out + p.stderr  # no uplink configured, clock not set: the hub is not ready
            assert "pass  firmware" in out and "pass  keys" in out and "pass  journal" in out
            assert f"pass  device glucose {hub_addr(GLUCOSE)}" in out
            assert "FAIL  uplink" in out and "provision --broker" in out
            assert "look  led" in out and "blinks 2 times" in out
        # still collecting, in the same boot: a new measurement arrives
        bridge.call(bridge.sim(GLUCOSE).measure(2))
        after = rig.wait_status(lambda s: dev(s, GLUCOSE).get("readings", 0) >= dev(before, GLUCOSE)["readings"] + 2,
                                60, "records taken after the checks")
        assert after["boot"] == before["boot"] and rig.hub.boots == 1
        assert not any(line.startswith(">>>") for line in rig.lines), "the hub fell to its REPL"


def test_no_hub_behind_the_port_is_one_line(tmp_path):
    import os
    import pty
    master, slave = pty.openpty()
    try:
        port = os.ttyname(slave)
        for args in (["status", port, "--timeout", "1"], ["selftest", port, "--timeout", "1"]):
            p = cli(*args)
            assert p.returncode == 1 and p.stdout == ""
            assert p.stderr.startswith("samband: no MicroPython hub answered on ") and len(p.stderr.splitlines()) == 1
    finally:
        os.close(master)
        os.close(slave)
