# main.py for tests/bench/bench_flash.py: the journal on the virtual hub's
# flash image (littlefs over a file, vhub/boot.py). Times commits and counts
# what the block device programs and erases for them (_vhub_flash).
import sys
import time

import _vhub_flash as dev

from hub.journal import Journal
from hub.reading import PRIO_ROUTINE

REC = bytes(range(80))  # a sealed CGM reading is 80 bytes


def run(name, j, n, per_commit):
    t0 = time.ticks_us()
    b0, e0 = dev.prog_bytes, dev.erases
    commits = 0
    for i in range(n):
        j.stage(REC, PRIO_ROUTINE)
        if (i + 1) % per_commit == 0:
            j.commit()
            commits += 1
    us = time.ticks_diff(time.ticks_us(), t0)
    sys.stdout.write("RESULT %s %d %d %d %d %d\n" % (name, n, commits, us, dev.prog_bytes - b0, dev.erases - e0))


sys.stdout.write("\n")
j = Journal("/journal", capacity=64 * 4096, segment_size=4096)
run("commit-each", j, 300, 1)
run("commit-10", j, 1000, 10)
sys.stdout.write("DONE\n")
while True:
    time.sleep_ms(100)
