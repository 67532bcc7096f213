"""Test harness.

Firmware tests in tests/fw/test_*.py are plain functions that run on both
runtimes: pytest collects them under CPython as usual, and the collector
below runs the same functions on the MicroPython unix port, importing the
firmware compiled by mpy-cross (build/vhub) under the ESP32 heap limit.
Their ids end in [unix-port].
"""

import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FW_TESTS = TESTS / "fw"
sys.path.insert(0, str(FW_TESTS))
os.environ.setdefault("SAMBAND_TESTS_DATA", str(TESTS / "data"))
# samband's own data (default database, the rig's hub) in a folder of this
# test process: never the user's, and never shared between parallel workers.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="samband-tests-")

from samband.device import build  # noqa: E402
from samband.paths import tool  # noqa: E402

MPY_HEAP = os.environ.get("SAMBAND_TEST_HEAP", "100k")
SEP = "\x1e"
_built = {}


def firmware_tree(board="vhub"):
    """The compiled firmware for a board, built once per session."""
    if board not in _built:
        _built[board] = build.build(board)
    return _built[board]


def run_mpy(args, heap=MPY_HEAP, timeout=600, cwd=FW_TESTS, extra_path=(), input=None):
    """Run the unix port with the compiled firmware and tests/fw on its path."""
    path = [str(firmware_tree()), str(FW_TESTS)] + [str(p) for p in extra_path]
    env = dict(os.environ, MICROPYPATH=":".join([".frozen"] + path))  # .frozen: asyncio and friends
    return subprocess.run([tool("micropython"), "-X", f"heapsize={heap}"] + list(args), cwd=cwd, env=env,
                          capture_output=True, timeout=timeout, input=input)


@pytest.fixture
def rig(tmp_path):
    """The uplink rig (samband.rig.uplink): hubs on the unix port, Mosquitto over TLS, the
    receiver; a module whose rig differs (heap, lab, another kind) defines its own."""
    from samband.rig.uplink import UplinkRig
    r = UplinkRig(tmp_path, firmware=firmware_tree())
    yield r
    r.stop()


@pytest.fixture
def lab():
    """Two bearers' veths between a hub and a cloud namespace (samband.rig.netns); skips
    without root, with the reason."""
    from samband.rig import netns
    why = netns.available()
    if why:
        pytest.skip(why)
    with netns.NetLab(("a", "b")) as lab:
        yield lab
    # torn down even when the test failed: the namespaces, and everything in them, are gone
    assert not (netns.NETNS_DIR / lab.hub).exists() and not (netns.NETNS_DIR / lab.cloud).exists()


def running(port, timeout=20):
    """The running application's status (asked on its console until it answers)."""
    import time

    from samband.device import console
    end = time.monotonic() + timeout
    with console.open_port(port) as ser:
        while time.monotonic() < end:
            s = console.status(ser, timeout=1.0)
            if s is not None:
                return s
    raise AssertionError(f"the hub on {port} did not answer ?status within {timeout} s")


@pytest.fixture
def vhub(tmp_path):
    """A virtual hub up and running, as a technician finds one (an interrupt during the unix
    port's boot imports can deadlock it: docs/development.md)."""
    from samband.vhub import VirtualHub
    firmware_tree()
    with VirtualHub(tmp_path / "flash", log=print) as hub:
        running(hub.port)
        yield hub


@pytest.fixture(scope="session")
def mpy():
    """Callable that runs a script on the unix port: mpy(["script.py", ...]) -> CompletedProcess."""
    firmware_tree()
    return run_mpy


class MpyFailure(Exception):
    pass


class MpyFile(pytest.File):
    def collect(self):
        tree = ast.parse(self.path.read_text())
        heap = MPY_HEAP
        skip = ()
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                if node.targets[0].id == "MPY_HEAP":
                    heap = ast.literal_eval(node.value)
                if node.targets[0].id == "CPYTHON_ONLY":
                    skip = ast.literal_eval(node.value)
        self.heap = heap
        self.names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)
                      and n.name.startswith("test_") and n.name not in skip]
        self.results = None
        for name in self.names:
            yield MpyItem.from_parent(self, name=f"{name}[unix-port]", fn=name)

    def run_all(self):
        if self.results is None:
            p = run_mpy(["runner.py", self.path.stem] + self.names, heap=self.heap)
            out = p.stdout.decode("utf-8", "replace")
            self.results = {}
            self.output = out + p.stderr.decode("utf-8", "replace")
            current = None
            for chunk in out.split(SEP)[1:]:
                head, _, body = chunk.partition("\n")
                if head.startswith("PASS "):
                    self.results[head.split()[1]] = ("pass", body)
                elif head.startswith("FAIL "):
                    current = head.split()[1]
                    self.results[current] = ("fail", body)
        return self.results


class MpyItem(pytest.Item):
    def __init__(self, *, fn, **kw):
        super().__init__(**kw)
        self.fn = fn

    def runtest(self):
        results = self.parent.run_all()
        if self.fn not in results:
            raise MpyFailure(f"{self.fn} did not finish on the unix port (heap {self.parent.heap}).\n"
                             f"output:\n{self.parent.output[-3000:]}")
        status, body = results[self.fn]
        if status != "pass":
            raise MpyFailure(body)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MpyFailure):
            return f"on the MicroPython unix port:\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, self.name


def pytest_collect_file(parent, file_path):
    if file_path.parent == FW_TESTS and file_path.name.startswith("test_") and file_path.suffix == ".py":
        return MpyFile.from_parent(parent, path=file_path)
