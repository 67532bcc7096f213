"""samband.rig.netns on its own: the namespaces and veths a virtual hub's
bearers run on, each fault as the firmware's pinned socket
(hub.bearers.pinned on the unix port, run inside the hub namespace) meets
it, a Door between namespaces, and teardown. An echo server in the cloud
namespace stands where the broker would, on the broker's address.

Needs root; skips with the reason otherwise."""

import os
import socket
import subprocess
import threading
from pathlib import Path

from conftest import TESTS, firmware_tree

from samband.paths import tool
from samband.rig import netns


def echo_server(lab):
    """Answers each line with the address it came from, in the cloud, on the broker's address."""
    with netns.inside(lab.cloud):
        srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", netns.BROKER_PORT))
    srv.listen(8)

    def serve(c, peer):
        with c:
            f = c.makefile("rb")
            for line in f:
                c.sendall(b"%s said %s" % (peer.encode(), line))

    def accept():
        while True:
            try:
                c, (peer, _) = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c, peer), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return srv


def probe(lab, *devs):
    """{dev: outcome} from tests/data/pinned_probe.py, run on the unix port in the hub namespace."""
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(firmware_tree())]))
    p = subprocess.run(["ip", "netns", "exec", lab.hub, tool("micropython"), "-X", "heapsize=100k",
                        str(TESTS / "data" / "pinned_probe.py"), netns.BROKER_IP, str(netns.BROKER_PORT),
                        netns.BROKER_NAME, *devs],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in p.stdout.splitlines()}


def test_pinned_sockets_leave_by_their_own_veth_under_each_fault(lab):
    srv = echo_server(lab)
    try:
        assert probe(lab, "sb-a", "sb-b") == {"sb-a": "ok 10.99.1.2 said ping from sb-a",
                                              "sb-b": "ok 10.99.2.2 said ping from sb-b"}
        # black hole on a: nothing comes back on a; b (whose route is not the preferred one) works
        lab.blackhole("a")
        assert probe(lab, "sb-a", "sb-b") == {"sb-a": "timeout", "sb-b": "ok 10.99.2.2 said ping from sb-b"}
        lab.blackhole("a", False)
        # link down: a's connect fails at once (ENETUNREACH), b works; up again, a works
        lab.down("a")
        assert probe(lab, "sb-a", "sb-b") == {"sb-a": "errno 101", "sb-b": "ok 10.99.2.2 said ping from sb-b"}
        lab.up("a")
        # slow link: a's new connections go through the cloud's delaying proxy, bytes intact
        lab.slow("a", 300)
        assert probe(lab, "sb-a") == {"sb-a": "ok 10.99.255.1 said ping from sb-a"}  # from the proxy, in the cloud
        lab.slow("a", None)
        assert probe(lab, "sb-a") == {"sb-a": "ok 10.99.1.2 said ping from sb-a"}
    finally:
        srv.close()


def test_each_bearer_asks_its_own_dns_server_and_dns_faults_fail_only_that_bearer(lab):
    srv = echo_server(lab)
    a, b = "sb-a@10.99.1.1", "sb-b@10.99.2.1"  # each bearer's server: the cloud end of its own veth
    ok_b = "ok 10.99.2.2 said ping from sb-b"
    try:
        assert probe(lab, a, b) == {"sb-a": "ok 10.99.1.2 said ping from sb-a", "sb-b": ok_b}
        lab.dns("a", "drop")
        assert probe(lab, a, b) == {"sb-a": "dns: no answer from 10.99.1.1 for broker.samband.test", "sb-b": ok_b}
        lab.dns("a", "nxdomain")
        assert probe(lab, a, b) == {"sb-a": "dns: no such name", "sb-b": ok_b}
        lab.dns("a", "servfail")
        assert probe(lab, a, b) == {"sb-a": "dns: server failure (rcode 2)", "sb-b": ok_b}
        lab.dns("a", None)
        # a black hole takes DNS with it
        lab.blackhole("a")
        assert probe(lab, a) == {"sb-a": "dns: no answer from 10.99.1.1 for broker.samband.test"}
    finally:
        srv.close()


def test_a_door_reaches_the_cloud_from_here_and_teardown_leaves_nothing(lab):
    srv = echo_server(lab)
    try:
        door = lab.door(None, lab.cloud, (netns.BROKER_IP, netns.BROKER_PORT))
        with socket.create_connection(("127.0.0.1", door.port), timeout=10) as c:
            c.sendall(b"hello\n")
            assert c.makefile("rb").readline() == b"10.99.255.1 said hello\n"  # the door's socket is in the cloud
    finally:
        srv.close()
    names = (lab.hub, lab.cloud)
    lab.close()
    assert not any((netns.NETNS_DIR / n).exists() for n in names)
    # a namespace left by a process that is gone is swept by the next lab
    pid = 9_999_999  # above Linux's largest pid_max (2**22): no such process
    assert not Path(f"/proc/{pid}").exists()
    subprocess.run(["ip", "netns", "add", f"sb{pid}-0-hub"], check=True)
    try:
        assert netns.sweep() >= 1
        assert not (netns.NETNS_DIR / f"sb{pid}-0-hub").exists()
    finally:
        subprocess.run(["ip", "netns", "del", f"sb{pid}-0-hub"], capture_output=True)
