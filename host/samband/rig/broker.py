"""A Mosquitto broker for the uplink: certificates, config, ACL, process.

`Broker(folder).start()` writes into `folder` a CA and a server certificate
(the `cryptography` package), a password file (mosquitto_passwd), a
pattern ACL under which a hub (username = its id in hex) may publish only
to samband/<id>/up and samband/<id>/status and read only samband/<id>/ack,
samband/<id>/ota (updates, docs/ota.md) and samband/<id>/cfg/+ (signed
configs: limits, receiver keys),
and a config with one TLS listener on a free port (plus, optionally, a
plain listener on localhost), then runs /usr/sbin/mosquitto on it. No
system service is involved. Receivers log in as `receiver*` users, which
may read every hub's up/status topics (shared subscriptions) and write
every hub's ack topic, ota topic and cfg topics (`samband ota` and
`samband config push` log in as the receiver).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from samband.errors import SambandError
from samband.rig.tcp import stop_process

MOSQUITTO = os.environ.get("SAMBAND_MOSQUITTO", "/usr/sbin/mosquitto")
RECEIVER_USER = "receiver"


class BrokerError(SambandError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(folder: str | Path, hostname: str = "localhost") -> None:
    """ca.pem, ca.der, server.pem, server.key in folder (EC P-256, 10 years)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    later = now + datetime.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Samband test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(later)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(hostname), x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:  # a bench's broker is reached by its address on the bench network: named as an IP too
        ip = ipaddress.ip_address(hostname)
        if str(ip) != "127.0.0.1":
            sans.append(x509.IPAddress(ip))
    except ValueError:
        pass
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(later)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "ca.der").write_bytes(ca.public_bytes(serialization.Encoding.DER))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp = folder / "server.key"
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    os.chmod(kp, 0o600)


ACL = """\
# hubs: username = hub id in hex; only their own topics
pattern write samband/%u/up
pattern write samband/%u/status
pattern read samband/%u/ack
pattern read samband/%u/ota
pattern read samband/%u/cfg/+

# receivers (split the load through $share/receivers/...)
user {receiver}
topic read samband/+/up
topic read samband/+/status
topic write samband/+/ack
topic write samband/+/ota
topic write samband/+/cfg/+
"""


class BrokerFace:
    """What a rig reads of any broker, Mosquitto or the NATS cluster: the folder with the
    CA the hubs trust, and the logins (users: username -> password)."""

    folder: Path
    users: dict[str, str]

    @property
    def ca_pem(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_der(self) -> Path:
        return self.folder / "ca.der"

    def add_hub(self, hub_hex: str, password: str | None = None) -> str:
        """A hub's login; returns its password. Takes effect when the broker next reads its
        logins: the next start() (a cluster's reload() too)."""
        self.users[hub_hex] = password or secrets.token_hex(16)
        return self.users[hub_hex]


class Broker(BrokerFace):
    """A Mosquitto process with TLS and per-hub ACLs; start()/stop() or a context manager."""

    def __init__(self, folder: str | Path, port: int | None = None, plain_port: int | None = None,
                 users: dict[str, str] | None = None, hostname: str = "localhost", bind: str = "127.0.0.1",
                 netns: str | None = None) -> None:
        self.folder = Path(folder)
        self.bind = bind  # the TLS listener's address: a bench's boards dial the host over Wi-Fi
        # a network namespace to run in (samband.rig.netns: the "cloud" of a virtual hub's bearers);
        # it is this broker's alone, so the port may be a fixed one
        self.netns = netns
        self.port = port
        self.plain_port = plain_port
        self.hostname = hostname
        self.users = dict(users or {})  # username -> password
        self.proc = None
        self.folder.mkdir(parents=True, exist_ok=True)
        if RECEIVER_USER not in self.users:
            pw = self.folder / "receiver.password"
            if not pw.exists():
                pw.write_text(secrets.token_hex(16))
                os.chmod(pw, 0o600)
            self.users[RECEIVER_USER] = pw.read_text().strip()

    def _write(self):
        f = self.folder
        if not (f / "server.pem").exists():
            make_certs(f, self.hostname)
        if shutil.which("mosquitto_passwd") is None:
            raise BrokerError("mosquitto_passwd is missing: apt-get install mosquitto")
        pwfile = f / "passwd"
        pwfile.write_text("")
        os.chmod(pwfile, 0o600)
        for user, pw in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, pw], check=True,
                           capture_output=True)
        (f / "acl").write_text(ACL.format(receiver=RECEIVER_USER))
        if self.port is None:
            self.port = free_port()
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {pwfile}",
            f"acl_file {f / 'acl'}",
            "persistence true",
            f"persistence_location {f}/",
            "autosave_interval 1",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # In-flight (QoS 1 sent, PUBACK not yet back) per client. The
            # receiver PUBACKs every batch once it is settled or parked in its
            # retry queue, so slots free as fast as it works; 64 lets the
            # broker keep it busy (at most 64 x 64 KiB waiting in its queue)
            # and, should a receiver ever stop acknowledging, stops sending
            # to it long before its memory grows. Mosquitto's default is 20.
            "max_inflight_messages 64",
            # Beyond the in-flight window a client's messages wait in the
            # broker (persisted): a receiver that is down or slow for a while
            # finds the hubs' batches there instead of the hubs resending.
            "max_queued_messages 100000",
            "",
            f"listener {self.port} {self.bind}",
            f"certfile {f / 'server.pem'}",
            f"keyfile {f / 'server.key'}",
            f"cafile {f / 'ca.pem'}",
            "tls_version tlsv1.2",
        ]
        if os.geteuid() == 0:
            import pwd
            lines.insert(0, "user " + pwd.getpwuid(0).pw_name)  # as root mosquitto would drop to 'mosquitto'
        if self.plain_port:
            lines += ["", f"listener {self.plain_port} 127.0.0.1"]
        (f / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10) -> Broker:
        if not Path(MOSQUITTO).exists():
            raise BrokerError(f"{MOSQUITTO} is missing: apt-get install mosquitto")
        chosen = self.port is None
        for attempt in range(3):
            try:
                return self._start(timeout)
            except BrokerError:
                # a free port we picked may have been taken before mosquitto bound it
                if not chosen or attempt == 2 or "in use" not in self.log_tail(300):
                    raise
                self.port = None

    def _start(self, timeout: float) -> Broker:
        self._write()
        log = open(self.folder / "mosquitto.log", "ab")
        cmd = [MOSQUITTO, "-c", str(self.folder / "mosquitto.conf")]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        self.proc = subprocess.Popen(cmd,
                                     stdout=log, stderr=log, start_new_session=True)
        log.close()
        end = time.monotonic() + timeout
        # every listener, not only the first: mosquitto opens them one after the other,
        # and a client of the plain one was refused while only the TLS one was up
        tls_host = "127.0.0.1" if self.bind in ("0.0.0.0", "") else self.bind
        waiting = [(tls_host, self.port)] + ([("127.0.0.1", self.plain_port)] if self.plain_port else [])
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise BrokerError("mosquitto exited at start: " + self.log_tail())
            try:
                from samband.rig.netns import inside
                with inside(self.netns):
                    probe = socket.create_connection(waiting[0], timeout=0.5)
                probe.close()
                waiting.pop(0)
                if not waiting:
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError("mosquitto did not listen within %ss" % timeout)

    def log_tail(self, n: int = 2000) -> str:
        p = self.folder / "mosquitto.log"
        return p.read_text(errors="replace")[-n:] if p.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def restart(self) -> Broker:
        self.stop()
        return self.start()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
