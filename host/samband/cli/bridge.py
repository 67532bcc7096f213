"""`samband ble-bridge`: the BLE bridge with emulated devices, for virtual hubs or real radios."""

from __future__ import annotations

import json
import time
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from samband.errors import SambandError

if TYPE_CHECKING:
    from samband.bridge.sim.common import Sim


def load_devices(path: str | Path) -> tuple[list[Sim], list[str | None]]:
    """The device set of a JSON file: a list of device objects, or {"devices": [...]}."""
    from samband.bridge.sim import SimError, make
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise SambandError("cannot read the device file %s: %s" % (path, e)) from None
    if isinstance(data, dict):
        data = data.get("devices")
    if not isinstance(data, list) or not data:
        raise SambandError("%s: expected a list of devices (or {\"devices\": [...]})" % path) from None
    try:
        return [make(d) for d in data], [d.get("transport") for d in data]
    except SimError as e:
        raise SambandError("%s: %s" % (path, e)) from None


def cmd_ble_bridge(args: Namespace) -> int:
    try:
        import bumble  # noqa: F401
    except ImportError:
        raise SambandError("bumble is not installed: pip install bumble") from None
    sims, transports = (load_devices(args.devices) if args.devices else (None, []))
    if args.transport:
        transports = args.transport
    if transports and len([t for t in transports if t]) and sims is None:
        from samband.bridge import sim as simpkg
        sims = [simpkg.make(d) for d in simpkg.DEFAULT_SET[:len(transports)]]
    physical = bool(transports) and all(transports)
    from samband.bridge.server import BleBridge
    bridge = BleBridge(sims, host=args.host, port=args.port, transports=transports, central=not physical)
    try:
        addr = bridge.start()
    except Exception as e:  # noqa: BLE001 - a port in use, a dongle missing: one line
        raise SambandError("cannot start the BLE bridge: %s" % (e or type(e).__name__)) from None
    if addr is not None:
        print("ble bridge on %s:%d" % addr, flush=True)
    else:
        print("ble devices on real controllers (no hub central)", flush=True)
    for i, s in enumerate(bridge.sims):
        where = transports[i] if i < len(transports) and transports[i] else "virtual link"
        print("  %s  [%s]" % (s.describe(), where), flush=True)
    print("Ctrl-C stops it.", flush=True)
    end = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        while end is None or time.monotonic() < end:
            time.sleep(0.2)
            if bridge.thread is None or not bridge.thread.is_alive():
                break
    except KeyboardInterrupt:
        pass
    finally:
        bridge.stop()
    return 0

