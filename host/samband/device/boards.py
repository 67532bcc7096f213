"""Board descriptions under hardware/boards/<name>/board.json, shared by the
firmware build, the virtual hub, the flasher and the HIL harness."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from samband.errors import BoardError
from samband.paths import BOARDS

ARCHS = ("x64", "x86", "xtensawin", "xtensa", "armv6m", "armv7m", "armv7emsp", "armv7emdp", "rv32imc")
PORTS = ("unix", "esp32", "rp2")
FEATURES = ("ble", "ble-bridge", "wifi", "ethernet", "lte-modem", "modem-sim")
REQUIRED = {"name": str, "description": str, "mcu": str, "arch": str, "port": str,
            "flash_size": int, "fs_size": int, "heap": int, "features": list, "pins": dict,
            # what the board's stock MicroPython can do over BLE: the ESP32 build (NimBLE) pairs and
            # bonds; the Pico W build (BTstack) has pairing compiled out (no gap_pair, no bond config)
            "ble_bonding": bool}


def names() -> list[str]:
    return sorted(p.name for p in BOARDS.iterdir() if (p / "board.json").is_file())


def validate(b: object, where: str = "board.json") -> dict[str, Any]:
    for key, typ in REQUIRED.items():
        if key not in b:
            raise BoardError(f"{where}: missing {key!r}")
        if not isinstance(b[key], typ):
            raise BoardError(f"{where}: {key!r} must be {typ.__name__}")
    if b["arch"] not in ARCHS:
        raise BoardError(f"{where}: arch {b['arch']!r} is not one mpy-cross knows ({', '.join(ARCHS)})")
    if b["port"] not in PORTS:
        raise BoardError(f"{where}: port {b['port']!r} is not one of {', '.join(PORTS)}")
    for f in b["features"]:
        if f not in FEATURES:
            raise BoardError(f"{where}: unknown feature {f!r} (known: {', '.join(FEATURES)})")
    if b["fs_size"] > b["flash_size"]:
        raise BoardError(f"{where}: fs_size is larger than flash_size")
    return b


def load(name: str) -> dict[str, Any]:
    path = BOARDS / name / "board.json"
    if not path.is_file():
        raise BoardError(f"no board {name!r}; known boards: {', '.join(names())}")
    try:
        b = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BoardError(f"{path}: not valid JSON: {e}") from None
    b = validate(b, str(path))
    if b["name"] != name:
        raise BoardError(f"{path}: name {b['name']!r} differs from its folder {name!r}")
    return b


def kinds_it_cannot_serve(b: dict[str, Any], kinds_wanted: Iterable[str]) -> dict[str, str]:
    """The device kinds among kinds_wanted this board cannot collect, with why: {kind: reason}."""
    from hub import kinds
    out = {}
    for k in kinds_wanted:
        if kinds.get(k).BOND and not b.get("ble_bonding", False):
            out[k] = "needs a bonded link and the %s cannot bond (its MicroPython has no BLE pairing)" % b["name"]
    return out
