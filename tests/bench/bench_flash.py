"""The virtual hub's flash image (vhub/flash.py): what a journal commit
costs on it, timed inside the hub (ms per commit) and counted at its block
device (bytes programmed, blocks erased); and what the host pays to read a
running hub's flash (snapshot) and to write onto a stopped one's."""

import re
import statistics
import tempfile
import time
from pathlib import Path

import serial
from benchlib import figure, firmware_tree

from samband.vhub import Flash, VirtualHub, deploy

MAIN = Path(__file__).with_name("flash_journal_main.py")


def _results(port, timeout=120):
    out, buf = {}, b""
    end = time.monotonic() + timeout
    with serial.Serial(port, 115200, timeout=0.1) as ser:
        while time.monotonic() < end:
            buf += ser.read(ser.in_waiting or 1)
            for line in buf.decode("ascii", "replace").splitlines():
                m = re.match(r"RESULT (\S+) (\d+) (\d+) (\d+) (\d+) (\d+)", line)
                if m:
                    out[m.group(1)] = [int(x) for x in m.groups()[1:]]
            if b"DONE" in buf:
                return out
    raise RuntimeError(f"the bench main never finished: {buf[-300:]!r}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "flash"
        deploy(firmware_tree(), folder)
        Flash(folder).write("/main.py", MAIN.read_bytes())
        with VirtualHub(folder, deploy_firmware=False) as hub:
            res = _results(hub.port)
            snaps = []
            for _ in range(20):
                t = time.perf_counter()
                hub.snapshot().listing("/journal")
                snaps.append(time.perf_counter() - t)
        for name, (n, commits, us, prog, erases) in res.items():
            figure(f"journal {name}: time per commit (80-byte records, on the image)", us / commits / 1000, "ms")
            figure(f"journal {name}: bytes programmed per commit", prog / commits, "bytes")
            figure(f"journal {name}: bytes programmed per record byte", prog / (n * 80), "x")
            figure(f"journal {name}: erases per commit", erases / commits, "blocks")
        figure("snapshot of a running hub's flash and list /journal (median of 20)",
               statistics.median(snaps) * 1000, "ms")
        f = Flash(folder)
        t = time.perf_counter()
        for i in range(10):
            f.write(f"/config/x{i}.json", b"{}")
        figure("host write of one file onto a stopped hub's image", (time.perf_counter() - t) / 10 * 1000, "ms")
