"""Exhaustive power-cut test of the journal on littlefs (tests/fw/journal_powercut.py
on the MicroPython unix port: a logging block device under vfs.VfsLfs2, every cut
point, cut clean and torn).

CI runs every cut point of a few workloads with 512-byte blocks and a sample of
them with 4096-byte blocks. Everything, every cut point of every workload:

    SAMBAND_POWERCUT=full .venv/bin/pytest -q tests/test_journal_powercut.py
    # or: .venv/bin/python tests/test_journal_powercut.py
"""

import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

FULL = os.environ.get("SAMBAND_POWERCUT", "") == "full"
HEAP = "16m"  # the harness keeps the whole write log; the journal itself is not what is measured here

# (name, harness arguments): block size, prog size (32 as on ESP32, 256 as on RP2), seed, cut points
CI = [
    ("512b-prog32-seed1", ["--bs", "512", "--prog", "32", "--seed", "1", "--all"]),
    ("512b-prog32-seed2", ["--bs", "512", "--prog", "32", "--seed", "2", "--all"]),
    ("512b-prog32-seed3", ["--bs", "512", "--prog", "32", "--seed", "3", "--all"]),
    ("512b-prog256-seed4", ["--bs", "512", "--prog", "256", "--seed", "4", "--all"]),
    ("4k-prog32-seed1", ["--bs", "4096", "--prog", "32", "--seed", "1", "--sample", "300"]),
    ("4k-prog256-seed2", ["--bs", "4096", "--prog", "256", "--seed", "2", "--sample", "300"]),
]
EVERYTHING = (
    [(f"512b-prog{p}-seed{s}", ["--bs", "512", "--prog", str(p), "--seed", str(s), "--all"])
     for p in (32, 256) for s in range(1, 13)]
    + [(f"4k-prog{p}-seed{s}", ["--bs", "4096", "--prog", str(p), "--seed", str(s), "--all"])
       for p in (32, 256) for s in range(1, 4)]
)
CASES = EVERYTHING if FULL else CI
PARTS = 2  # each workload's cut points are split over this many processes


def run_case(run_mpy, args):
    """Run one workload's cut points in PARTS processes; returns (ops line, checked, failures)."""
    def part(i):
        p = run_mpy(["journal_powercut.py"] + args + ["--part", f"{i}/{PARTS}"], heap=HEAP)
        out = p.stdout.decode()
        if p.returncode != 0 or "DONE" not in out:
            raise AssertionError(f"harness failed:\n{p.stderr.decode()[-3000:]}{out[-3000:]}")
        return out

    with ThreadPoolExecutor(PARTS) as ex:
        outs = list(ex.map(part, range(PARTS)))
    checked = 0
    fails = []
    for out in outs:
        m = re.search(r"DONE (\d+) (\d+)", out)
        checked += int(m.group(1))
        fails += [line for line in out.splitlines() if line.startswith("FAIL")]
    return outs[0].splitlines()[0], checked, fails


@pytest.mark.parametrize("args", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_power_cut_at_every_write(mpy, args):
    ops, checked, fails = run_case(mpy, args)
    print(ops, f"-> {checked} mounts checked")
    m = re.match(r"OPS (\d+) appends (\d+) acks (\d+) evictions (\d+) reboots (\d+)", ops)
    assert m and int(m.group(2)) > 100 and int(m.group(3)) > 10, ops
    assert checked > 100
    assert not fails, "\n".join(fails[:20])


def test_workloads_cover_eviction_and_reboots(mpy):
    """The CI workloads between them evict, reclaim and reboot (otherwise the cut points prove less)."""
    evictions = reboots = 0
    for _name, args in CI[:4]:
        p = mpy(["journal_powercut.py"] + args[:-1] + ["--sample", "1"], heap=HEAP)
        m = re.search(r"OPS \d+ appends \d+ acks \d+ evictions (\d+) reboots (\d+)", p.stdout.decode())
        evictions += int(m.group(1))
        reboots += int(m.group(2))
    assert evictions >= 3 and reboots >= 6


if __name__ == "__main__":
    os.environ["SAMBAND_POWERCUT"] = "full"
    os.execv(sys.executable, [sys.executable, "-m", "pytest", "-q", __file__] + sys.argv[1:])
