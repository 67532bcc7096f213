"""Network namespaces for the virtual hub's bearers (docs/bearers.md).

A board's bearers are separate interfaces; the host has one network. So a
`NetLab` makes two namespaces with `ip netns`: "hub", where the virtual hub
runs, and "cloud", which holds the broker. Each bearer is one veth pair
between them (`sb-<name>` on the hub side, `hub-<name>` on the cloud side,
its own /24), and the broker's address (`BROKER_IP`, on the cloud's
loopback) is reachable through every one of them, with one route per veth
at a different metric. The hub namespace has no default route at all: the
firmware pins each bearer's sockets to its interface (SO_BINDTODEVICE), so
a socket that is not pinned leaves by the lowest-metric route, and one
pinned to `b` leaves by `b` whatever happens to `a`.

Faults, per bearer (`NetLab.down/up`, `blackhole`, `slow`):
  link down    `ip link set sb-<name> down` in the hub namespace (the hub
               sees its interface go: connects fail at once)
  black hole   nftables drop both ways on `hub-<name>` in the cloud
               namespace (no RST, no FIN: a dead mobile link)
  slow link    user-space delay: new TCP connections of that bearer are
               redirected (nftables) to a delaying proxy in the cloud
               namespace (this kernel has no netem)
  DNS failure  the cloud's DNS server (each bearer's own, on the cloud end
               of its veth, port 53) stops answering that bearer, or answers
               "no such name" or "server failure"
Everything lives in the two namespaces, so deleting them (close(), also on
a failed test, and at the next start for a process that died) removes every
interface, address, route and rule. Names carry the process id, so pytest-
xdist workers never share one.

The receiver and the BLE bridge stay in the host's namespace; a `Door`
forwards TCP from one namespace to another (a socket belongs to the
namespace of the thread that made it, so setns() on the calling thread
for a moment is enough).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from samband.errors import SambandError
from samband.rig.tcp import Listener, close_quietly

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
BROKER_IP = "10.99.255.1"   # the broker, on the cloud's loopback
BROKER_PORT = 8883
BROKER_NAME = "broker.samband.test"  # what the cloud's DNS server answers with BROKER_IP
SLOW_BASE = 9000             # the slow proxy of bearer i listens on SLOW_BASE + i in the cloud
_counter = itertools.count()
_libc = None


class NetnsError(SambandError, RuntimeError):
    """Network namespaces could not be made or used (no root, no nftables): said in one line."""


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


@contextlib.contextmanager
def inside(ns: str | None) -> Iterator[None]:
    """Run the block with this thread in namespace ns (None: where it is).
    Sockets made inside stay in ns after the block."""
    if ns is None:
        yield
        return
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(NETNS_DIR / ns, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(back)
    finally:
        os.close(back)


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode:
        raise NetnsError(f"{' '.join(cmd)}: {p.stderr.strip() or p.returncode}")
    return p


def available() -> str | None:
    """None if this process can make namespaces, veths and nftables rules; else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (run as root, as CI does)"
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"{tool} is missing: apt-get install {pkg} (make setup does, as root)"
    name = f"sbprobe{os.getpid()}"
    p = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if p.returncode:
        return "ip netns add failed: " + p.stderr.strip()
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def sweep() -> int:
    """Delete the namespaces of samband processes that are gone (a killed run); returns how many."""
    n = 0
    if not NETNS_DIR.is_dir():
        return 0
    for p in NETNS_DIR.iterdir():
        m = re.fullmatch(r"sb(\d+)-\d+-(hub|cloud)|sbprobe(\d+)", p.name)
        if not m:
            continue
        pid = int(m.group(1) or m.group(3))
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "netns", "del", p.name], capture_output=True)
            n += 1
    return n


