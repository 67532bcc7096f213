"""Helpers for `make bench`: every tests/bench/bench_*.py has main(), which
prints figures as lines "name: value unit" (instructions, ratios, heap
peaks, bytes, readings/s). Figures, not pass/fail: tests assert behaviour."""

import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
TESTS = BENCH.parent
FW_TESTS = TESTS / "fw"
sys.path.insert(0, str(FW_TESTS))
sys.path.insert(0, str(TESTS))  # host_kit: what a benchmark starts as its test does

from samband.device import build  # noqa: E402
from samband.paths import tool  # noqa: E402

_tree = {}


def firmware_tree(board="vhub"):
    if board not in _tree:
        _tree[board] = build.build(board)
    return _tree[board]


def run_mpy(args, heap="100k", input=None, timeout=600, extra_path=()):
    """Run a script on the unix port with the compiled firmware and tests/fw, tests/bench on its path."""
    path = [str(firmware_tree()), str(FW_TESTS), str(BENCH)] + [str(p) for p in extra_path]
    env = dict(os.environ, MICROPYPATH=":".join([".frozen"] + path))  # .frozen: asyncio and friends
    p = subprocess.run([tool("micropython"), "-X", f"heapsize={heap}"] + list(args), cwd=BENCH, env=env,
                       capture_output=True, timeout=timeout, input=input)
    if p.returncode != 0:
        raise RuntimeError(f"{args} failed on the unix port:\n{p.stderr.decode()[-2000:]}{p.stdout.decode()[-2000:]}")
    return p.stdout.decode()


def figure(name, value, unit=""):
    if isinstance(value, float):
        value = f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    print(f"{name}: {value} {unit}".rstrip(), flush=True)


def timed(fn, *args, repeat=5):
    """Best wall time of repeat runs, in seconds (figures only; never asserted)."""
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args)
        d = time.perf_counter() - t
        best = d if best is None or d < best else best
    return best


def per_call(fn, seconds=0.3):
    """Mean wall time of one fn() in seconds, over at least 5 calls and `seconds`
    (a library call timed beside the hub's)."""
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt > seconds and n >= 5:
            return dt / n


def smallest_heap(args, lo, hi):
    """The smallest -X heapsize (bytes, found by bisection to 256) in which the
    script `args` ends its output with "ok": a peak with fragmentation counted."""
    while hi - lo > 256:
        mid = (lo + hi) // 2
        try:
            ok = run_mpy(args, heap=str(mid)).strip().endswith("ok")
        except RuntimeError:
            ok = False
        if ok:
            hi = mid
        else:
            lo = mid
    return hi
