"""Recovery at boot: mounting a full 1 MB journal on the unix port takes at most
a second under the hub's 100k heap, and needs no more heap than a small one.

The journals are written on the host with the firmware's own hub.journal
(CPython), then mounted by tests/fw/journal_mount_check.py on the unix port."""

import re

import pytest
from journal_util import append, append_many

from hub.journal import Journal
from hub.reading import PRIO_ALARM

CAPACITY = 1024 * 1024 + 2 * 4096  # 1 MB of segments plus the two active ones
SEG = 4096


def build(root, size):
    j = Journal(str(root), capacity=CAPACITY, segment_size=SEG)
    j.context(b"epoch header " * 4)
    n = 0
    while j.stats()["bytes"] < size - SEG:
        append_many(j, [b"reading %032d" % (n + i) for i in range(100)])
        append(j, b"alarm %d" % n, PRIO_ALARM)
        n += 100
    pend = [q for q, p, d, c in j.pending()]
    j.ack(pend[:300])
    j.ack(pend[400:460:3])  # out of order: the cursor has 20 holes to recover
    st = j.stats()
    j.close()
    return st


@pytest.fixture(scope="module")
def journals(tmp_path_factory):
    d = tmp_path_factory.mktemp("recovery")
    return {size: (d / f"j{size}", build(d / f"j{size}", size)) for size in (64 * 1024, 1024 * 1024)}


def mount(mpy, root, heap="100k"):
    p = mpy(["journal_mount_check.py", str(root), str(CAPACITY), str(SEG)], heap=heap)
    if p.returncode != 0:
        return None
    m = re.search(r"MOUNT (\d+) (\d+) (\d+) (\d+) (\d+)", p.stdout.decode())
    return dict(zip(("ms", "retained", "pending", "segments", "damaged"), map(int, m.groups())))


def test_full_1mb_journal_mounts_within_a_second(mpy, journals):
    root, st = journals[1024 * 1024]
    assert st["bytes"] > 1000 * 1024 and st["pending"] > 15000
    best = None
    for _ in range(3):  # the best of three: CI machines stall now and then
        got = mount(mpy, root)
        assert got, "mount failed under the 100k heap"
        best = got if best is None or got["ms"] < best["ms"] else best
    print(f"1 MB, {st['pending'] + st['pending_alarms']} pending records: mounted in {best['ms']} ms")
    assert best["ms"] <= 1000
    assert best["pending"] == st["pending"] + st["pending_alarms"] and best["damaged"] == 0


def smallest_heap(mpy, root):
    """The smallest heap (in k, 2k steps) that the journal mounts in."""
    heap = 100
    while heap > 24 and mount(mpy, root, f"{heap - 2}k"):
        heap -= 2
    return heap


def test_mount_heap_does_not_grow_with_the_journal(mpy, journals):
    small, _ = journals[64 * 1024]
    big, _ = journals[1024 * 1024]
    a, b = mount(mpy, small), mount(mpy, big)
    assert a["segments"] < 20 < 200 < b["segments"]
    assert abs(a["retained"] - b["retained"]) <= 256, (a, b)
    hs, hb = smallest_heap(mpy, small), smallest_heap(mpy, big)
    print(f"smallest heap to mount: 64 KB journal {hs}k, 1 MB journal {hb}k; retained {a['retained']} bytes")
    # 16 times the data, the same heap (within the allocator's noise at the very edge)
    assert hb <= hs + 4
