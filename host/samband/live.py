"""`samband run` / `make run`: the whole virtual rig, live.

Starts Mosquitto (TLS, per-hub ACL; a process of its own, no system
service), the receiver (SQLite in build/run/receiver.db), the BLE bridge
with one emulated device of each kind, and a virtual hub provisioned for
them (build/run/: its flash and depot survive between runs, like a real
hub's). Every few seconds it shows, per device, the latest reading as the
receiver opened and stored it, how many arrived, and the lag from the
hub's receipt to the receiver's commit."""

import time
from pathlib import Path

from samband.paths import BUILD

NAMES = {67108865: "device silent (s)", 67108866: "connected (times)", 67108868: "bond lost", 160184: "glucose", 160188: "glucose", 160212: "glucose (CGM)", 131328: "ECG", 147842: "heart rate",
         150020: "blood pressure", 150456: "SpO2", 149530: "pulse", 150364: "temperature", 188736: "weight",
         67996: "battery", 8417752: "meter status"}


def describe(r):
    """One line for a reading: what, value, unit."""
    from hub import reading as R
    mdc, val, unit = r.get(R.MDC), r.get(R.VAL), r.get(R.UNIT, "")
    what = NAMES.get(mdc, "mdc %d" % mdc if mdc else "?")
    if mdc == 131328 and isinstance(val, list):
        return f"ECG frame of {len(val)} samples"
    if isinstance(val, list):
        e = r.get(R.EXP, 0)
        shown = "/".join(str(v * 10 ** e if e > 0 else (v / 10 ** -e if e else v)) for v in val[:4])
        return f"{what} {shown}{'…' if len(val) > 4 else ''} {unit}".strip()
    return f"{what} {R.value(r)} {unit}".strip()


def run(seconds=None, heap="512k", root=None, every=2.0, out=print, speed=1.0):
    import threading

    from hub.ble import addr_str
    from samband.blebridge import BleBridge
    from samband.broker import RECEIVER_USER, Broker
    from samband.receiver import Ingest, Receiver
    from samband.rig import UID, Rig
    from samband.sim import DEFAULT_SET
    from samband.store import open_store
    root = Path(root or BUILD / "run")
    root.mkdir(parents=True, exist_ok=True)
    specs = [dict(d, speed=speed) if d["kind"] == "polar" else dict(d) for d in DEFAULT_SET]
    devices = [{"addr": d["address"] + "/r", "kind": d["kind"], "name": ""} for d in DEFAULT_SET]
    end = None if seconds is None else time.monotonic() + seconds
    latest, counts, lock = {}, {}, threading.Lock()

    def on_reading(hub_hex, seq, r):
        a = addr_str(r[1])
        lag = (time.time() * 1000 - r[8]) / 1000 if 8 in r else None
        with lock:
            counts[a] = counts.get(a, 0) + 1
            if r.get(12, 0) != 2 or a not in latest:  # a measurement beats hub/device telemetry
                latest[a] = (describe(r), lag, r.get(12, 0))

    broker = Broker(root / "broker")
    password = broker.add_hub(UID.hex())
    broker.start()
    bridge = rx = store = None
    try:
        bridge = BleBridge(devices=specs)
        where = bridge.start()
        rig = Rig(root, devices=devices, bridge=where, heap=heap, depot=root / "depot",
                  hub_config={"status_ms": int(every * 1000),
                              "uplink": {"host": "localhost", "port": broker.port, "keepalive": 10,
                                         "batch_age_ms": 500, "status_ms": 2000}},
                  files={"/keys/ca.der": broker.ca_der.read_bytes(), "/keys/mqtt.password": password.encode()})
        rig.provision() if not (rig.flash / "keys" / "hub.key").exists() else None
        store = open_store(str(root / "receiver.db"))
        # the receiver knows the hub from the depot the rig provisioned it from
        rx = Receiver(Ingest(rig.depot.opener(), store, on_reading), "localhost", broker.port, broker.ca_pem,
                      RECEIVER_USER, broker.users[RECEIVER_USER]).start()
        with rig:
            out(f"samband: broker on localhost:{broker.port} (TLS), receiver into {root / 'receiver.db'}, "
                f"virtual hub on {rig.hub.port}, BLE bridge on {where[0]}:{where[1]} with {len(devices)} "
                f"emulated devices; Ctrl-C to stop")
            while end is None or time.monotonic() < end:
                time.sleep(every)
                s = rig.statuses[-1] if rig.statuses else {}
                up = s.get("uplink") or {}
                out(time.strftime("%H:%M:%S ") + (
                    f"hub boot {s.get('boot')} | heap {s.get('heap_alloc', 0) // 1024} KB used | "
                    f"journal {s.get('journal', {}).get('pending', '?')} unacknowledged | "
                    f"uplink {up.get('batches', 0)} batches, {up.get('acked', 0)} acked | "
                    f"BLE drops {s.get('ble', {}).get('fifo', {}).get('dropped', '?')} | "
                    f"receiver stored {rx.ingest.counters.get('stored', 0)}"
                    + (f" | problems: {'; '.join(s['problems'])}" if s.get("problems") else "")))
                with lock:
                    view = dict(latest), dict(counts)
                for d in s.get("ble", {}).get("devices", []):
                    a = d["addr"]
                    last, lag, prio = view[0].get(a, ("-", None, 0))
                    out(f"  {d['kind']:8} {a:20} {'connected' if d['connected'] else 'away     '} "
                        f"received {view[1].get(a, 0):6}  last: {last}"
                        + (f"  (lag {lag:.2f} s)" if lag is not None else "") + ("  ALARM" if prio == 1 else ""))
    finally:
        if rx is not None:
            rx.stop()
        if store is not None:
            store.close()
        if bridge is not None:
            bridge.stop()
        broker.stop()
