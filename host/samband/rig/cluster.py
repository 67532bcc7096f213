"""A 3-node NATS cluster (JetStream + its MQTT gateway) on loopback, for the receiver fleet.

Why NATS and not RabbitMQ: docs/uplink.md, "Fleet". `NatsCluster(folder)`
writes certificates (the same CA code as the Mosquitto broker), one config
per node and the users with their permissions, then runs Debian's
/usr/sbin/nats-server three times; no system service is involved. Every
port (client, route, MQTT, monitor) is picked free at start, so pytest-xdist
workers can run clusters side by side.

Hubs keep speaking MQTT 3.1.1 over TLS. They reach the cluster through one
address, `port`: a small loopback front (`Front`) that hands each new
connection to the next node that accepts it, as an L4 load balancer or a
DNS name with several addresses does in production. A hub whose node dies
reconnects through it to a live one.

Permissions are as strict as Mosquitto's pattern ACL (rig/broker.py): each
hub is its own user, allowed only on MQTT connections, publishing only to
samband.<id>.up and samband.<id>.status (its MQTT topics samband/<id>/...)
and subscribing only to samband.<id>.ack, .ota and .cfg.*. NATS 2.9 has no
%u pattern, so the config lists every hub; `add_hub` then `reload()`
(SIGHUP) takes a new one in without a restart. The receiver user may use
JetStream's API for the batch stream and its consumer, publish acks (and
ota/cfg) to every hub, and read statuses.

JetStream: a subject mapping turns a hub's samband.<id>.up into
samband.up.<lane>.<id>, the lane a hash of the hub id (`partition`, 8
lanes); the stream `SAMBAND_UP` takes them all, file storage, three
replicas, work-queue retention (a batch is gone once a receiver acks it).
Each lane has a durable consumer that lets one batch out at a time
(max_ack_pending 1) to the receivers' queue group (receiver/fleet.py): a
hub's batches are stored in the order the cluster took them, whichever
receiver takes each. Permissions are checked on the mapped subject, so a
hub may publish to samband.up.*.<its id> (any lane, only its id). The MQTT
gateway's own streams (sessions, QoS 1 deliveries) are replicated three
times too (`stream_replicas`).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from samband.errors import SambandError
from samband.receiver.fleet import GROUP, PARTITIONS, STATUS_SUBJECT, STREAM, UP_SUBJECT, consumer  # noqa: F401
from samband.rig.broker import RECEIVER_USER, BrokerFace, free_port, make_certs
from samband.rig.tcp import Listener, stop_process
from samband.rig.tcp import close_quietly as _close

NATS_SERVER = os.environ.get("SAMBAND_NATS_SERVER", "/usr/sbin/nats-server")


class ClusterError(SambandError):
    pass


def available() -> str | None:
    """None if a cluster can run here, else why not (for a test's skip)."""
    if not Path(NATS_SERVER).exists():
        return f"{NATS_SERVER} is missing: apt-get install nats-server (make setup does, as root)"
    try:
        import nats  # noqa: F401
    except ImportError:
        return "the nats-py package is missing: make setup installs it"
    return None


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(items: list[str]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


class Node:
    def __init__(self, cluster: NatsCluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.dir = cluster.folder / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.client_port = self.route_port = self.mqtt_port = self.http_port = None
        self.proc = None

    @property
    def conf(self) -> Path:
        return self.dir / "nats.conf"

    @property
    def log(self) -> Path:
        return self.dir / "nats.log"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 1500) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


class NatsCluster(BrokerFace):
    """Three nats-server processes with JetStream, MQTT over TLS and per-hub permissions.

    The same face to a rig as rig.broker.Broker (add_hub, users, port,
    ca_pem, ca_der, start, stop, log_tail), plus the nodes for fault tests
    (kill, start_node) and `servers` for the receivers' NATS connections."""

    def __init__(self, folder: str | Path, nodes: int = 3, users: dict[str, str] | None = None,
                 hostname: str = "localhost", partitions: int = PARTITIONS) -> None:
        self.folder = Path(folder)
        self.partitions = partitions
        self.folder.mkdir(parents=True, exist_ok=True)
        self.hostname = hostname
        self.users = dict(users or {})
        if RECEIVER_USER not in self.users:
            self.users[RECEIVER_USER] = secrets.token_hex(16)
        self.nodes = [Node(self, "n%d" % (i + 1)) for i in range(nodes)]
        self.front = None

    # -- the Broker face (the rest in BrokerFace) --------------------------------------
    @property
    def port(self) -> int | None:
        """Where hubs connect (MQTT over TLS): the front, which picks a live node."""
        return self.front.port if self.front else None

    def log_tail(self, n: int = 600) -> str:
        return " | ".join(f"{nd.name}: {nd.log_tail(n)}" for nd in self.nodes)

    # -- configuration ---------------------------------------------------------------
    @property
    def servers(self) -> list[str]:
        """NATS URLs of every node, for receivers (TLS, the cluster's CA)."""
        return [f"tls://localhost:{nd.client_port}" for nd in self.nodes]

    def _authorization(self) -> list[str]:
        out = ["authorization {", "  users = ["]
        for user, pw in self.users.items():
            if user == RECEIVER_USER:
                pub = ["samband.*.ack", "samband.*.ota", "samband.*.cfg.*",
                       "$JS.API.INFO", f"$JS.API.STREAM.INFO.{STREAM}", f"$JS.API.STREAM.CREATE.{STREAM}",
                       f"$JS.API.CONSUMER.INFO.{STREAM}.*", f"$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.*",
                       f"$JS.API.CONSUMER.CREATE.{STREAM}.>", f"$JS.ACK.{STREAM}.>"]
                sub = ["samband.*.status", "samband.work.*", "_INBOX.>"]
                types = ["STANDARD", "MQTT"]  # `samband ota` / `config push` speak MQTT as the receiver
            else:
                pub = [f"samband.up.*.{user}", f"samband.{user}.status"]  # up: after the mapping
                # $MQTT.sub.>: the gateway delivers QoS 1 through a JetStream consumer whose delivery
                # subject is checked against the hub's own permissions (an MQTT client cannot name it)
                sub = [f"samband.{user}.ack", f"samband.{user}.ota", f"samband.{user}.cfg.*", "$MQTT.sub.>"]
                types = ["MQTT"]
            out.append(f"    {{user: {_q(user)}, password: {_q(pw)}, allowed_connection_types: {_list(types)},")
            out.append(f"     permissions: {{publish: {{allow: {_list(pub)}}}, subscribe: {{allow: {_list(sub)}}}}}}}")
        out += ["  ]", "}"]
        return out

    def _write(self, node: Node) -> None:
        f = self.folder
        routes = [f"nats-route://127.0.0.1:{nd.route_port}" for nd in self.nodes if nd is not node]
        lines = [
            f"server_name: {node.name}",
            f"listen: 127.0.0.1:{node.client_port}",
            f"http: 127.0.0.1:{node.http_port}",
            "tls {", f"  cert_file: {_q(str(f / 'server.pem'))}", f"  key_file: {_q(str(f / 'server.key'))}",
            f"  ca_file: {_q(str(f / 'ca.pem'))}", "}",
            # a batch is at most 64 KiB (docs/protocol.md, "Limits"); room for headers
            "max_payload: 131072",
            "jetstream {", f"  store_dir: {_q(str(node.dir / 'js'))}", "  max_memory_store: 64MB",
            "  max_file_store: 1GB", "}",
            "cluster {", "  name: samband", f"  listen: 127.0.0.1:{node.route_port}",
            f"  routes: {_list(routes)}", "}",
            "mqtt {", f"  listen: 127.0.0.1:{node.mqtt_port}",
            "  tls {", f"    cert_file: {_q(str(f / 'server.pem'))}", f"    key_file: {_q(str(f / 'server.key'))}",
            "  }",
            # the gateway's sessions and QoS 1 deliveries survive a node, as the batches do
            f"  stream_replicas: {min(3, len(self.nodes))}",
            "  ack_wait: \"10s\"",
            "}",
            "mappings {",
            f'  "samband.*.up": "samband.up.{{{{partition({self.partitions},1)}}}}.{{{{wildcard(1)}}}}"',
            "}",
        ] + self._authorization()
        node.conf.write_text("\n".join(lines) + "\n")
        os.chmod(node.conf, 0o600)  # it holds the logins

    # -- processes -------------------------------------------------------------------
    def start(self, timeout: float = 30) -> NatsCluster:
        if not Path(NATS_SERVER).exists():
            raise ClusterError(f"{NATS_SERVER} is missing: apt-get install nats-server")
        if not (self.folder / "server.pem").exists():
            make_certs(self.folder, self.hostname)
        for attempt in range(3):
            for nd in self.nodes:
                nd.client_port, nd.route_port, nd.mqtt_port, nd.http_port = (free_port() for _ in range(4))
            for nd in self.nodes:
                self._write(nd)
            try:
                for nd in self.nodes:
                    self._spawn(nd)
                self._wait_listening(self.nodes, timeout)
                break
            except ClusterError:
                in_use = any("address already in use" in nd.log_tail(3000) for nd in self.nodes)
                self._kill_all()
                if attempt == 2 or not in_use:  # a free port taken before nats-server bound it: pick again
                    raise
        self.front = Front([nd.mqtt_port for nd in self.nodes])
        self.wait_ready(timeout)
        return self

    def _spawn(self, nd: Node) -> None:
        log = open(nd.log, "ab")
        nd.proc = subprocess.Popen([NATS_SERVER, "-c", str(nd.conf)], stdout=log, stderr=log,
                                   start_new_session=True)
        log.close()

    def _wait_listening(self, nodes: list[Node], timeout: float) -> None:
        end = time.monotonic() + timeout
        for nd in nodes:
            for port in (nd.client_port, nd.mqtt_port):
                while True:
                    if nd.proc.poll() is not None:
                        raise ClusterError(f"nats-server {nd.name} exited at start: " + nd.log_tail())
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                        break
                    except OSError:
                        if time.monotonic() > end:
                            raise ClusterError(f"nats-server {nd.name} did not listen within {timeout}s") from None
                        time.sleep(0.05)

    def _health(self, nd: Node) -> bool:
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{nd.http_port}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 30) -> None:
        """Every live node says it is healthy (JetStream included: a meta leader is elected)."""
        end = time.monotonic() + timeout
        while True:
            live = [nd for nd in self.nodes if nd.alive()]
            if live and all(self._health(nd) for nd in live):
                return
            if time.monotonic() > end:
                raise ClusterError("the NATS cluster did not become healthy: " + self.log_tail())
            time.sleep(0.1)

    def busiest_node(self) -> int | None:
        """The index of the node that carries the most live hub connections through the front
        now (a fault test kills it to make hubs reconnect), or None while none is live."""
        ports = self.front.live_ports()
        counts = [ports.count(nd.mqtt_port) for nd in self.nodes]
        return counts.index(max(counts)) if ports else None

    def kill(self, i: int) -> None:
        """SIGKILL node i (a crash: no goodbye to its routes or clients)."""
        nd = self.nodes[i]
        if nd.alive():
            nd.proc.send_signal(signal.SIGKILL)
            nd.proc.wait()

    def start_node(self, i: int, timeout: float = 30) -> None:
        """Start node i again on its ports and store (it catches up from its peers)."""
        nd = self.nodes[i]
        self._spawn(nd)
        self._wait_listening([nd], timeout)

    def reload(self) -> None:
        """Write the configs again (new hubs) and have every live node reload them."""
        for nd in self.nodes:
            self._write(nd)
            if nd.alive():
                nd.proc.send_signal(signal.SIGHUP)

    def _kill_all(self) -> None:
        for nd in self.nodes:
            if nd.alive():
                stop_process(nd.proc)
            nd.proc = None

    def stop(self) -> None:
        if self.front is not None:
            self.front.close()
            self.front = None
        self._kill_all()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Front(Listener):
    """Loopback TCP front for the MQTT listeners: each new connection goes to the next
    node that accepts it (round robin), bytes pass unchanged (TLS ends at the node)."""

    def __init__(self, ports: list[int]) -> None:
        Listener.__init__(self, ("127.0.0.1", 0), 64)
        self.ports = list(ports)
        self._next = 0
        self._lock = threading.Lock()
        self._conns = []
        self.start()

    def take(self, c: socket.socket) -> None:
        u = None
        for _ in range(len(self.ports)):
            port = self.ports[self._next % len(self.ports)]
            self._next += 1
            try:
                u = socket.create_connection(("127.0.0.1", port), timeout=2)
                u.settimeout(None)
                break
            except OSError:
                continue
        if u is None:
            c.close()
            return
        link = _Link(c, u, port)
        with self._lock:
            self._conns.append(link)
        threading.Thread(target=self._pump, args=(c, u, link), daemon=True).start()
        threading.Thread(target=self._pump, args=(u, c, None), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket, link: _Link | None) -> None:
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if link is not None:
                    link.heard = time.monotonic()
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            _close(s)
        with self._lock:
            self._conns = [k for k in self._conns if k.client is not a and k.node is not a]

    def live_ports(self, within: float = 1.0) -> list[int]:
        """The node port of each connection through the front whose client sent something
        in the last `within` seconds (a hub's abandoned attempt may stay open for a while)."""
        now = time.monotonic()
        with self._lock:
            return [k.port for k in self._conns if now - k.heard <= within]

    def close(self) -> None:
        self.srv.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for k in conns:
            _close(k.client)
            _close(k.node)


class _Link:
    def __init__(self, client: socket.socket, node: socket.socket, port: int) -> None:
        self.client, self.node, self.port = client, node, port
        self.heard = time.monotonic()
