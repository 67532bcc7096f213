"""`samband discover`: USB serial ports matched against the VID:PIDs the boards
name (pyserial's port list injected, since a pty has no USB ids), and each
candidate asked `?status` on its console: a real virtual hub answers, a silent
port is listed as silent, a vanished one says why."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

from samband.device import boards, discover


def usb(device, vid, pid, description="USB serial"):
    return SimpleNamespace(device=device, vid=vid, pid=pid, description=description)


def test_usb_ids_come_from_board_json():
    ids = discover.usb_ids(boards.load(n) for n in boards.names())
    assert "esp32-devkit" in ids["10c4:ea60"]  # CP2102 on the DevKitC (and on other boards' adapters)
    assert ids["2e8a:0005"] == ["picow"]  # MicroPython's own USB CDC on the RP2040
    assert discover.usb_ids([{"name": "x", "console": {"usb_ids": ["2E8A:0005"]}}, {"name": "y"}]) == \
        {"2e8a:0005": ["x"]}


def test_only_ports_with_a_boards_ids_are_candidates():
    ids = {"10c4:ea60": ["esp32-devkit"], "2e8a:0005": ["picow"]}
    ports = [usb("/dev/ttyUSB1", 0x10C4, 0xEA60, "CP2102"), usb("/dev/ttyACM0", 0x2E8A, 0x0005),
             usb("/dev/ttyUSB0", 0x0403, 0x6015), usb("/dev/ttyS0", None, None)]
    found = discover.match(ports, ids)
    assert [(c.port, c.boards, c.usb) for c in found] == [("/dev/ttyACM0", ["picow"], "2e8a:0005"),
                                                           ("/dev/ttyUSB1", ["esp32-devkit"], "10c4:ea60")]


def test_ports_given_by_hand_are_added_once():
    listed = [usb("/dev/ttyACM0", 0x2E8A, 0x0005)]
    found = discover.candidates(["/dev/pts/9", "/dev/ttyACM0", "/dev/pts/9"], list_ports=lambda: listed)
    assert [(c.port, c.boards) for c in found] == [("/dev/ttyACM0", ["picow"]), ("/dev/pts/9", [])]


def test_a_virtual_hub_answers_a_silent_port_does_not(vhub, tmp_path):
    quiet_master, quiet_slave = os.openpty()  # a serial port with nothing behind it
    try:
        silent = os.ttyname(quiet_slave)
        rows = discover.discover([vhub.port, silent, str(tmp_path / "gone")], timeout=3.0,
                                 list_ports=lambda: [])
    finally:
        os.close(quiet_master)
        os.close(quiet_slave)
    hub, quiet, gone = rows
    assert hub["port"] == vhub.port and hub["hub"] == "00005a4d0001" and hub["board"] == "vhub"
    assert hub["version"] and hub["tree"] == "/"
    assert hub["state"].startswith("not provisioned")  # what the hub says about itself
    assert quiet["hub"] is None and quiet["state"] == "no answer"
    assert gone["hub"] is None and gone["state"].startswith("no serial port")
    text = discover.table(rows)
    assert text.splitlines()[0].split() == ["port", "hub", "board", "version", "state"]
    assert "00005a4d0001" in text.splitlines()[1]


def test_cli_json_lists_the_virtual_hub(vhub):
    p = subprocess.run([sys.executable, "-m", "samband.cli", "discover", "--port", vhub.port, "--json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = [r for r in json.loads(p.stdout) if r["port"] == vhub.port]
    assert rows and rows[0]["hub"] == "00005a4d0001" and rows[0]["board"] == "vhub"
