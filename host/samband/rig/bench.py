"""A real test bench described as data: the bench file `pytest --bench FILE` reads
(hardware/bench/bench.toml is the reference bench; docs/rig.md).

TOML, because a technician edits it by hand and Python reads it without a
dependency (tomllib). `parse_bench` is pure: text in, a `Bench` out, or a
`BenchError` whose one line names the file, the key and what is wrong, so a
typo is caught when pytest starts, not by a test that fails far from it.

    name = "bench-1"
    [power]                     # per-port power switching; {usb_hub} {usb_port} {port} {board} filled in
    off = "uhubctl -l {usb_hub} -p {usb_port} -a off"
    on = "uhubctl -l {usb_hub} -p {usb_port} -a on"
    settle_s = 3
    [[hub]]                     # one per board on the bench
    board = "esp32-devkit"
    port = "/dev/serial/by-id/..."
    usb_hub = "1-1"
    usb_port = 1
    modem = true                # the SIM7080G is wired to this board
    [[dongle]]                  # one per emulated BLE device: a bumble transport
    transport = "usb:0"
    [network]
    broker_host = "192.168.50.1"
    [bearer]                    # cut and restore the hubs' uplink
    cut = "..."
    up = "..."
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samband.errors import SambandError

PLACES = ("usb_hub", "usb_port", "port", "board")  # what a power command may name
TRANSPORTS = ("usb:", "serial:", "hci-socket:", "tcp-client:", "android-netsim:", "pty:")
TOP = {"name", "description", "power", "hub", "dongle", "modem", "network", "bearer"}


class BenchError(SambandError, ValueError):
    """A bench file that cannot describe a bench; the message is one line."""


@dataclass(frozen=True)
class BenchHub:
    board: str
    port: str
    usb_hub: str = ""
    usb_port: int = 0
    modem: bool = False


@dataclass(frozen=True)
class Bench:
    name: str
    source: str
    hubs: tuple = ()
    dongles: tuple = ()          # bumble transport specs, one per emulated device
    power_off: str = ""
    power_on: str = ""
    settle_s: float = 2.0
    modem: dict = field(default_factory=dict)
    broker_host: str = ""
    bearer_cut: str = ""
    bearer_up: str = ""

    def hub_for(self, board: str | None = None, port: str | None = None) -> BenchHub | None:
        """The bench's hub with this board name and/or port, or None."""
        for h in self.hubs:
            if (board is None or h.board == board) and (port is None or h.port == port):
                return h
        return None


def _table(data: dict[str, Any], key: str, where: str, types: dict[str, type | tuple[type, ...]],
           required: Iterable[str] = (), known: object = None) -> dict[str, Any]:
    """data[key] checked: a dict whose values have the given types."""
    t = data.get(key, {})
    if not isinstance(t, dict):
        raise BenchError(f"{where}: [{key}] must be a table")
    for k in required:
        if k not in t:
            raise BenchError(f"{where}: [{key}] needs {k!r}")
    for k, v in t.items():
        if k not in types:
            raise BenchError(f"{where}: [{key}] has an unknown key {k!r} (known: {', '.join(types)})")
        if not isinstance(v, types[k]) or isinstance(v, bool) and types[k] is not bool:
            raise BenchError(f"{where}: [{key}].{k} must be {_tname(types[k])}, not {v!r}")
    return t


def _tables(data: dict[str, Any], key: str, source: str, types: dict[str, type | tuple[type, ...]],
            required: Iterable[str], at_least_one: bool) -> list[tuple[str, dict[str, Any]]]:
    """data's [[key]] array of tables, each checked as _table checks one: (where, table) pairs,
    where naming it in an error ("bench.toml: hub[2]")."""
    items = data.get(key, [])
    if not isinstance(items, list):
        raise BenchError(f"{source}: '{key}' must be [[{key}]] tables")
    if at_least_one and not items:
        raise BenchError(f"{source}: needs at least one [[{key}]]")
    out = []
    for i, t in enumerate(items):
        where = f"{source}: {key}[{i + 1}]"
        if not isinstance(t, dict):
            raise BenchError(f"{where}: must be a table")
        out.append((where, _table({key: t}, key, where, types, required)))
    return out


