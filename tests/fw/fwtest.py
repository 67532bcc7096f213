# Helpers for firmware tests that run on both runtimes: CPython (pytest
# imports these modules directly) and the MicroPython unix port (the
# runner below imports them with the compiled firmware on sys.path).

import gc
import os
import sys

IS_MPY = sys.implementation.name == "micropython"


def data_path(name):
    """A file under tests/data/ (the conftest tells both runtimes where that is)."""
    return os.getenv("SAMBAND_TESTS_DATA", "tests/data") + "/" + name


def raises(exc, fn, *args, **kw):
    """Assert that fn(*args) raises exc (and nothing else); returns the exception."""
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    except Exception as e:  # noqa: BLE001 - reported as a failure
        raise AssertionError("expected %s, got %s: %s" % (exc.__name__, type(e).__name__, e)) from None
    raise AssertionError("expected %s, nothing raised" % exc.__name__)


def rmtree(path):
    """Remove a scratch folder and all below it; a missing one is fine."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        p = path + "/" + n
        try:
            os.remove(p)
        except OSError:
            rmtree(p)
    try:
        os.rmdir(path)
    except OSError:
        pass


def scratch(tag):
    """A fresh, empty folder under /tmp for one test."""
    base = os.getenv("TMPDIR") or "/tmp"
    p = "%s/samband-%s-%s" % (base, tag, "".join("%02x" % b for b in os.urandom(6)))
    rmtree(p)
    os.mkdir(p)
    return p


class Scratch:
    """with Scratch(tag) as root: scratch(tag) for one test, removed however the test ends."""

    def __init__(self, tag):
        self.tag = tag

    def __enter__(self):
        self.root = scratch(self.tag)
        return self.root

    def __exit__(self, *exc):
        rmtree(self.root)


def live():
    """Bytes in use on the heap after a full collection: what is really held."""
    gc.collect()
    return gc.mem_alloc()


def allocated(fn):
    """Bytes fn() allocates with the collector off: garbage included, an upper
    bound of its peak (the benchmarks' heap figures)."""
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    fn()
    b = gc.mem_alloc()
    gc.enable()
    gc.collect()
    return b - a


class MemCounter:
    """Epoch numbers in RAM, for a Sealer under test: what seal.EpochCounter hands
    out on a hub, without its flash file."""

    def __init__(self, start=0):
        self.n = start

    def reserve(self):
        self.n += 1
        return self.n


class Central:
    """A BLE central with nothing underneath: the collector only takes its event FIFO.
    Imports hub.ble when made, so that tests without a collector do not load it."""

    def __init__(self, size=16):
        from hub.ble import Fifo
        self.events = Fifo(size)


class Rand:
    """A small seeded PRNG (xorshift64*) that gives the same numbers on both runtimes."""

    def __init__(self, seed=1):
        self.s = (seed * 0x9E3779B97F4A7C15 + 1) & 0xFFFFFFFFFFFFFFFF or 1

    def next64(self):
        s = self.s
        s ^= (s >> 12)
        s ^= (s << 25) & 0xFFFFFFFFFFFFFFFF
        s ^= (s >> 27)
        self.s = s
        return (s * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF

    def below(self, n):
        return self.next64() % n

    def bytes(self, n):
        return bytes(self.next64() & 0xFF for _ in range(n))


def serve_lines(answer, inp=None, out=None):
    """Answer each non-empty line of inp with answer(line) on out (stdin/stdout by default):
    how the cross-check scripts stream cases from CPython through the unix port."""
    inp = inp or sys.stdin
    out = out or sys.stdout
    while True:
        line = inp.readline()
        if not line:
            break
        line = line.rstrip("\n")
        if line:
            # Two writes, not one concatenation, and on the unix port a collection
            # per case: a 4 KB message's hex needs 8 KB in one piece of a 100 KB heap.
            out.write(answer(line))
            out.write("\n")
            if IS_MPY:  # CPython needs no help, and a full collection per case costs it minutes
                del line
                gc.collect()
