# Mounts a journal on the unix port and reports what recovery cost:
#   micropython journal_mount_check.py ROOT CAPACITY SEGMENT_SIZE
# prints "MOUNT <ms> <heap retained by the journal> <records pending> <segments> <damaged>".
# Run under the hub's heap limit (tests/test_journal_recovery.py, bench_journal.py);
# a MemoryError means the heap given was too small.

import gc
import sys
import time

from hub.journal import Journal


def main():
    root, capacity, seg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    gc.collect()
    before = gc.mem_alloc()
    t = time.ticks_us()
    j = Journal(root, capacity=capacity, segment_size=seg)
    us = time.ticks_diff(time.ticks_us(), t)
    gc.collect()
    st = j.stats()
    print("MOUNT %d %d %d %d %d" % (us // 1000, gc.mem_alloc() - before, st["pending"] + st["pending_alarms"],
                                   st["segments"], st["damaged"]))


main()
