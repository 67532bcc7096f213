"""`samband run` / `make run`: the whole virtual rig, live.

Starts the BLE bridge with one emulated device of each kind, a virtual hub
provisioned for them (build/run/: its flash and its depot survive between
runs, like a real hub's), and shows what arrives: every few seconds a view
per device with its latest reading, opened from the hub's sealed journal
with the receiver's keys, how many it stored, and the lag from the hub's
receipt to the view."""

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
    from hub.ble import addr_str
    from samband.blebridge import BleBridge
    from samband.journal import Reader
    from samband.rig import Rig
    from samband.sim import DEFAULT_SET
    root = Path(root or BUILD / "run")
    specs = [dict(d, speed=speed) if d["kind"] == "polar" else dict(d) for d in DEFAULT_SET]
    bridge = BleBridge(devices=specs)
    where = bridge.start()
    devices = [{"addr": d["address"] + "/r", "kind": d["kind"], "name": ""} for d in DEFAULT_SET]
    end = None if seconds is None else time.monotonic() + seconds
    latest, counts = {}, {}
    try:
        with Rig(root, devices=devices, bridge=where, heap=heap, hub_config={"status_ms": int(every * 1000)},
                 depot=root / "depot") as rig:
            out(f"samband: virtual hub on {rig.hub.port} (flash {rig.flash}), BLE bridge on {where[0]}:{where[1]} "
                f"with {len(devices)} emulated devices; Ctrl-C to stop")
            reader = Reader(rig.flash, rig.depot)
            while end is None or time.monotonic() < end:
                time.sleep(every)
                try:
                    rows = reader.new()
                except Exception as e:  # noqa: BLE001 - the journal may be mid-write; next round
                    out(f"  (journal not readable this round: {e})")
                    continue
                now_ms = time.time() * 1000
                for seq, prio, r, err in rows:
                    if r is None:
                        out(f"  record {seq}: cannot open: {err}")
                        continue
                    a = addr_str(r[1])
                    counts[a] = counts.get(a, 0) + 1
                    if prio != 2 or a not in latest:  # a measurement beats hub/device telemetry
                        latest[a] = (describe(r), (now_ms - r[8]) / 1000 if 8 in r else None, prio)
                s = rig.statuses[-1] if rig.statuses else {}
                out(time.strftime("%H:%M:%S ") + (f"hub boot {s.get('boot')} | heap {s.get('heap_alloc', 0) // 1024} KB "
                    f"used | journal {s.get('journal', {}).get('pending', '?')} pending | "
                    f"BLE drops {s.get('ble', {}).get('fifo', {}).get('dropped', '?')}"
                    + (f" | problems: {'; '.join(s['problems'])}" if s.get("problems") else "")))
                for d in s.get("ble", {}).get("devices", []):
                    a = d["addr"]
                    last, lag, prio = latest.get(a, ("-", None, 0))
                    out(f"  {d['kind']:8} {a:20} {'connected' if d['connected'] else 'away     '} "
                        f"stored {counts.get(a, 0):6}  last: {last}"
                        + (f"  (lag {lag:.1f} s)" if lag is not None else "") + ("  ALARM" if prio == 1 else ""))
    finally:
        bridge.stop()