def _tname(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return {"str": "a string", "int": "an integer", "bool": "true or false", "float": "a number"}.get(t.__name__,
                                                                                                   t.__name__)


def _command(text: str, where: str, places: Iterable[str] = PLACES) -> str:
    """A shell command template naming only the given {places}."""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as e:
        raise BenchError(f"{where}: bad braces in {text!r}: {e}") from None
    for n in names:
        if n not in places:
            raise BenchError(f"{where}: unknown place {{{n}}} in {text!r} (known: "
                             + (", ".join("{%s}" % p for p in places) or "none here") + ")")
    if not text.strip():
        raise BenchError(f"{where}: empty command")
    return text


def parse_bench(text: str, source: str = "bench.toml", boards: Iterable[str] | None = None) -> Bench:
    """The bench described by text (TOML). boards: the board names that exist
    (default: those under hardware/boards)."""
    if boards is None:
        from samband.device import boards as b
        boards = b.names()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BenchError(f"{source}: not valid TOML: {e}") from None
    for k in data:
        if k not in TOP:
            raise BenchError(f"{source}: unknown key {k!r} (known: {', '.join(sorted(TOP))})")
    name = data.get("name", "")
    if not isinstance(name, str) or not name:
        raise BenchError(f"{source}: 'name' must be a non-empty string")

    power = _table(data, "power", source, {"off": str, "on": str, "settle_s": (int, float)})
    if ("off" in power) != ("on" in power):
        raise BenchError(f"{source}: [power] needs both 'off' and 'on' or neither")
    for k in ("off", "on"):
        if k in power:
            _command(power[k], f"{source}: [power].{k}")
    settle = float(power.get("settle_s", 2.0))
    if not 0 <= settle <= 60:
        raise BenchError(f"{source}: [power].settle_s must be 0..60 seconds, not {settle}")

    out_hubs = []
    for where, h in _tables(data, "hub", source, {"board": str, "port": str, "usb_hub": str, "usb_port": int,
                                                  "modem": bool}, ("board", "port"), at_least_one=True):
        if h["board"] not in boards:
            raise BenchError(f"{where}.board: no board {h['board']!r} (known: {', '.join(boards)})")
        if h["board"] == "vhub":
            raise BenchError(f"{where}.board: the virtual hub is not a bench board (leave it out)")
        if not h["port"].startswith("/dev/"):
            raise BenchError(f"{where}.port: {h['port']!r} is not a device path (/dev/...)")
        if power and ("usb_hub" not in h or "usb_port" not in h):
            raise BenchError(f"{where}: [power] switches ports, so the hub needs usb_hub and usb_port")
        if "usb_port" in h and not 1 <= h["usb_port"] <= 32:
            raise BenchError(f"{where}.usb_port: {h['usb_port']} is not a USB hub port (1..32)")
        out_hubs.append(BenchHub(h["board"], h["port"], h.get("usb_hub", ""), h.get("usb_port", 0),
                                 h.get("modem", False)))
    for what in ("board", "port"):
        seen = [getattr(h, what) for h in out_hubs]
        dup = sorted({v for v in seen if seen.count(v) > 1})
        if dup:
            raise BenchError(f"{source}: two hubs with {what} {dup[0]!r}")
    if sum(h.modem for h in out_hubs) > 1:
        raise BenchError(f"{source}: the modem is wired to one hub, but {sum(h.modem for h in out_hubs)} say modem")

    specs = []
    for where, d in _tables(data, "dongle", source, {"transport": str, "usb_hub": str, "usb_port": int,
                                                     "part": str}, ("transport",), at_least_one=False):
        if not d["transport"].startswith(TRANSPORTS):
            raise BenchError(f"{where}.transport: {d['transport']!r} is not a bumble transport "
                             f"({', '.join(t + '...' for t in TRANSPORTS)})")
        specs.append(d["transport"])
    if len(set(specs)) != len(specs):
        raise BenchError(f"{source}: two dongles with the same transport")

    modem = _table(data, "modem", source, {"model": str, "apn": str, "uart": str, "pwrkey": int, "sim": str})
    if modem and not any(h.modem for h in out_hubs):
        raise BenchError(f"{source}: [modem] is given but no [[hub]] says modem = true")
    net = _table(data, "network", source, {"broker_host": str, "wifi_ssid": str, "wifi_password_file": str})
    bearer = _table(data, "bearer", source, {"cut": str, "up": str})
    if ("cut" in bearer) != ("up" in bearer):
        raise BenchError(f"{source}: [bearer] needs both 'cut' and 'up' or neither")
    for k in ("cut", "up"):
        if k in bearer:
            _command(bearer[k], f"{source}: [bearer].{k}", places=())
    return Bench(name=name, source=source, hubs=tuple(out_hubs), dongles=tuple(specs),
                 power_off=power.get("off", ""), power_on=power.get("on", ""), settle_s=settle, modem=dict(modem),
                 broker_host=net.get("broker_host", ""), bearer_cut=bearer.get("cut", ""),
                 bearer_up=bearer.get("up", ""))


def load_bench(path: str | Path) -> Bench:
    """The bench in a file (BenchError if it cannot be read or is wrong)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise BenchError(f"{path}: cannot read the bench file: {e.strerror or e}") from None
    return parse_bench(text, str(path))
