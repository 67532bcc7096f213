# On the unix port: the window in which an indicated measurement exists only
# in the hub's RAM. A board's BLE stack (and the bridge) confirms an
# indication once the event is taken; the device then deletes it. The hub
# commits it before handling the next event (Store.put(now=True)), so the
# window is: the wait in the FIFO + decode + seal + one journal commit. This
# measures the last three, from taking the event to its commit returning,
# on littlefs over a RAM block device (the boards' filesystem; flash timing
# is not modelled: on a board the commit also waits for about one block
# erase) and counts the erases each commit costs.
import gc
import os
import time

import vfs
from fwtest import Central, MemCounter

from hub import profiles
from hub.collect import Collector
from hub.journal import Journal
from hub.seal import Sealer
from hub.store import Store

BS = 4096


class RamBD:
    # a littlefs block device in RAM that counts erases (journal_mpy.py runs its bench on import)
    def __init__(self, blocks):
        self.n = blocks
        self.img = bytearray(b"\xff" * (blocks * BS))
        self.erases = 0

    def readblocks(self, b, buf, off=0):
        a = b * BS + off
        buf[:] = memoryview(self.img)[a:a + len(buf)]

    def writeblocks(self, b, buf, off=None):
        if off is None:
            off = 0
            self.erases += 1
        a = b * BS + off
        self.img[a:a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return BS
        if op == 6:
            self.erases += 1
        return 0


class Clock:
    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def utc_ms(self):
        return 1795000000000


def main():
    from hub.crypto import x25519
    bd = RamBD(64)
    for prog in (32, 256):
        bd.img[:] = b"\xff" * len(bd.img)
        vfs.VfsLfs2.mkfs(bd, progsize=prog)
        vfs.mount(vfs.VfsLfs2(bd, progsize=prog), "/lfs")
        try:
            j = Journal(root="/lfs/j", capacity=40 * BS, segment_size=BS)
            s = Sealer(b"\x00\x00\x5a\x4d\x00\x01", os.urandom(32), (1, x25519.scalarmult_base(bytes(range(32)))),
                       MemCounter(), os.urandom, j.context)
            store = Store(j, s, Clock(), 1)
            c = Collector(Central(), store, Clock(), [{"addr": b"\x01" + bytes(6), "kind": "bp"}],
                          log=lambda m: None, state_dir="/lfs/state")
            d = list(c.devices.values())[0]
            d.handles = {11: 0x2A35}
            c.by_conn = {1: d}
            times = []
            erases = []
            for i in range(200):
                bp = profiles.encode(0x2A35, {"flags": 0x1E, "sys": (110 + i % 30, 0), "dia": (70 + i % 20, 0),
                                              "map": (90, 0), "time": (2026, 11, 29, 8, i // 60, i % 60),
                                              "pulse": (60 + i % 20, 0), "user": 1, "status": 0})
                gc.collect()
                e = bd.erases
                t = time.ticks_us()
                c._event(("indicate", 1, 11, bp))
                times.append(time.ticks_diff(time.ticks_us(), t))
                erases.append(bd.erases - e)
                assert store.staged == 0
            times.sort()
            print("indicated BP measurement, event taken to commit returned (littlefs prog %d, RAM block device):"
                  " median %d us, 95th %d us, max %d us; erases per commit: mean %.2f"
                  % (prog, times[len(times) // 2], times[len(times) * 95 // 100], times[-1],
                     sum(erases) / len(erases)))
            j.close()
        finally:
            vfs.umount("/lfs")


main()
