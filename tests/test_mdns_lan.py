"""`samband discover --lan`'s unicast path against the hub's own mDNS responder
(hub/mdnsd.py) running on the MicroPython unix port: the query is made and the
reply parsed by zeroconf (host/samband/device/lan.py), the responder answers on a
free port of the loopback (never 5353, so parallel workers do not meet), refuses
a malformed packet and counts it. One test also browses by multicast on the loopback
(port 5353, shared: each run's hub has its own id and the test looks for that one)."""

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import FW_TESTS, MPY_HEAP, firmware_tree

from samband.device import lan
from samband.errors import SambandError
from samband.paths import tool


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port, n, uid="00005a4d0001"):
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(firmware_tree()), str(FW_TESTS)]))
    return subprocess.Popen([tool("micropython"), "-X", f"heapsize={MPY_HEAP}", "mdns_serve.py", str(port), str(n),
                             uid], cwd=FW_TESTS, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def responder():
    port = free_udp_port()
    p = serve(port, 3)
    try:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        yield port, p
    finally:
        p.kill()
        p.wait()


def test_unix_port_responder_answers_the_hosts_query(responder):
    port, proc = responder
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\x00\x00\x00\x00\x00\x01" + bytes(6) + b"\xc0\x0c\x00\x0c\x00\x01", ("127.0.0.1", port))
    row = lan.ask("127.0.0.1", port, timeout=10)
    assert row == {"port": f"127.0.0.1:{port}", "usb": "", "hub": "00005a4d0001", "board": "vhub",
                   "version": "0.1.0", "tree": None, "state": "mdns samband-00005a4d0001"}
    assert lan.ask("127.0.0.1", port, timeout=10)["hub"] == "00005a4d0001"
    out, err = proc.communicate(timeout=10)
    assert json.loads(out.strip().splitlines()[-1]) == {"port": port, "joined": False, "answered": 2, "bad": 1,
                                                        "unsent": 0}, err


def test_cli_mdns_lists_the_hub_and_says_when_none_answers(responder):
    port, proc = responder
    p = subprocess.run([sys.executable, "-m", "samband.cli", "discover", "--mdns", f"127.0.0.1:{port}", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [(r["hub"], r["board"], r["version"]) for r in rows if r["usb"] == ""] == [("00005a4d0001", "vhub", "0.1.0")]
    p = subprocess.run([sys.executable, "-m", "samband.cli", "discover", "--mdns", "127.0.0.1:99999"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.strip().splitlines()[-1].endswith("--mdns 127.0.0.1:99999: give HOST:PORT")
    with pytest.raises(SambandError, match=r"^mdns: no answer from 127.0.0.1:\d+ within 0.3 s$"):
        lan.ask("127.0.0.1", free_udp_port(), timeout=0.3)


def test_zeroconf_browse_finds_the_unix_port_responder_by_multicast():
    uid = os.urandom(6).hex()  # other workers' responders may share 5353: find this one
    p = serve(5353, 1000, uid)
    try:
        first = p.stdout.readline().strip()
        if first != "ready":
            pytest.skip(f"UDP 5353 is not ours to bind here: {p.stderr.read().strip()[-200:]}")
        rows = [r for r in lan.browse(1.5, interfaces=["127.0.0.1"]) if r["hub"] == uid]
    finally:
        p.kill()
        p.wait()
    assert [(r["port"], r["board"], r["version"]) for r in rows] == [("127.0.0.1", "vhub", "0.1.0")]
