# Damage to the journal's files, on both runtimes: random bit flips and
# truncations of segment and state files. The journal must open, skip and
# count what is damaged, and lose nothing else: every record whose frame
# the damage did not touch comes back intact, with its context, and as
# pending as it was (a damaged state file may make delivered records
# pending again, never the reverse); no sequence number is reused.

import gc
from binascii import crc32

from fwtest import IS_MPY, Rand, Scratch
from hub import segment
from hub.journal import Journal
from hub.reading import PRIO_ALARM, PRIO_ROUTINE, PRIO_TELEMETRY
from hub.segment import ALARM, ROUTINE
from journal_util import append, files, payload, restore

# The test keeps a snapshot of every file and a table of every record; the
# journal's own heap is held to 100k by test_journal.py and the virtual hub.
MPY_HEAP = "160k"
SEG = 512
TRIALS = 160


def opened(root):
    return Journal(root + "/j", capacity=64 * SEG, segment_size=SEG)


def build(root):
    """A journal of mixed records, contexts and out-of-order acks; returns what it holds."""
    j = opened(root)
    r = Rand(11)
    ctx = {}
    cur = None
    for i in range(160):
        if i % 45 == 0:
            cur = b"epoch %d header" % i
            j.context(cur)
        p = PRIO_ALARM if r.below(7) == 0 else (PRIO_TELEMETRY if r.below(9) == 0 else PRIO_ROUTINE)
        seq = append(j, lambda q: payload(q), p)
        ctx[seq] = cur
    pend = [q for q, p, d, c in j.pending()]
    j.ack(pend[:25])
    j.ack(pend[40:60:3])
    j.ack([q for q, p, d, c in j.alarms()][:3])
    truth = {}  # seq -> (prio, crc of the data, context, pending)
    for q, p, d, c in j.records():
        if IS_MPY and len(truth) % 32 == 0:
            gc.collect()  # keep the table from being scattered through the heap
        assert c == ctx[q] and d == payload(q)
        truth[q] = (p, crc32(d), c, j.is_pending(q, ALARM if p == PRIO_ALARM else ROUTINE))
    nxt = j.next_seq
    j.close()
    return truth, nxt


def layout(snapshot):
    """{file: [(start, end, seq or None for a context frame, kind)]} of the pristine segments."""
    out = {}
    for rel, data in snapshot.items():
        if not rel.startswith("j/seg/"):
            continue
        spans = []
        for pos, seq, prio, n in segment.frames(data, len(data), context=True):
            assert seq >= 0
            spans.append((pos, pos + n + segment.FRAME, seq, prio == segment.CONTEXT))
        out[rel] = spans
    return out


def damage(r, snapshot, root):
    """Flip bits in or truncate one or two files; returns [(file, kind, offsets or cut)]."""
    done = []
    names = sorted(snapshot)
    for _ in range(1 + (r.below(4) == 0)):
        rel = names[r.below(len(names))]
        path = root + "/" + rel
        with open(path, "rb") as f:
            data = bytearray(f.read())
        if not data:
            continue
        if r.below(3):
            offs = []
            for _ in range(1 + r.below(3)):
                o = r.below(len(data))
                data[o] ^= 1 << r.below(8)
                offs.append(o)
            done.append((rel, "flip", offs))
        else:
            cut = r.below(len(data))
            data = data[:cut]
            done.append((rel, "cut", cut))
        with open(path, "wb") as f:
            f.write(data)
    return done


def hit_seqs(spans, dmg):
    """(seqs whose record frame the damage touched, seqs whose context may go unknown:
    those after a touched frame in the same segment)."""
    rec, after = set(), set()
    for rel, kind, where in dmg:
        first = None
        for start, end, seq, is_ctx in spans.get(rel, ()):
            if kind == "flip":
                touched = any(start <= o < end for o in where)
            else:
                touched = end > where
            if touched and not is_ctx:
                rec.add(seq)
            if touched and first is None:
                first = start
            if first is not None and start > first and not is_ctx:
                after.add(seq)
    return rec, after


