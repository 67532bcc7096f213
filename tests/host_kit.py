"""Helpers for host tests and benchmarks that start real outside programs:
a plain Mosquitto listener (an emergency centre's own broker, not the rig's
TLS one), npm packages pinned by a package.json (the FHIR server, the
32-bit MicroPython), an uplink rig's hub talking through a Relay. One copy here, so that a test and its benchmark start
the same thing."""

import hashlib
import json
import socket
import subprocess
import time
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
