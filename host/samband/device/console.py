"""Reading a hub's console: the boot line and the STATUS lines the firmware prints."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

STATUS_PREFIX = "STATUS "


def parse_status(line: str) -> dict[str, Any] | None:
    """A console line to the status map, or None if it is not a status line."""
    line = line.strip()
    if not line.startswith(STATUS_PREFIX):
        return None
    try:
        s = json.loads(line[len(STATUS_PREFIX):])
    except ValueError:
        return None
    return s if isinstance(s, dict) else None


def format_status(s: dict[str, Any]) -> str:
    out = ("{board} uid {uid} | boot {boot} ({reset}) | up {up:.1f} s | heap {alloc} used, {free} free"
           " | flash {fsfree} of {fstotal} KiB free | clock {clock}").format(
        board=s.get("board"), uid=s.get("uid"), boot=s.get("boot"), reset=s.get("reset"),
        up=s.get("uptime_ms", 0) / 1000, alloc=s.get("heap_alloc"), free=s.get("heap_free"),
        fsfree=s.get("fs_free", 0) // 1024, fstotal=s.get("fs_total", 0) // 1024,
        clock="set" if s.get("clock") else "not set")
    lim = s.get("limits")
    if isinstance(lim, dict):  # which per-patient alarm limits are in force (samband limits)
        out += (" | limits " + (f"{lim.get('serial')} ({lim.get('rules')} rules)" if lim.get("serial")
                                else "the kinds' defaults")
                + (f", {lim['refused']} refused" if lim.get("refused") else ""))
    return out


def lines(ser: Any, until: float | None = None) -> Iterator[str]:
    """Yield console lines from a pyserial port until the monotonic deadline."""
    buf = b""
    while until is None or time.monotonic() < until:
        chunk = ser.read(ser.in_waiting or 1)
        if not chunk:
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line.rstrip(b"\r").decode("utf-8", "replace")


def open_port(port: str) -> Any:
    """The hub's console as a pyserial port, checked first so that mistakes are
    one clear line. Opening it does not stop the hub: no Ctrl-C, no raw REPL."""
    import serial

    from samband.device.transport import check_port
    from samband.errors import HubError
    check_port(port)
    try:
        return serial.serial_for_url(port, baudrate=115200, timeout=0.1)
    except (serial.SerialException, OSError) as e:
        raise HubError(f"cannot open {port}: {e}") from None


def request(ser: Any, line: str, want: Callable[[str], bool], timeout: float = 5.0) -> str | None:
    """Send one console request ("?status", "?blink 5") to the running hub and
    return the first answer line that want(line) accepts, or None at the deadline.
    Other lines (logs, periodic STATUS) are passed to nothing: they are the hub
    going on with its work while we ask."""
    ser.reset_input_buffer()
    ser.write(b"\n" + line.encode() + b"\n")  # the leading newline ends any half-typed line
    ser.flush()
    for got in lines(ser, time.monotonic() + timeout):
        if want(got):
            return got
    return None


def status(ser: Any, timeout: float = 5.0) -> dict[str, Any] | None:
    """The running hub's status map (from its own Hub object, not a fresh one)."""
    got = request(ser, "?status", lambda s: parse_status(s) is not None, timeout)
    return parse_status(got) if got else None


def command(ser: Any, cmd: str, arg: object = None, timeout: float = 5.0) -> tuple[bool, Any] | None:
    """A console command's answer: (ok, payload map or error text); None when the hub did not answer."""
    got = request(ser, f"?{cmd}" + (f" {arg}" if arg is not None else ""),
                  lambda s: s.startswith((f"OK {cmd} ", f"ERR {cmd} ")), timeout)
    if got is None:
        return None
    if got.startswith("OK "):
        try:
            return True, json.loads(got[len(f"OK {cmd} "):])
        except ValueError:
            return True, {}
    return False, got[len(f"ERR {cmd} "):]
