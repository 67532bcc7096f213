"""The hub's heap on a 32-bit MicroPython next to the 64-bit unix port (issue 17, item 1).

Both run tests/bench/heap32_mpy.py on the same plain-bytecode hub
(mpy32.firmware32(): no viper, which the 32-bit WebAssembly port cannot
run), with provisioned keys on their filesystem: the heap each service adds
as it starts (as app.Hub.start_services does, without a radio or sockets:
the collector gets a stand-in central and is fed two minutes of what a CGM,
a blood-pressure cuff and a Polar strap send, the uplink two unconnected
hostnet bearers and no TLS context), also from a ROMFS image on 32-bit,
the ratio 32/64, the whole of it against the 64 KB target, and
the biggest modules by heap once imported. Figures, not pass/fail."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import mpy32
from benchlib import BENCH, figure
from nacl.public import PrivateKey

from samband.device.build import romfs_image
from samband.paths import FIRMWARE, tool

SCRIPT = BENCH / "heap32_mpy.py"
TARGET = 64 * 1024
UNIX_HEAP = "1m"
FEED_MINUTES = 2
STEPS = [("asyncio", "asyncio with Event, Lock, funcs, streams (the runtime's)"),
         ("hub_package", "hub package imported (hub/__init__)"),
         ("code", "code: seal, journal, store, port modules"), ("journal", "journal mounted (512 KB capacity)"),
         ("seal", "sealer with keys, epoch prepared, store"), ("ble_bonds", "bond store (no radio)"),
         ("collect_code", "collect, kinds, profiles registry imported"),
         ("collect_three_devices", "collector with three devices (cgm, bp, polar ECG)"),
         ("collect_profiles", "their profile codecs loaded"), ("first_commit", "three readings sealed and committed"),
         ("collecting", "collecting: the three devices' notifications handled and committed"),
         ("uplink_code", "uplink, mqtt, clock, hostnet imported"),
         ("uplink_two_bearers", "uplink, clock, manager with two hostnet bearers and their MQTT clients"),
         ("cuff_gone", "after all that, the cuff disconnects: codecs no connected device needs unloaded")]
NOT_HUB = ("asyncio", "cuff_gone")  # the runtime's; a step after "everything started"
SKIP_MODULES = ("hub.ports.esp32", "hub.ports.rp2", "hub.ble.native", "hub.app", "hub.console")


def flash(root, mode):
    """keys/ as `samband provision` leaves them (the receiver-key config's tag is not checked on load)."""
    keys = Path(root, "keys")
    keys.mkdir(parents=True)
    Path(root, "state").mkdir()
    Path(root, "journal").mkdir()
    (keys / "hub.key").write_bytes(bytes(PrivateKey.generate()))
    (keys / "authority.pub").write_bytes(bytes(PrivateKey.generate().public_key))
    rpk = bytes(PrivateKey.generate().public_key)
    (keys / "receivers").write_bytes(bytes([0x12]) + (1).to_bytes(4, "big") + b"\x01" + b"\x01" + rpk + bytes(16))
    Path(root, "mode").write_text(mode)
    Path(root, "feed.txt").write_text(feed())
    Path(root, "modules.txt").write_text("\n".join(module_names()) + "\n")


def feed(minutes=FEED_MINUTES):
    """What the three devices send in `minutes` once connected: "conn handle uuid payload" lines.
    The payloads are encoded by the firmware's own profile codecs, run here on CPython."""
    sys.path.insert(0, str(FIRMWARE))
    try:
        from hub import profiles as P
    finally:
        sys.path.remove(str(FIRMWARE))
    pmd = P.norm(P.PMD_DATA).replace("-", "").lower()
    lines = []
    for m in range(minutes):
        if m % 5 == 0:  # CGM every 5 minutes
            cgm = P.encode(0x2AA7, {"records": [{"flags": 0, "conc": (100 + m % 40, 0), "toff": m, "crc": False}]})
            lines.append(f"1 20 2aa7 {cgm.hex()}")
        if m == minutes - 1:  # one blood pressure
            bp = P.encode(0x2A35, {"flags": 0, "sys": (121, 0), "dia": (79, 0), "map": (93, 0)})
            lines.append(f"2 30 2a35 {bp.hex()}")
        for s in range(0, 60, 2):  # heart rate every 2 s, ECG 130 Hz in frames of 73 samples
            hr = P.encode(0x2A37, {"flags": 0x10, "hr": 60 + (m + s) % 7, "rr": [980 + s]})
            lines.append(f"3 40 2a37 {hr.hex()}")
            ecg = P.encode(P.PMD_DATA, {"type": 0, "tflags": 0, "timestamp": 10 ** 15 + (m * 60 + s) * 10 ** 9,
                                        "frame_type": 0, "compressed": False,
                                        "samples": [(i * 37 + s) % 2000 - 1000 for i in range(73)]})
            lines.append(f"3 41 {pmd} {ecg.hex()}")
    return "\n".join(lines) + "\n"


def module_names():
    """Every hub module the 32-bit tree holds, parents first, minus the other boards' ports and the console."""
    tree = mpy32.BUILD / "mpy32-firmware"
    names = []
    for p in sorted(tree.rglob("*.mpy")):
        parts = list(p.relative_to(tree).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    names.sort(key=lambda n: (n.count("."), n))
    return [n for n in names if n not in SKIP_MODULES]


def parse(out):
    steps, mods, skips, total = {}, [], [], {}
    at = None
    for line in out.splitlines():
        w = line.split()
        if not w:
            continue
        if w[0] == "qstr":  # micropython.qstr_info(): "qstr pool: n_pool=7, n_qstr=1526, ..."
            q = {k: int(v) for k, v in (f.rstrip(",").split("=") for f in w[2:])}
            total.setdefault("qstr_steps", []).append((at, q))
            if at == "end":
                total["qstr"] = q
        elif w[0] == "step":
            at = w[1]
            steps[w[1]] = int(w[2])
        elif w[0] == "mod":
            mods.append((w[1], int(w[2]), w[3]))
        elif w[0] == "skip":
            skips.append((w[1], w[2]))
        elif w[0] == "heap_alloc":
            at = "end"
            total[w[0]] = int(w[1])
        elif w[0] == "collected":
            total["collected"] = [int(x) for x in w[1:]]
        elif w[0] == "step_modules" and w[2] != "-":
            total.setdefault("modules", []).extend(w[2].split(","))
        elif w[0] == "loaded_while_collecting":
            total["loaded"] = w[1]
    return steps, mods, skips, total


def _uint(b, i):
    n = 0
    while True:
        c = b[i]
        i += 1
        n = n << 7 | c & 0x7F
        if not c & 0x80:
            return n, i


def mpy_tables(path):
    """[qstr-table entries, constant objects, of them str/bytes, raw codes] of a plain-bytecode
    .mpy: what MicroPython's loader puts in the heap even when the bytecode and text stay in a
    ROMFS image (py/persistentcode.c, mp_raw_code_load: the module's name and constant tables,
    a str object per constant string, a raw code per function), and frozen code keeps in flash."""
    b = Path(path).read_bytes()
    nq, i = _uint(b, 4)
    no, i = _uint(b, i)
    for _ in range(nq):
        n, i = _uint(b, i)
        if not n & 1:  # odd: a name the firmware has (static), no text follows
            i += (n >> 1) + 1
    strs = [0]

    def obj(i):
        t = b[i]
        i += 1
        if t <= 4:  # the function table, None, False, True, Ellipsis
            return i
        n, i = _uint(b, i)
        if t == 10:  # tuple
            for _ in range(n):
                i = obj(i)
            return i
        if t in (5, 6):  # str, bytes: text and its NUL
            strs[0] += 1
            return i + n + 1
        return i + n  # int, float, complex as text

    for _ in range(no):
        i = obj(i)

    def code(i):
        kind_len, i = _uint(b, i)
        if kind_len & 3:
            raise ValueError("%s: native code in the plain-bytecode tree" % path)
        i += kind_len >> 3
        n = 1
        if kind_len & 4:
            children, i = _uint(b, i)
            for _ in range(children):
                c, i = code(i)
                n += c
        return n, i

    return [nq, no, strs[0], code(i)[0]]


def mpy_file(tree, module):
    p = tree / module.replace(".", "/")
    return p.with_suffix(".mpy") if p.with_suffix(".mpy").exists() else p / "__init__.mpy"


def raw_code_bytes(n=200):
    """Heap per raw code imported from ROMFS on the 32-bit port: a module of n nested functions
    (never made into function objects, one name among them) less one without them."""
    with tempfile.TemporaryDirectory() as d:
        pkg = Path(d, "src", "syn")
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "r0.py").write_text("def outer():\n    pass\n")
        (pkg / "rn.py").write_text("def outer():\n" + "".join(
            "    def f(a, b):\n        return a + b * %d\n" % i for i in range(n)))
        out = Path(d, "mpy", "syn")
        out.mkdir(parents=True)
        for p in pkg.glob("*.py"):
            subprocess.run([tool("mpy-cross"), "-o", str(out / (p.stem + ".mpy")), str(p)], check=True)
        image = Path(d, "syn.romfs")
        image.write_bytes(romfs_image(out.parent, "syn"))
        got = mpy32.run_source(
            "import gc, asyncio\n"
            "async def settle():\n"
            "    gc.collect(); await asyncio.sleep_ms(0); gc.collect(); return gc.mem_alloc()\n"
            "async def main():\n"
            "    import syn\n"
            "    for m in ('syn.r0', 'syn.rn'):\n"
            "        a = await settle(); __import__(m); print(m, (await settle()) - a)\n", romfs=image)
    cost = dict(line.split() for line in got.splitlines() if line.startswith("syn."))
    return (int(cost["syn.rn"]) - int(cost["syn.r0"])) / n


def run32(tree, mode, romfs=None):
    """From a flash folder (bytecode copied into the heap), or from a ROMFS image (run in place)."""
    with tempfile.TemporaryDirectory() as d:
        flash(d, mode)
        mounts = [(d, "/")] if romfs else [(d, "/"), (tree, "/lib")]
        return mpy32.run(SCRIPT, heap=TARGET, mounts=mounts, romfs=romfs)


def run64(tree, mode):
    with tempfile.TemporaryDirectory() as d:
        flash(d, mode)
        env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(tree)]))
        p = subprocess.run([tool("micropython"), "-X", f"heapsize={UNIX_HEAP}", str(SCRIPT), d, mode], env=env,
                           capture_output=True, timeout=600, cwd=d)
        if p.returncode != 0:
            raise RuntimeError(f"heap32_mpy.py failed on the unix port:\n{p.stderr.decode()[-2000:]}"
                               f"{p.stdout.decode()[-2000:]}")
        return p.stdout.decode()