def test_bit_flips_and_truncations_lose_only_what_they_touch():
    with Scratch("corrupt") as root:
        truth, nxt = build(root)
        snap = files(root)
        spans = layout(snap)
        assert len(spans) >= 6 and len(truth) >= 100
        r = Rand(2026)
        counted = 0
        for trial in range(TRIALS):
            restore(root, snap)
            dmg = damage(r, snap, root)
            lost_ok, ctx_unknown = hit_seqs(spans, dmg)
            state_hit = any(not rel.startswith("j/seg/") for rel, k, w in dmg)
            try:
                j = opened(root)
            except Exception as e:  # noqa: BLE001 - the finding
                raise AssertionError("trial %d %r: journal does not open: %r" % (trial, dmg, e)) from None
            got = {}
            if IS_MPY:
                gc.collect()
            for q, p, d, c in j.records():
                assert q not in got, "trial %d: seq %d twice" % (trial, q)
                assert q in truth, "trial %d: seq %d out of nowhere" % (trial, q)
                tp, td, tc, tpend = truth[q]
                assert p == tp and crc32(d) == td, "trial %d %r: seq %d altered" % (trial, dmg, q)
                # a context is right, or unknown after damage; never another epoch's
                assert c == tc or (c is None and q in ctx_unknown), "trial %d %r: seq %d context" % (trial, dmg, q)
                pend = j.is_pending(q, ALARM if p == PRIO_ALARM else ROUTINE)
                if tpend:
                    assert pend, "trial %d %r: pending seq %d came back delivered" % (trial, dmg, q)
                elif not state_hit:
                    assert not pend, "trial %d %r: delivered seq %d pending again" % (trial, dmg, q)
                got[q] = 1
            # delivered records may go with a segment the damage left fully delivered
            lost = [q for q in truth if q not in got and truth[q][3]]
            for q in lost:
                assert q in lost_ok, "trial %d %r: seq %d lost, not touched" % (trial, dmg, q)
            st = j.stats()
            noticed = st["damaged"] + st["torn"] + st["bad_headers"]
            if lost or lost_ok or ctx_unknown:
                clean_cut = all(k == "cut" for rel, k, w in dmg) and all(
                    any(s == w for s, e, q, c in spans.get(rel, ())) or w == len(snap[rel]) for rel, k, w in dmg)
                if not clean_cut:  # a cut exactly between frames looks like a shorter segment
                    assert noticed, "trial %d %r: damage not counted: %r" % (trial, dmg, st)
                    counted += 1
            if state_hit:
                assert st["state_fallback"] or all(
                    k == "flip" and rel.startswith("j/seg") for rel, k, w in dmg), (trial, dmg, st)
            assert j.count() == sum(1 for q in got if j.is_pending(q, ALARM if truth[q][0] == PRIO_ALARM else ROUTINE))
            # the hub carries on, without reusing a sequence number
            seq = append(j, b"after the damage")
            assert seq >= nxt, "trial %d %r: seq %d reused" % (trial, dmg, seq)
            j.close()
        assert counted > TRIALS // 4


def test_damaged_state_never_turns_pending_into_delivered():
    with Scratch("corrupt-state") as root:
        truth, nxt = build(root)
        snap = files(root)
        r = Rand(77)
        for _trial in range(40):
            restore(root, snap)
            for k in (0, 1):
                p = root + "/j/state.%d" % k
                if r.below(2):
                    with open(p, "wb") as f:
                        f.write(r.bytes(r.below(40)))
            j = opened(root)
            for q, p, _d, _c in j.records():
                if truth[q][3]:
                    assert j.is_pending(q, ALARM if p == PRIO_ALARM else ROUTINE)
            assert append(j, b"x") >= nxt
            j.close()
