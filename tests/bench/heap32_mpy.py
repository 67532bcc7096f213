# The hub's heap, service by service, on whichever MicroPython runs this: the
# 32-bit WebAssembly port (tests/bench/mpy32.py) or the 64-bit unix port. Both
# run the same plain-bytecode tree (mpy32.firmware32()), so the ratio between
# them is the word size alone. Prints "step NAME BYTES" as the heap grows
# while each service starts, in app.Hub.start_services' order, then
# "mod NAME BYTES NEWMODULES" per module imported one after another, then
# "heap_alloc BYTES": everything alive at the end, the runtime's own included,
# and the interned names (qstr pools) at the end, as micropython.qstr_info() prints them.
# The 32-bit port collects garbage only at its top level (it cannot scan the
# wasm stack), so each figure is read after `await settle()`, which yields to
# its JavaScript event loop; its runner awaits main(), the unix port runs it.
# ROOT: where keys/, journal/ and state/ are (sys.argv[1] on the unix port;
# "" on the 32-bit port, whose filesystem has them at /).
import gc
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else ""
MODE = sys.argv[2] if len(sys.argv) > 2 else "steps"
if len(sys.argv) <= 1:
    try:
        with open("/mode") as f:
            MODE = f.read().strip()
    except OSError:
        pass

import os  # noqa: E402

if not hasattr(os, "urandom"):
    # The 32-bit WebAssembly port has no os.urandom; the sealer's epoch keys
    # only need bytes here (heap figures, nothing is decrypted).
    import random

    def _urandom(n):
        return bytes(random.getrandbits(8) for _ in range(n))

    os.urandom = _urandom
gc.collect()
_mark = [gc.mem_alloc()]
_seen = set(sys.modules)
import asyncio  # noqa: E402 - its heap is the first step


async def settle():
    gc.collect()
    await asyncio.sleep_ms(0)  # the 32-bit port's collection runs here
    gc.collect()
    return gc.mem_alloc()


async def step(name):
    now = await settle()
    print("step", name, now - _mark[0])
    _mark[0] = now
    new = sorted(m for m in sys.modules if m not in _seen)
    _seen.update(new)
    print("step_modules", name, ",".join(new) or "-")
    import micropython
    micropython.qstr_info()  # the interned names so far: where a new qstr pool opens


async def steps():
    # The unix port's asyncio loads Event, Lock, funcs and streams on first
    # use (the hub's modules would be charged for them); touch them here.
    for name in ("Event", "Lock", "ThreadSafeFlag", "wait_for", "gather", "StreamReader"):
        getattr(asyncio, name, None)
    await step("asyncio")
    import hub  # noqa: F401
    await step("hub_package")
    from hub import seal
    from hub.journal import Journal
    from hub.ports.base import BasePort
    from hub.store import Store
    await step("code")
    port = BasePort({"name": "bench"})
    journal = Journal(root=ROOT + "/journal", capacity=512 * 1024)
    await step("journal")
    uid = b"\x00\x00\x5a\x4d\x00\xe1"
    keys, sealer = seal.from_flash(uid, ROOT + "/keys", counter_path=ROOT + "/state/seal.epoch",
                                   on_epoch=journal.context)
    sealer.prepare()
    store = Store(journal, sealer, port, 1)
    await step("seal")
    from hub.ble.bonds import BondStore
    bonds = BondStore(ROOT + "/keys/bonds", keys.hub_secret)
    await step("ble_bonds")
    from hub import profiles
    from hub.collect import Collector
    await step("collect_code")

    class Central:  # stand-in: collection is built, no radio to run against
        events = None
        bonding = True

    devices = [{"addr": b"\x00" + bytes([0xC0, 0, 0, 0, 0, i]), "kind": k, "name": k}
               for i, k in enumerate(("cgm", "bp", "polar"))]
    col = Collector(Central(), store, port, devices, bonds, log=print, state_dir=ROOT + "/state")
    await step("collect_three_devices")
    for d in col.devices.values():
        for uuid, _mode in d.k.SUBSCRIBE:
            try:
                profiles._module(profiles.module_of(uuid))
            except ValueError:  # a characteristic without a codec (a control point)
                pass
    await step("collect_profiles")
    from hub import reading
    for i in range(3):
        store.put({reading.MDC: 160184, reading.VAL: 100 + i, reading.UNIT: "mg/dL"},
                  b"\x00\xc0\x00\x00\x00\x00\x00", reading.PRIO_ROUTINE)
    store.commit()
    await step("first_commit")
    await collect(col, store)
    await step("collecting")
    from hub.bearers.hostnet import HostNet
    from hub.clock import Clock
    from hub.uplink import Uplink
    await step("uplink_code")
    clock = Clock(port, None)
    cfg = {"host": "receiver", "hub_id": uid, "ca": None, "password": "x"}
    up = Uplink(journal, cfg, port, [HostNet("a", {"port": 1}), HostNet("b", {"port": 2})], None, None,
                lambda utc, unc: clock.offer("receiver", utc, unc))
    store.on_alarm = up.notify
    await step("uplink_two_bearers")
    return journal, sealer, store, col, up  # alive until the total is read


async def collect(col, store):
    """Feed the collector what its three devices send once connected (as the
    radio would, through Collector._event): /feed.txt from the bench, lines
    "conn handle uuid-hex payload-hex" (uuid: 4 hex digits or 32 for 128-bit)."""
    import binascii
    before = set(sys.modules)
    devs = list(col.devices.values())
    with open(ROOT + "/feed.txt") as f:
        lines = f.read().split("\n")
    for d in devs:
        d.conn = devs.index(d) + 1
        col.by_conn[d.conn] = d
        if d.kind == "polar":
            d.opts = {"rate": 130}  # what the strap's start answer sets (kinds/polar.start)
    n = 0
    for line in lines:
        if not line:
            continue
        conn, handle, uuid, payload = line.split()
        d = col.by_conn[int(conn)]
        d.handles[int(handle)] = int(uuid, 16) if len(uuid) == 4 else binascii.unhexlify(uuid)
        col._event(("notify", int(conn), int(handle), binascii.unhexlify(payload)))
        n += 1
        if n % 10 == 0:
            store.commit()
    store.commit()
    print("collected", n, store.stored, col.bad_payloads, col.unknown_handles)
    print("loaded_while_collecting", ",".join(sorted(m for m in sys.modules if m not in before)) or "-")


async def modules():
    with open(ROOT + "/modules.txt") as f:
        names = f.read().split()
    for name in names:
        if name in sys.modules:
            continue
        before = set(sys.modules)
        a = await settle()
        try:
            __import__(name)
        except ImportError as e:
            print("skip", name, repr(e).replace(" ", "_"))
            continue
        b = await settle()
        new = [m for m in sys.modules if m not in before and m != name]
        print("mod", name, b - a, ",".join(sorted(new)) or "-")


async def main():
    if MODE == "modules":
        await modules()
        alive = None
    else:
        alive = await steps()
    print("heap_alloc", await settle())
    import micropython
    micropython.qstr_info()  # "qstr pool: n_pool=.., n_qstr=.., n_str_data_bytes=.., n_total_bytes=.."
    if alive is not None:
        # The cuff's session ends (as Device._close does it): the codecs no connected device needs go.
        col = alive[3]
        for d in col.devices.values():
            if d.kind == "bp":
                col.by_conn.pop(d.conn, None)
                d.conn = None
        col.release_codecs()
        await step("cuff_gone")
    return alive is None


if hasattr(asyncio, "run"):  # the unix port; the 32-bit port's runner awaits main() itself
    asyncio.run(main())
