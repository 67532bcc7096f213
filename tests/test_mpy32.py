"""The 32-bit MicroPython used for heap figures (tests/bench/mpy32.py) runs a
script, with a folder on its filesystem, and is really 32-bit. `make bench`
(bench_heap32) depends on it; this keeps it from rotting unnoticed."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))
import mpy32  # noqa: E402


@pytest.fixture(scope="module")
def runtime():
    why = mpy32.available()
    if why:
        pytest.skip("the 32-bit MicroPython (npm @micropython/micropython-webassembly-pyscript) " + why)
    return mpy32.install()


def test_runs_a_script_on_a_32_bit_micropython_with_a_folder_mounted(runtime, tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "probe.py").write_text("WORDS = [0] * 1000\n")
    out = mpy32.run_source(
        "import sys, gc\n"
        "print(sys.implementation.name, sys.maxsize == 2**31 - 1)\n"
        "import probe\n"
        "print(len(probe.WORDS))\n", heap=64 * 1024, mounts=[(tmp_path / "lib", "/lib")])
    assert out.split() == ["micropython", "True", "1000"]


def test_a_script_that_raises_fails_with_its_traceback(runtime):
    with pytest.raises(RuntimeError, match="ValueError: no such reading"):
        mpy32.run_source("raise ValueError('no such reading')\n")


def test_garbage_is_collected_when_an_async_main_yields(runtime):
    # The port collects only at its top level: a heap figure is only right if the
    # runner awaits main() and the script yields after gc.collect() (heap32_mpy.py).
    out = mpy32.run_source(
        "import gc, asyncio\n"
        "async def settle():\n"
        "    gc.collect()\n"
        "    await asyncio.sleep_ms(0)\n"
        "    return gc.mem_alloc()\n"
        "async def main():\n"
        "    before = await settle()\n"
        "    for _ in range(200):\n"
        "        junk = bytearray(1000)\n"
        "    del junk\n"
        "    print('grew', await settle() - before)\n", heap=64 * 1024)
    words = out.split()
    assert words[:1] == ["grew"], "main() was not run: %r" % out
    assert int(words[1]) < 4096, out  # 200 KB of garbage allocated, all of it freed