class NetLab:
    """Two namespaces and one veth pair per bearer; see the module's doc."""

    def __init__(self, bearers: Iterable[str] = ("a", "b")) -> None:
        why = available()
        if why:
            raise NetnsError(why)
        sweep()
        tag = f"sb{os.getpid()}-{next(_counter)}"
        self.hub, self.cloud = tag + "-hub", tag + "-cloud"
        self.bearers = list(bearers)
        self.holes: set[str] = set()
        self.slowed: dict[str, int] = {}
        self._proxies: dict[str, SlowProxy] = {}
        self._doors: list[Door] = []
        self.dns_server = None
        self.closed = False
        try:
            for n in (self.hub, self.cloud):
                subprocess.run(["ip", "netns", "add", n], check=True, capture_output=True)
                ip("link", "set", "lo", "up", ns=n)
            ip("addr", "add", BROKER_IP + "/32", "dev", "lo", ns=self.cloud)
            for i, name in enumerate(self.bearers):
                self._veth(i, name)
            self._rules()
            self.dns_server = DnsServer(self.cloud, {BROKER_NAME: BROKER_IP})
        except BaseException:
            self.close()
            raise

    def dev(self, name: str) -> str:
        """The hub-side interface of bearer name (what the firmware pins its sockets to)."""
        return "sb-" + name

    def _veth(self, i: int, name: str) -> None:
        hub_dev, cloud_dev = self.dev(name), "hub-" + name
        # made directly in their namespaces: the names never meet the host's
        ip("link", "add", hub_dev, "netns", self.hub, "type", "veth", "peer", "name", cloud_dev,
           "netns", self.cloud)
        net = f"10.99.{i + 1}."
        ip("addr", "add", net + "2/24", "dev", hub_dev, ns=self.hub)
        ip("addr", "add", net + "1/24", "dev", cloud_dev, ns=self.cloud)
        ip("link", "set", hub_dev, "up", ns=self.hub)
        ip("link", "set", cloud_dev, "up", ns=self.cloud)
        self._route(i, name)

    def _route(self, i: int, name: str) -> None:
        ip("route", "replace", BROKER_IP + "/32", "via", f"10.99.{i + 1}.1", "dev", self.dev(name),
           "metric", str(100 + i), ns=self.hub)

    def _rules(self) -> None:
        """The cloud's nftables table, rewritten whole (atomically) at every change."""
        holes = ", ".join('"hub-%s"' % n for n in sorted(self.holes))
        lines = ["table inet samband", "delete table inet samband", "table inet samband {",
                 " chain input { type filter hook input priority 0; policy accept;"
                 + (f" iifname {{ {holes} }} drop;" if holes else "") + " }",
                 " chain output { type filter hook output priority 0; policy accept;"
                 + (f" oifname {{ {holes} }} drop;" if holes else "") + " }",
                 " chain pre { type nat hook prerouting priority -100; policy accept;"]
        for name in sorted(self.slowed):
            i = self.bearers.index(name)
            lines[-1] += f' iifname "hub-{name}" tcp dport {BROKER_PORT} redirect to :{SLOW_BASE + i};'
        lines[-1] += " }"
        lines.append("}")
        p = subprocess.run(["ip", "netns", "exec", self.cloud, "nft", "-f", "-"], input="\n".join(lines) + "\n",
                           capture_output=True, text=True)
        if p.returncode:
            raise NetnsError("nft: " + p.stderr.strip())

    # -- faults -------------------------------------------------------------------
    def down(self, name: str) -> None:
        """Link down: the hub's interface of this bearer goes down (its routes with it)."""
        ip("link", "set", self.dev(name), "down", ns=self.hub)

    def up(self, name: str) -> None:
        ip("link", "set", self.dev(name), "up", ns=self.hub)
        self._route(self.bearers.index(name), name)

    def blackhole(self, name: str, on: bool = True) -> None:
        """Every packet of this bearer dropped both ways, open connections too."""
        (self.holes.add if on else self.holes.discard)(name)
        self._rules()

    def slow(self, name: str, delay_ms: int | None) -> None:
        """Delay every byte of this bearer's TCP connections to the broker by delay_ms each way
        (None: no delay). Connections opened from now on: an open one keeps its path."""
        if delay_ms is None:
            self.slowed.pop(name, None)
        else:
            if name not in self._proxies:
                self._proxies[name] = SlowProxy(self.cloud, SLOW_BASE + self.bearers.index(name))
            self._proxies[name].delay = delay_ms / 1000
            self.slowed[name] = delay_ms
        self._rules()

    def dns(self, name: str, mode: str | None) -> None:
        """The DNS server's answers to this bearer: None (the address), "drop" (none at all),
        "nxdomain" (no such name), "servfail" (server failure)."""
        if mode not in (None, "drop", "nxdomain", "servfail"):
            raise ValueError(mode)
        self.dns_server.modes[f"10.99.{self.bearers.index(name) + 1}.2"] = mode

    # -- helpers ------------------------------------------------------------------
    def door(self, listen_ns: str | None, target_ns: str | None, target: tuple[str, int],
             listen: tuple[str, int] = ("127.0.0.1", 0)) -> "Door":
        d = Door(listen_ns, target_ns, target, listen)
        self._doors.append(d)
        return d

    def bearer_config(self, port: int = BROKER_PORT, dns: bool = False) -> list[dict]:
        """The hub config's "bearers" list for this lab, in provisioned order. dns: each
        bearer resolves the uplink's host name (BROKER_NAME) at its own DNS server."""
        out = []
        for i, n in enumerate(self.bearers):
            b = {"kind": "hostnet", "name": n, "dev": self.dev(n), "host": BROKER_IP, "port": port}
            if dns:
                b["dns"] = f"10.99.{i + 1}.1"
            out.append(b)
        return out

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for d in self._doors:
            d.close()
        for p in self._proxies.values():
            p.close()
        if self.dns_server is not None:
            self.dns_server.close()
        for n in (self.hub, self.cloud):  # the veths, addresses, routes and rules go with them
            subprocess.run(["ip", "netns", "del", n], capture_output=True)

    def __enter__(self) -> NetLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pump(a: socket.socket, b: socket.socket, delay: "SlowProxy | None" = None) -> None:
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            if delay is not None and delay.delay > 0:
                time.sleep(delay.delay)  # one chunk at a time, each held that long after it arrived
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        close_quietly(s)


