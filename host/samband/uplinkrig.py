"""Broker, receiver and virtual hubs wired together: for tests, the benchmark and the demo.

    with UplinkRig(folder) as rig:
        hub = rig.add_hub("00005a4d00c7", main=Path(".../uplink_main.py"), config={...})
        rig.start()            # broker, receiver, hubs
        rig.wait(lambda: rig.store.count() >= 100)

Keys are made here as a depot would (samband.seal.Authority): one receiver
key, one hub key per hub. Hubs log in with their id in hex and a password
that is written into their uplink config; the broker's ACL confines them to
their own topics.
"""

import json
import shutil
import time
from pathlib import Path

from samband import build
from samband.broker import Broker, RECEIVER_USER
from samband.receiver import Ingest, Receiver
from samband.seal import Authority, Opener
from samband.store import open_store
from samband.vhub import VirtualHub, deploy

RECEIVER_KID = 7


class RigHub:
    def __init__(self, rig, uid, flash, password, hub):
        self.rig = rig
        self.uid = uid
        self.flash = flash
        self.password = password
        self.vhub = hub

    def state(self):
        try:
            return json.loads((self.flash / "uplink.state").read_text())
        except (OSError, ValueError):
            return {}

    def appended(self):
        """{seq: (prio, n)} from the hub's append log (lines a power cut cut short are skipped)."""
        out = {}
        p = self.flash / "uplink.log"
        if not p.exists():
            return out
        for line in p.read_text(errors="replace").split("\n")[:-1]:
            parts = line.split()
            if len(parts) == 4 and parts[0] == "A":
                try:
                    out[int(parts[1])] = (int(parts[2]), int(parts[3]))
                except ValueError:
                    pass
        return out


class UplinkRig:
    def __init__(self, folder, db=None, heap="200k", firmware=None, quiet=True, on_reading=None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.broker = Broker(self.folder / "broker")
        self.authority = Authority()
        from nacl import bindings as nb
        self.rpk, self.rsk = nb.crypto_box_keypair()
        self.hubs = {}
        self.heap = heap
        self.firmware = firmware
        self.db = db or str(self.folder / "receiver.db")
        self.store = None
        self.receivers = []
        self.on_reading = on_reading

    def opener(self):
        return Opener({RECEIVER_KID: self.rsk}, {bytes.fromhex(u): h.public for u, h in self.hubs.items()})

    def add_hub(self, uid, main, config=None, uplink=None):
        flash = self.folder / ("hub-" + uid)
        tree = self.firmware or build.build("vhub")
        deploy(tree, flash)
        hub_pk, files = self.authority.provision(bytes.fromhex(uid), [(RECEIVER_KID, self.rpk)])
        for rel, data in files.items():
            (flash / rel).parent.mkdir(parents=True, exist_ok=True)
            (flash / rel).write_bytes(data)
        shutil.copyfile(main, flash / "main.py")
        password = self.broker.add_hub(uid)
        cfg = dict(config or {})
        (flash / "keys").mkdir(exist_ok=True)
        (flash / "keys" / "mqtt.password").write_text(password)
        up = {"host": "localhost", "port": 0, "ca": "/keys/ca.der", "password_file": "/keys/mqtt.password",
              "keepalive": 10, "batch_bytes": 2048, "batch_age_ms": 200, "ack_timeout_ms": 5000, "status_ms": 500}
        up.update(uplink or {})
        cfg["uplink"] = up
        (flash / "uplink.json").write_text(json.dumps(cfg))
        vh = VirtualHub(flash, heap=self.heap, uid=uid, deploy_firmware=False)
        h = RigHub(self, uid, flash, password, vh)
        h.public = hub_pk
        self.hubs[uid] = h
        return h

    def _finish_hub_config(self):
        for h in self.hubs.values():
            shutil.copyfile(self.broker.ca_der, h.flash / "keys" / "ca.der")
            p = h.flash / "uplink.json"
            cfg = json.loads(p.read_text())
            cfg["uplink"]["port"] = self.broker.port
            p.write_text(json.dumps(cfg))

    def start_broker(self):
        self.broker.start()
        self._finish_hub_config()

    def start_receiver(self, group="receivers"):
        if self.store is None:
            self.store = open_store(self.db)
        ing = Ingest(self.opener(), open_store(self.db), self.on_reading)
        rx = Receiver(ing, "localhost", self.broker.port, self.broker.ca_pem, RECEIVER_USER,
                      self.broker.users[RECEIVER_USER], group)
        rx.start()
        self.receivers.append(rx)
        return rx

    def stop_receiver(self, rx):
        rx.stop()
        rx.ingest.store.close()
        self.receivers.remove(rx)

    def start(self, receivers=1):
        self.start_broker()
        for _ in range(receivers):
            self.start_receiver()
        for h in self.hubs.values():
            h.vhub.start()
        return self

    def stop(self):
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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def wait(self, cond, timeout=60, what="condition"):
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}; " + self.describe())
            time.sleep(0.05)

    def describe(self):
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

def demo(seconds=None, hubs=2, folder=None, out=print):
    """Broker (embedded config, no system service), receiver and virtual hubs that
    append sealed readings (every second, an alarm now and then): each reading is
    printed as the receiver commits it, decrypted, with its latency."""
    import tempfile
    from samband.paths import REPO
    from hub import reading as rd
    main = REPO / "tests" / "data" / "uplink_main.py"

    def on_reading(hub, seq, r):
        lat = time.time() * 1000 - r[rd.HTS] if rd.HTS in r else float("nan")
        tag = "ALARM " if r.get(rd.PRIO) == rd.PRIO_ALARM else ""
        out(f"{time.strftime('%H:%M:%S')}  hub {hub}  #{seq:<5} {tag}{rd.value(r)} {r.get(rd.UNIT, '')}"
            f"  device {rd.to_named(r)['dev']}  ({lat:.0f} ms after the hub stored it)")

    tmp = None
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="samband-uplink-")
        folder = tmp.name
    rig = UplinkRig(folder, on_reading=on_reading)
    try:
        for i in range(hubs):
            rig.add_hub("00005a4d%04x" % (0xd0 + i), main,
                        {"total": 10 ** 9, "alarm_every": 13 + i, "interval_ms": 1000 + 250 * i})
        rig.start()
        out(f"broker: mosquitto on localhost:{rig.broker.port} (TLS, per-hub ACLs), config in {rig.broker.folder}")
        out(f"receiver: database {rig.db}; {hubs} virtual hub(s) appending readings; Ctrl-C stops")
        end = None if seconds is None else time.monotonic() + seconds
        next_status = time.monotonic() + 10
        while end is None or time.monotonic() < end:
            time.sleep(0.2)
            if time.monotonic() >= next_status:
                next_status += 10
                for st in rig.store.hubs():
                    out(f"-- hub {st['hub']}: stored {st['stored']}, backlog {st['backlog']}, "
                        f"duplicates {st['duplicates']} (refetched {st['refetched']}), rejected {st['rejected'] or 'none'}")
    except KeyboardInterrupt:
        pass
    finally:
        rig.stop()
        if tmp is not None:
            tmp.cleanup()


def add_parser(sub):
    p = sub.add_parser("uplink-demo", help="broker, receiver and virtual hubs: sealed readings arriving live")
    p.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    p.add_argument("--hubs", type=int, default=2)
    p.add_argument("--folder", help="keep broker config, flash folders and the database here")
    p.set_defaults(func=lambda a: demo(a.seconds, a.hubs, a.folder))
