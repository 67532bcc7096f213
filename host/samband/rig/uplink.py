"""Broker, receiver and virtual hubs wired together: for tests, the benchmark and the demo.

    with UplinkRig(folder) as rig:
        hub = rig.add_hub("00005a4d00c7", main=Path(".../uplink_main.py"), config={...})
        rig.start()            # broker, receiver, hubs
        rig.wait(lambda: rig.store.count() >= 100)

Keys are made here as a depot would (samband.device.authority.Authority): one receiver
key, one hub key per hub. Hubs log in with their id in hex and a password
that is written into their uplink config; the broker's ACL confines them to
their own topics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samband.device import build
from samband.device.authority import Authority
from samband.reading import Reading
from samband.receiver.ingest import Ingest
from samband.receiver.opener import Opener
from samband.receiver.store import open_store
from samband.receiver.subscriber import Receiver
from samband.rig.broker import RECEIVER_USER, Broker
from samband.vhub import Flash, VirtualHub, deploy

if TYPE_CHECKING:
    from samband.rig.cluster import NatsCluster
    from samband.rig.netns import NetLab

RECEIVER_KID = 7


class RigHub:
    def __init__(self, rig: UplinkRig, uid: str, flash: Path, password: str, hub: VirtualHub) -> None:
        self.rig = rig
        self.uid = uid
        self.flash = flash
        self.password = password
        self.vhub = hub

    def _read(self, path: str) -> bytes | None:
        """A file of the hub's flash, running or not (a snapshot: vhub/flash.py); None if absent."""
        try:
            return self.vhub.snapshot().read(path)
        except FileNotFoundError:
            return None

    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self._read("/uplink.state") or b"")
        except ValueError:
            return {}

    def appended(self) -> dict[int, tuple[int, int]]:
        """{seq: (prio, n)} from the hub's append log (lines a power cut cut short are skipped)."""
        out = {}
        log = self._read("/uplink.log")
        if log is None:
            return out
        for line in log.decode(errors="replace").split("\n")[:-1]:
            parts = line.split()
            if len(parts) == 4 and parts[0] == "A":
                try:
                    out[int(parts[1])] = (int(parts[2]), int(parts[3]))
                except ValueError:
                    pass
        return out