def kb(n):
    return round(n / 1024, 1)


def main():
    if mpy32.available():
        figure("32-bit heap figures skipped", mpy32.available())
        return
    tree = mpy32.firmware32()
    image = tree.parent / (tree.name + ".romfs")
    image.write_bytes(romfs_image(tree))
    s32, _, _, t32 = parse(run32(tree, "steps"))
    r32, _, _, tr32 = parse(run32(tree, "steps", romfs=image))
    s64, _, _, t64 = parse(run64(tree, "steps"))
    for key, what in STEPS:
        a, r, b = s32.get(key), r32.get(key), s64.get(key)
        figure(f"heap 32-bit, {what}", kb(a), f"KB (from ROMFS {kb(r)} KB; 64-bit {kb(b)} KB; "
               f"ratio 32/64 {round(a / b, 2) if b else '-'})")
    for name, t in (("32-bit", t32), ("64-bit", t64)):
        n, stored, bad, unknown = t["collected"]
        figure(f"collecting on {name}: notifications fed in {FEED_MINUTES} min of cgm, bp, polar (hr + ECG)", n)
        figure(f"collecting on {name}: readings stored, bad payloads, unknown handles",
               f"{stored}, {bad}, {unknown}")
        figure(f"collecting on {name}: modules loaded while collecting", t["loaded"])
    hub32, hubr, hub64 = (sum(v for k, v in s.items() if k not in NOT_HUB) for s in (s32, r32, s64))
    figure("heap 32-bit, the hub's services all started (without asyncio)", kb(hub32), "KB")
    figure("heap 32-bit from ROMFS, the hub's services all started (without asyncio)", kb(hubr), "KB")
    figure("heap 64-bit, the hub's services all started (without asyncio)", kb(hub64), "KB")
    figure("ratio 32/64, the hub's services all started", round(hub32 / hub64, 2))
    for name, t in (("32-bit", t32), ("32-bit from ROMFS", tr32), ("64-bit", t64)):
        figure(f"heap {name}, everything alive after start (gc.mem_alloc, incl. runtime)", kb(t["heap_alloc"]), "KB")
    for name, t in (("flash folder", t32), ("ROMFS", tr32)):
        n = t["heap_alloc"]
        figure(f"target: the hub on 32-bit <= 64 KB; from {name}", f"{kb(n)} KB:",
               "fits" if n <= TARGET else f"over by {kb(n - TARGET)} KB")
    for name, t in (("32-bit", t32), ("32-bit from ROMFS", tr32), ("64-bit", t64)):
        q = t["qstr"]
        pools = q["n_total_bytes"] - q["n_str_data_bytes"]
        figure(f"interned names (qstrs) on {name}, everything started", q["n_qstr"],
               f"in {q['n_pool']} pools: {kb(pools)} KB of pools, {kb(q['n_str_data_bytes'])} KB of text "
               f"(the text is in the heap only from a folder)")
        before = None
        for at, s in t["qstr_steps"]:
            if s["n_pool"] == q["n_pool"] and before is not None and before["n_pool"] < q["n_pool"]:
                last = pools - before["n_total_bytes"] + before["n_str_data_bytes"]
                figure(f"the last qstr pool on {name}", kb(last),
                       f"KB, opened in step {at}, holds {q['n_qstr'] - before['n_qstr']} names")
                break
            before = s
    q = tr32["qstr"]
    pools = q["n_total_bytes"] - q["n_str_data_bytes"]
    figure("heap 32-bit from ROMFS less its qstr pools (what names frozen into the firmware would leave)",
           kb(tr32["heap_alloc"] - pools), "KB")
    # What else frozen code would keep in flash: each loaded module's tables and raw codes.
    mods = [m for m in tr32.get("modules", ()) if m.startswith("hub")]
    nq, no, ns, nrc = (sum(x) for x in zip(*(mpy_tables(mpy_file(tree, m)) for m in mods)))
    per_rc = raw_code_bytes()
    figure("32-bit from ROMFS, heap per raw code (function) imported (200 nested functions, measured)",
           round(per_rc, 1), "bytes")
    tables = nrc * per_rc + 2 * nq + 4 * no + 16 * ns
    figure(f"32-bit from ROMFS, the {len(mods)} hub modules alive: raw codes, name-table entries, constants "
           f"(of them str/bytes)", f"{nrc}, {nq}, {no} ({ns})",
           f"= about {kb(tables)} KB (raw codes as measured, 2 bytes a name, 4 a constant, 16 a str object)")
    figure("estimate: the hub on 32-bit with its code frozen into the firmware (ROMFS less pools, raw codes, "
           "tables, str objects)", kb(tr32["heap_alloc"] - pools - tables), "KB (not measured: no board toolchain)")

    _, m32, k32, _ = parse(run32(tree, "modules"))
    _, mr32, _, _ = parse(run32(tree, "modules", romfs=image))
    _, m64, _, _ = parse(run64(tree, "modules"))
    by64 = {m: n for m, n, _ in m64}
    byr = {m: n for m, n, _ in mr32}
    for name, ms in (("32-bit", m32), ("32-bit from ROMFS", mr32), ("64-bit", m64)):
        figure(f"heap {name}, every hub module imported (one interpreter, parents first)",
               kb(sum(n for _, n, _ in ms)), "KB")
    for m, n, new in sorted(m32, key=lambda x: -x[1])[:15]:
        extra = "" if new == "-" else f" (with {new})"
        figure(f"heap 32-bit, import {m}{extra}", kb(n),
               f"KB (from ROMFS {kb(byr.get(m, 0))} KB; 64-bit {kb(by64.get(m, 0))} KB)")
    for m, why in k32:
        figure(f"not importable on the 32-bit port: {m}", why)


if __name__ == "__main__":
    main()
