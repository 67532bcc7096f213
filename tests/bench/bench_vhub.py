"""Virtual hub figures: boot time (process start to the first status line),
soft-reset time, raw-REPL round trip, heap in use at idle."""

import statistics
import tempfile
import time
from pathlib import Path

import serial
from benchlib import figure, firmware_tree

from samband.device.console import parse_status
from samband.device.transport import Hub
from samband.vhub import VirtualHub


def _first_status(ser, timeout=10):
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        buf += ser.read(ser.in_waiting or 1)
        for line in buf.split(b"\n"):
            s = parse_status(line.decode("utf-8", "replace"))
            if s:
                return s
    raise RuntimeError("no status line from the virtual hub")


def main():
    firmware_tree()
    boots, idle = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(10):
            hub = VirtualHub(Path(tmp) / f"flash{i}")
            t = time.perf_counter()
            hub.start()
            with serial.Serial(hub.port, 115200, timeout=0.01) as ser:
                s = _first_status(ser)
            boots.append(time.perf_counter() - t)
            idle.append(s["heap_alloc"])
            hub.stop()
        figure("vhub boot to first status (median of 10)", statistics.median(boots) * 1000, "ms")
        figure("vhub heap in use at idle (after gc)", statistics.median(idle), "bytes of 102400")
        with VirtualHub(Path(tmp) / "flash-rt") as hub, Hub(hub.port) as h:
            n = 200
            t = time.perf_counter()
            for _ in range(n):
                h.exec("pass")
            figure("raw REPL exec round trip", (time.perf_counter() - t) / n * 1000, "ms")
            resets = []
            for _ in range(5):
                t = time.perf_counter()
                h.t.enter_raw_repl(soft_reset=True)
                resets.append(time.perf_counter() - t)
            figure("soft reset into raw REPL (median of 5)", statistics.median(resets) * 1000, "ms")
