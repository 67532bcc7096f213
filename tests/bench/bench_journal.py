"""Journal costs (docs/journal.md): appends per second and the cost of an
acknowledgement on the unix port (a folder, as on the virtual hub, under the
100 KB heap; and littlefs over a RAM block device), write amplification and
erase blocks per 1000 records on littlefs with ESP32's (prog 32) and RP2's
(prog 256) geometry for one commit per record, group commits and RACP
backfills, whether seven days of CGM + blood pressure + heart-rate summaries
fit in 512 KB, recovery time of a full 1 MB journal, and heap: what the
module and an open journal hold, and the smallest heap that mounts a 1 MB
journal and that runs a busy append/ack loop."""

import re
import tempfile
from pathlib import Path

from benchlib import FW_TESTS, figure, firmware_tree, run_mpy

CAPACITY = 1024 * 1024 + 2 * 4096
SEG = 4096


def build_1mb(root):
    # written on the host with the firmware's own module
    from journal_util import append, append_many

    from hub.journal import Journal
    from hub.reading import PRIO_ALARM
    j = Journal(str(root), capacity=CAPACITY, segment_size=SEG)
    j.context(b"\x11" * 62)
    n = 0
    while j.stats()["bytes"] < 1024 * 1024 - SEG:
        append_many(j, [bytes(60) + b"%020d" % (n + i) for i in range(100)])
        append(j, b"alarm %d" % n, PRIO_ALARM)
        n += 100
    pend = [q for q, p, d, c in j.pending()]
    j.ack(pend[:300])
    j.ack(pend[400:460:3])
    st = j.stats()
    j.close()
    return st


def fits(args, heap_k):
    try:
        run_mpy(args, heap=f"{heap_k}k")
        return True
    except RuntimeError:
        return False


def smallest_heap(args, top=100):
    heap = top
    if not fits(args, heap):
        return None
    while heap > 20 and fits(args, heap - 2):
        heap -= 2
    return heap


def main():
    firmware_tree()
    print(run_mpy(["journal_mpy.py", "heap"], heap="100k"), end="", flush=True)
    with tempfile.TemporaryDirectory() as d:
        print(run_mpy(["journal_mpy.py", "speed", d + "/j"], heap="100k"), end="", flush=True)
        heap = smallest_heap(["journal_mpy.py", "loop", d + "/loop"])
        figure("heap: smallest that runs a busy append/ack/reclaim loop (64-bit unix port)", heap, "KB")
    print(run_mpy(["journal_mpy.py", "lfsspeed"], heap="4m"), end="", flush=True)
    for prog in (32, 256):
        print(run_mpy(["journal_mpy.py", "wa", str(prog)], heap="4m"), end="", flush=True)
    print(run_mpy(["journal_mpy.py", "fit", "32"], heap="4m"), end="", flush=True)
    print(run_mpy(["journal_mpy.py", "fit", "32", "15"], heap="4m"), end="", flush=True)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "j1m"
        st = build_1mb(root)
        check = [str(FW_TESTS / "journal_mount_check.py"), str(root), str(CAPACITY), str(SEG)]
        best = None
        for _ in range(3):
            m = re.search(r"MOUNT (\d+) (\d+)", run_mpy(check, heap="100k"))
            best = int(m.group(1)) if best is None else min(best, int(m.group(1)))
        figure("recovery: mount of a full 1 MB journal (%d records) under the 100k heap"
               % (st["pending"] + st["pending_alarms"]), best, "ms")
        figure("heap: retained by the mounted 1 MB journal", int(m.group(2)), "bytes")
        figure("heap: smallest that mounts the 1 MB journal (64-bit unix port)", smallest_heap(check), "KB")


if __name__ == "__main__":
    main()