class Door(Listener):
    """TCP from a listening address in one namespace to a target in another
    (None: the host's). What the receiver uses to reach the broker in the
    cloud, and the hub to reach the host's BLE bridge."""

    def __init__(self, listen_ns: str | None, target_ns: str | None, target: tuple[str, int],
                 listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.target_ns, self.target = target_ns, tuple(target)
        with inside(listen_ns):
            srv = socket.socket()
        Listener.__init__(self, listen, 16, srv)
        self.start("netns-door")

    def _connect(self) -> socket.socket:
        with inside(self.target_ns):
            return socket.create_connection(self.target, timeout=5)

    def take(self, c: socket.socket) -> None:
        try:
            u = self._connect()
            u.settimeout(None)
        except OSError:
            c.close()
            return
        threading.Thread(target=_pump, args=(c, u, self._delay()), daemon=True).start()
        threading.Thread(target=_pump, args=(u, c, self._delay()), daemon=True).start()

    def _delay(self):
        return None

    def close(self) -> None:
        close_quietly(self.srv)


class SlowProxy(Door):
    """In the cloud: what a slowed bearer's connections are redirected to; on to the broker,
    each chunk held `delay` seconds each way."""

    def __init__(self, cloud: str, port: int) -> None:
        self.delay = 0.0
        Door.__init__(self, cloud, cloud, (BROKER_IP, BROKER_PORT), ("0.0.0.0", port))

    def _delay(self):
        return self


class DnsServer:
    """A DNS server in the cloud on port 53 of every cloud address: A records
    from `names`, per querying address a fault mode (NetLab.dns)."""

    def __init__(self, ns: str, names: dict[str, str]) -> None:
        self.names = {k.lower(): v for k, v in names.items()}
        self.modes: dict[str, str | None] = {}
        self.queries = 0
        with inside(ns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", 53))
        threading.Thread(target=self._serve, daemon=True, name="netns-dns").start()

    def _serve(self) -> None:
        while True:
            try:
                q, peer = self.sock.recvfrom(512)
            except OSError:
                return
            self.queries += 1
            try:
                reply = self.reply(q, self.modes.get(peer[0]))
            except (IndexError, ValueError):
                continue  # not a query we can read: no answer
            if reply is not None:
                self.sock.sendto(reply, peer)

    def reply(self, q: bytes, mode: str | None) -> bytes | None:
        if mode == "drop" or len(q) < 17 or q[2] & 0x80:
            return None
        labels, o = [], 12
        while q[o]:
            labels.append(q[o + 1:o + 1 + q[o]].decode("ascii", "replace"))
            o += 1 + q[o]
        o += 5  # the root label, type, class
        question = q[12:o]
        addr = self.names.get(".".join(labels).lower())
        rcode = 2 if mode == "servfail" else (3 if mode == "nxdomain" or addr is None else 0)
        qtype = int.from_bytes(q[o - 4:o - 2], "big")
        answers = b""
        if rcode == 0 and qtype == 1:
            answers = (b"\xc0\x0c" + (1).to_bytes(2, "big") + (1).to_bytes(2, "big") + (30).to_bytes(4, "big")
                       + (4).to_bytes(2, "big") + socket.inet_aton(addr))
        head = q[:2] + bytes([0x81, 0x80 | rcode]) + (1).to_bytes(2, "big") + (1 if answers else 0).to_bytes(2, "big")
        return head + b"\x00\x00\x00\x00" + question + answers

    def close(self) -> None:
        self.sock.close()