class UplinkRig:
    def __init__(self, folder: str | Path, db: str | None = None, heap: str | int = "200k",
                 firmware: str | Path | None = None, quiet: bool = True,
                 on_reading: Callable[[str, int, Reading], None] | None = None, lab: NetLab | None = None,
                 broker: Broker | NatsCluster | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        # lab (samband.rig.netns.NetLab): the broker runs in its cloud and the hubs in its hub
        # namespace, each bearer a veth; the receiver stays here and reaches the broker by a Door
        self.lab = lab
        if broker is not None:  # another broker with Broker's face: the NATS cluster of a fleet (rig/cluster.py)
            self.broker = broker
        elif lab is None:
            self.broker = Broker(self.folder / "broker")
        else:
            from samband.rig.netns import BROKER_NAME, BROKER_PORT
            # the hubs name the broker BROKER_NAME (a bearer with "dns" resolves it at its own server)
            self.broker = Broker(self.folder / "broker", port=BROKER_PORT, bind="0.0.0.0", netns=lab.cloud,
                                 hostname=BROKER_NAME)
        self.broker_door = None
        self.authority = Authority()
        from nacl import bindings as nb
        self.rpk, self.rsk = nb.crypto_box_keypair()
        self.receiver_keys = {RECEIVER_KID: self.rsk}  # what receivers started from now on hold (add one to rotate)
        self.hubs = {}
        self.heap = heap
        self.firmware = firmware
        self.db = db or str(self.folder / "receiver.db")
        self.store = None
        self.receivers = []
        self.on_reading = on_reading

    def opener(self) -> Opener:
        return Opener(dict(self.receiver_keys), {bytes.fromhex(u): h.public for u, h in self.hubs.items()})

    def add_hub(self, uid: str, main: str | Path, config: dict[str, Any] | None = None,
                uplink: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> RigHub:
        flash = self.folder / ("hub-" + uid)
        tree = self.firmware or build.build("vhub")
        deploy(tree, flash)
        hub_pk, files = self.authority.provision(bytes.fromhex(uid), [(RECEIVER_KID, self.rpk)])
        files = {"/" + rel: data for rel, data in files.items()}
        files["/main.py"] = Path(main).read_bytes()
        password = self.broker.add_hub(uid)
        cfg = dict(config or {})
        files["/keys/mqtt.password"] = password.encode()
        up = {"host": "localhost", "port": 0, "ca": "/keys/ca.der", "password_file": "/keys/mqtt.password",
              "keepalive": 10, "batch_bytes": 2048, "batch_age_ms": 200, "ack_timeout_ms": 5000, "status_ms": 500}
        if self.lab is not None:
            from samband.rig.netns import BROKER_NAME
            up["host"] = BROKER_NAME
        up.update(uplink or {})
        cfg["uplink"] = up
        files["/uplink.json"] = json.dumps(cfg).encode()
        Flash(flash).write_files(files)
        vh = VirtualHub(flash, heap=self.heap, uid=uid, deploy_firmware=False, env=env)
        if self.lab is not None:
            vh.netns = self.lab.hub
        h = RigHub(self, uid, flash, password, vh)
        h.public = hub_pk
        self.hubs[uid] = h
        return h

    def _finish_hub_config(self) -> None:
        for h in self.hubs.values():
            f = Flash(h.flash)
            cfg = json.loads(f.read("/uplink.json"))
            cfg["uplink"]["port"] = self.broker.port
            f.write_files({"/keys/ca.der": Path(self.broker.ca_der).read_bytes(),
                           "/uplink.json": json.dumps(cfg).encode()})

    def start_broker(self) -> None:
        self.broker.start()
        if self.lab is not None and self.broker_door is None:
            self.broker_door = self.lab.door(None, self.lab.cloud, ("127.0.0.1", self.broker.port))
        self._finish_hub_config()

    @property
    def receiver_port(self) -> int:
        """Where the receiver (in this namespace) reaches the broker."""
        return self.broker_door.port if self.broker_door is not None else self.broker.port

    def start_receiver(self, group: str = "receivers") -> Receiver:
        if self.store is None:
            self.store = open_store(self.db)
        ing = Ingest(self.opener(), open_store(self.db), self.on_reading)
        rx = Receiver(ing, "localhost", self.receiver_port, self.broker.ca_pem, RECEIVER_USER,
                      self.broker.users[RECEIVER_USER], group)
        rx.start()
        self.receivers.append(rx)
        return rx

    def stop_receiver(self, rx: Receiver) -> None:
        rx.stop()
        rx.ingest.store.close()
        self.receivers.remove(rx)

    def start(self, receivers: int = 1) -> UplinkRig:
        self.start_broker()
        for _ in range(receivers):
            self.start_receiver()
        for h in self.hubs.values():
            h.vhub.start()
        return self

    def stop(self) -> None:
        for h in self.hubs.values():
            try:
                h.vhub.stop()
            except Exception:
                pass
        for rx in list(self.receivers):
            self.stop_receiver(rx)
        self.broker.stop()
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> UplinkRig:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait(self, cond: Callable[[], Any], timeout: float = 60, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}; " + self.describe())
            time.sleep(0.05)

    def describe(self) -> str:
        parts = []
        for u, h in self.hubs.items():
            parts.append(f"hub {u} state {h.state()}")
        if self.store is not None:
            parts.append(f"rows {self.store.count()}")
        for rx in self.receivers:
            parts.append(f"receiver {dict(rx.ingest.counters)}")
        parts.append("broker log: " + self.broker.log_tail(600))
        return "; ".join(parts)


# ---------------------------------------------------------------- demo (for make run)

DEMO_DEVICE = "11:22:33:44:55:66"  # the emulated meter of tests/data/uplink_main.py, on every demo hub


def explain(hubs: list[dict[str, Any]]) -> list[str]:
    """The receiver's per-hub counters (Store.hubs()) in words: what arrived, what was new,
    and why the rest was not stored again."""
    lines = []
    shared = False
    for st in hubs:
        got = st["stored"] + st["duplicates"]
        refetched = st.get("refetched") or 0
        resent = st["duplicates"] - refetched
        parts = [f"hub {st['hub']}: {got} readings arrived, {st['stored']} stored as new"]
        if refetched:
            shared = True
            parts.append(f"{refetched} {'was a meter record' if refetched == 1 else 'were meter records'} already "
                         f"stored through another hub (kept once)")
        if resent:
            parts.append(f"{resent} came again in re-sent batches (an ack lost or late) and "
                         f"{'was' if resent == 1 else 'were'} recognised by (hub, seq), not stored twice")
        parts.append(f"{st['backlog'] if st['backlog'] is not None else '?'} still on the hub")
        rej = st.get("rejected") or {}
        parts.append("rejected: " + (", ".join(f"{k} {v}" for k, v in sorted(rej.items())) if rej else "none"))
        lines.append("; ".join(parts))
    if shared:
        lines.append(f"every demo hub reads the same emulated meter ({DEMO_DEVICE}, records numbered 0, 1, ...), "
                     f"as a home hub and an ambulance hub may read one patient's meter: the receiver stores each "
                     f"meter record once, from whichever hub brought it first")
    return lines


def demo(seconds: float | None = None, hubs: int = 2, folder: str | Path | None = None,
         out: Callable[[str], None] = print) -> None:
    """Broker (embedded config, no system service), receiver and virtual hubs that
    append sealed readings (every second, an alarm now and then): each reading is
    printed as the receiver commits it, decrypted, with its latency; at the end,
    what the receiver's counters mean."""
    import tempfile

    from samband.paths import REPO
    from samband.reading_text import describe
    main = REPO / "tests" / "data" / "uplink_main.py"

    def on_reading(hub: str, seq: int, r: Reading) -> None:
        lat = time.time() * 1000 - r.hts if r.hts is not None else float("nan")
        tag = "ALARM " if r.is_alarm else ""
        rec = "-" if r.rec is None else r.rec
        out(f"{time.strftime('%H:%M:%S')}  hub {hub}  #{seq:<5} {tag}{describe(r.named())}  record {rec}"
            f"  device {r.addr}  ({lat:.0f} ms after the hub stored it)")

    tmp = None
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="samband-uplink-")
        folder = tmp.name
    rig = UplinkRig(folder, on_reading=on_reading)
    summary = []
    try:
        for i in range(hubs):
            rig.add_hub("00005a4d%04x" % (0xd0 + i), main,
                        {"total": 10 ** 9, "alarm_every": 13 + i, "interval_ms": 1000 + 250 * i})
        rig.start()
        out(f"broker: mosquitto on localhost:{rig.broker.port} (TLS, per-hub ACLs), config in {rig.broker.folder}")
        out(f"receiver: database {rig.db}; {hubs} virtual hub(s) appending readings of one emulated meter; "
            f"Ctrl-C stops")
        end = None if seconds is None else time.monotonic() + seconds
        next_status = time.monotonic() + 10
        try:
            while end is None or time.monotonic() < end:
                time.sleep(0.2)
                if time.monotonic() >= next_status:
                    next_status += 10
                    for line in explain(rig.store.hubs())[:hubs]:
                        out("-- " + line)
        except KeyboardInterrupt:
            pass
        summary = explain(rig.store.hubs())
    finally:
        rig.stop()
        if tmp is not None:
            tmp.cleanup()
    out("summary:")
    for line in summary:
        out("  " + line)
