"""Helpers for host tests and benchmarks that start real outside programs:
a plain Mosquitto listener (an emergency centre's own broker, not the rig's
TLS one), npm packages pinned by a package.json (the FHIR server, the
32-bit MicroPython), an uplink rig's hub talking through a Relay, and a
reader of a virtual hub's checksummed console lines. One copy here, so that a test and its benchmark start
the same thing."""

import contextlib
import hashlib
import json
import os
import re
import select
import socket
import subprocess
import threading
import time
from binascii import crc32
from pathlib import Path


def plain_mosquitto(folder):
    """Mosquitto on a free loopback port, anonymous, no TLS: (Popen, port).
    The caller kills it; RuntimeError if it never answers."""
    from samband.rig.broker import free_port
    port = free_port()
    conf = Path(folder) / "centre.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    p = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return p, port
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError("mosquitto did not start")


def npm_install(dest, spec):
    """npm packages of the package.json `spec` (bytes) in dest, installed again only
    when the pin changes (a stamp holds its hash): the network is touched once."""
    dest = Path(dest)
    stamp = dest / ".installed"
    want = hashlib.sha256(spec).hexdigest()
    if not (stamp.exists() and stamp.read_text() == want):
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "package.json").write_bytes(spec)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=dest, check=True,
                       timeout=600, stdout=subprocess.DEVNULL)
        stamp.write_text(want)
    return dest


def through_relay(rig, h):
    """Broker, receiver and hub h started with h's uplink going through a Relay the caller
    cuts, black-holes and closes (the port in h's /uplink.json is the relay's)."""
    from samband.rig.relay import Relay
    from samband.vhub import Flash
    rig.start_broker()
    relay = Relay(rig.broker.port)
    cfg = json.loads(Flash(h.flash).read("/uplink.json"))
    cfg["uplink"]["port"] = relay.port
    Flash(h.flash).write("/uplink.json", json.dumps(cfg).encode())
    rig.start_receiver()
    h.vhub.start()
    return relay


CHECKED_LINE = re.compile(r"^(.*) #(\d+)$")


class CheckedConsole:
    """A virtual hub's console read in a thread, for scripts that end each line with
    " #<CRC-32 of the text, low 16 bits>" (tests/data/flash_main.py, journal_main.py): lines
    keeps the texts whose checksum holds, cut counts those a power cut shortened, boots the
    lines that start "BOOT ", tail the raw end of the console for a failure's message."""

    def __init__(self, port):
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.lines = []
        self.boots = 0
        self.cut = 0
        self.tail = b""
        self._buf = b""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            if not select.select([self.fd], [], [], 0.05)[0]:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                continue
            self.tail = (self.tail + data)[-1500:]
            *done, self._buf = (self._buf + data).split(b"\n")
            with self._lock:
                for raw in done:
                    text = raw.decode("ascii", "replace").strip("\r")
                    if not text:
                        continue
                    m = CHECKED_LINE.match(text)
                    if not m or crc32(m.group(1).encode()) & 0xFFFF != int(m.group(2)):
                        self.cut += 1
                        continue
                    self.lines.append(m.group(1))
                    if text.startswith("BOOT "):
                        self.boots += 1

    def wait(self, pattern, after=0, timeout=30):
        """(index, match) of the first line from index `after` that matches pattern."""
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                for i, line in enumerate(self.lines[after:], after):
                    m = re.match(pattern, line)
                    if m:
                        return i, m
            tail = self.tail.decode(errors="replace")
            assert time.monotonic() < end, f"no {pattern!r} on the console; it ends:\n{tail}"
            time.sleep(0.005)

    def wait_boot(self, n, timeout=15):
        end = time.monotonic() + timeout
        while self.boots < n:
            assert time.monotonic() < end, f"boot {n} never printed BOOT; last lines {self.lines[-5:]}"
            time.sleep(0.002)

    def close(self):
        self._stop.set()
        self._t.join(2)
        os.close(self.fd)


def echo_server():
    """A TCP echo server on the host for one connection, closed after b"bye" (what a modem's
    data path is checked against): (its socket, its port, a list that gets what it echoed)."""
    srv = socket.create_server(("127.0.0.1", 0))
    seen = []

    def serve():
        try:
            conn, _ = srv.accept()
        except OSError:
            return  # closed before anyone came
        with conn:
            got = b""
            while not got.endswith(b"bye"):
                d = conn.recv(4096)
                if not d:
                    break
                got += d
                conn.sendall(d)
            seen.append(got)
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1], seen


@contextlib.contextmanager
def acking_receiver(folder, hub, client_id, ack=lambda payload: b"ack"):
    """A broker with a plain listener and hub's login, and a receiver that takes every up
    message and answers it with ack(payload) on the hub's ack topic (what the hub's MQTT
    client over a modem is checked, and measured, against): yields (broker, hub's password,
    the payloads taken), once the receiver's subscription stands."""
    import paho.mqtt.client as paho

    from samband.rig.broker import RECEIVER_USER, Broker, free_port
    broker = Broker(folder, plain_port=free_port())
    pw = broker.add_hub(hub)
    with broker:
        rx = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        rx.username_pw_set(RECEIVER_USER, broker.users[RECEIVER_USER])
        ups = []

        def on_message(c, userdata, msg):
            ups.append(msg.payload)
            c.publish("samband/%s/ack" % hub, ack(msg.payload), qos=1)

        subscribed = threading.Event()
        rx.on_message = on_message
        rx.on_subscribe = lambda *a: subscribed.set()
        rx.connect("127.0.0.1", broker.plain_port)
        rx.subscribe("samband/+/up", qos=1)
        rx.loop_start()
        try:
            assert subscribed.wait(30), "the receiver's subscription was not acknowledged"
            yield broker, pw, ups
        finally:
            rx.loop_stop()
            rx.disconnect()
