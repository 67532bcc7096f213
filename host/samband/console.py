"""Reading a hub's console: the boot line and the STATUS lines the firmware prints."""

import json
import time

STATUS_PREFIX = "STATUS "


def parse_status(line):
    """A console line to the status map, or None if it is not a status line."""
    line = line.strip()
    if not line.startswith(STATUS_PREFIX):
        return None
    try:
        s = json.loads(line[len(STATUS_PREFIX):])
    except ValueError:
        return None
    return s if isinstance(s, dict) else None


def format_status(s):
    return ("{board} uid {uid} | boot {boot} ({reset}) | up {up:.1f} s | heap {alloc} used, {free} free"
            " | flash {fsfree} of {fstotal} KiB free | clock {clock}").format(
        board=s.get("board"), uid=s.get("uid"), boot=s.get("boot"), reset=s.get("reset"),
        up=s.get("uptime_ms", 0) / 1000, alloc=s.get("heap_alloc"), free=s.get("heap_free"),
        fsfree=s.get("fs_free", 0) // 1024, fstotal=s.get("fs_total", 0) // 1024,
        clock="set" if s.get("clock") else "not set")


def lines(ser, until=None):
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
