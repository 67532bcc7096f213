# The record numbers the hub has accounted for per device (hub/recset.py):
# gaps stay visible to the backfill, ranges merge, 16-bit numbers extend
# across their wrap, more than 8 gaps give up the oldest one and count it,
# and the set survives a reboot in its file. Both runtimes.

import os

from fwtest import raises
from hub import recset
from hub.recset import MAX_RANGES, RecSet


def test_an_early_newer_record_leaves_the_gap_below_it():
    s = RecSet()
    assert s.lowest_missing() is None and s.top() is None  # nothing known: ask for every record
    s.settle(None, 21)  # records 1..20 stored (a report of all completed)
    s.add(51)  # record 51 notified before the backfill
    assert s.lowest_missing() == 21 and s.top() == 51 and s.gaps() == 1
    assert s.has(20) and not s.has(21) and not s.has(50) and s.has(51) and not s.has(52)
    for n in range(21, 51):
        s.add(n)
    assert s.lowest_missing() == 52 and s.ranges == [] and s.gaps() == 0


def test_ranges_merge_in_any_order():
    s = RecSet(11)  # 11 is the lowest missing
    for n in (15, 13, 14, 20, 12, 11):
        s.add(n)
    assert s.low == 16 and s.ranges == [20, 21]
    s.settle(18, 30)
    assert s.low == 16 and s.ranges == [18, 30]
    s.settle(16, 18)
    assert s.low == 30 and s.ranges == []
    s.add(29)  # old: nothing changes
    assert s.low == 30 and s.ranges == []


def test_settle_bridges_ranges_and_merge_takes_another_set():
    s = RecSet(1, [5, 6, 8, 9, 12, 13])
    s.settle(6, 12)
    assert s.ranges == [5, 13]
    staged = RecSet()
    staged.add(2)
    staged.add(3)
    staged.add(4)
    s.merge(staged)
    assert s.low == 1 and s.ranges == [2, 13]
    staged.settle(None, 2)
    s.merge(staged)
    assert s.low == 13 and s.ranges == []


def test_more_than_eight_gaps_gives_up_the_oldest_and_counts_it():
    s = RecSet(0)
    for k in range(MAX_RANGES):
        s.add(10 * k + 5)
    assert s.gaps() == MAX_RANGES and s.given_up == 0 and s.low == 0
    s.add(1000)
    assert s.given_up == 1 and s.gaps() == MAX_RANGES
    assert s.low == 6  # the gap 0..4 was given up, never silently
    assert not s.has(7) and s.has(5)


def test_extend_across_the_16_bit_wrap():
    s = RecSet(65530)
    assert s.extend(65533) == 65533
    for raw in (65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2):
        s.add(s.extend(raw))
    assert s.low == 65539 and s.ranges == []
    assert s.extend(3) == 65539 and s.extend(65535) == 65535  # an old number stays old
    assert s.has(s.extend(65534)) and not s.has(s.extend(3))
    assert RecSet().extend(7) == 7


def test_encode_decode_and_files():
    s = RecSet(21, [51, 52, 60, 70], 1795000000)
    s.given_up = 2
    t = RecSet.decode(s.encode())
    assert (t.low, t.ranges, t.given_up, t.epoch) == (21, [51, 52, 60, 70], 2, 1795000000)
    e = RecSet.decode(RecSet().encode())
    assert e.low is None and e.ranges == [] and e.epoch is None
    for bad in ("", "R1 5", "R2 1 0 -", "R1 1 0 - 5", "R1 1 0 - 9 5", "R1 x 0 -"):
        raises(ValueError, RecSet.decode, bad)
    root = "/tmp/samband-recset-%s" % "".join("%02x" % b for b in os.urandom(4))
    addr = b"\x01\xc0\x5a\x4b\x00\x00\x01"
    assert recset.load(addr, root).low is None  # no file: nothing known
    recset.save(s, addr, root)
    u = recset.load(addr, root)
    assert (u.low, u.ranges, u.given_up) == (21, [51, 52, 60, 70], 2)
    with open(recset.path(addr, root), "w") as f:
        f.write("torn")
    assert recset.load(addr, root).low is None
    other = b"\x01\xc0\x5a\x4b\x00\x00\x02"
    with open(root + "/rec-01c05a4b000002", "w") as f:  # the highest record number, as kept before
        f.write("40")
    assert recset.load(other, root).low == 41
