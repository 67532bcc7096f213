# The journal (hub.journal, hub.segment) on both runtimes, on a folder:
# appends and read-back, sequence numbers across reopen, out-of-order
# acks and the delivered cursor, whole-segment reclaim, eviction order
# and its telemetry, group commit, contexts (epoch headers), torn tails
# and lost state. Power cuts on littlefs: tests/test_journal_powercut.py;
# damage: test_journal_corrupt.py; kill -9: tests/test_journal_vhub.py.

import os

from fwtest import Rand, Scratch, raises
from hub import cbor, segment
from hub.journal import RESERVE, Journal, JournalError
from hub.reading import CTX, PRIO_ALARM, PRIO_ROUTINE, PRIO_TELEMETRY
from hub.segment import ALARM, ROUTINE
from journal_util import append, append_many, payload

SEG = 512


def opened(root, **kw):
    kw.setdefault("capacity", 64 * SEG)
    kw.setdefault("segment_size", SEG)
    return Journal(root + "/j", **kw)


def seqs_of(it):
    return [r[0] for r in it]


def segment_files(root):
    return sorted(os.listdir(root + "/j/seg"))


def test_append_reads_back_in_order():
    with Scratch("basic") as root:
        j = opened(root)
        got = [append(j, payload(i)) for i in range(1, 60)]
        assert got == sorted(got) and len(set(got)) == len(got)
        assert j.count() == 59 and j.count(ROUTINE) == 59 and j.count(ALARM) == 0
        out = list(j.records())
        assert [r[0] for r in out] == got
        for (_seq, prio, data, ctx), i in zip(out, range(1, 60)):
            assert data == payload(i) and prio == PRIO_ROUTINE and ctx is None
        assert seqs_of(j.pending()) == got
        assert len(segment_files(root)) > 3  # rolled over several segments
        j.close()


def test_callable_record_gets_its_seq():
    with Scratch("callable") as root:
        j = opened(root)
        seen = []

        def seal(seq):
            seen.append(seq)
            return b"sealed %d" % seq
        seq = append(j, seal)
        assert seen == [seq]
        assert list(j.records())[0][2] == b"sealed %d" % seq

        def fill(q, view):  # the seal_into shape: writes in the journal's buffer
            view[:] = b"%08d" % q
        seq2 = append(j, fill, size=8)
        assert seq2 == seq + 1 and list(j.records())[1][2] == b"%08d" % seq2
        j.close()


def test_sequence_numbers_never_reused_across_reopen():
    with Scratch("seq") as root:
        last = 0
        for boot in range(6):
            j = opened(root)
            assert j.next_seq > last
            for k in range(boot * 3):
                seq = append(j, payload(k))
                assert seq > last
                last = seq
            # a reopen without any append in between must not step back either
            last = max(last, j.next_seq - 1)
            j.close()
        # everything ever appended is still there, once
        j = opened(root)
        s = seqs_of(j.records())
        assert len(s) == len(set(s)) == sum(b * 3 for b in range(6))
        j.close()


def test_reservation_is_persisted_before_use():
    with Scratch("reserve") as root:
        j = opened(root, reserve=8)
        seqs = [append(j, b"x") for _ in range(20)]
        # a power cut now (no close): the next boot starts above every reserved seq
        j2 = opened(root, reserve=8)
        assert j2.next_seq > seqs[-1] and j2.next_seq <= seqs[-1] + 1 + 8
        j2.close()


def test_acks_out_of_order_move_the_cursor_and_persist():
    with Scratch("ack") as root:
        j = opened(root)
        routine = [append(j, payload(i)) for i in range(40)]
        alarms = [append(j, payload(100 + i), PRIO_ALARM) for i in range(3)]
        routine += [append(j, payload(200 + i)) for i in range(10)]
        assert seqs_of(j.alarms()) == alarms
        assert j.count(ALARM) == 3
        # alarms first, then a block of routine records ahead of older ones
        assert j.ack(alarms) == 3
        assert j.count(ALARM) == 0 and list(j.alarms()) == []
        assert j.ack(routine[20:30]) == 10
        assert j.ack(routine[20:30]) == 0  # acked twice: nothing new
        assert j.unknown_acks == 10
        left = routine[:20] + routine[30:]
        assert seqs_of(j.pending()) == left
        assert j.ack([routine[0], routine[2]]) == 2
        left = [q for q in left if q not in (routine[0], routine[2])]
        assert seqs_of(j.pending()) == left
        j.close()
        j = opened(root)
        assert seqs_of(j.pending()) == left and j.count() == len(left)
        # ack everything in reverse: the cursor ends past the last record
        assert j.ack(reversed(left)) == len(left)
        assert list(j.pending()) == [] and j.count() == 0
        assert j.ack(99999) == 0
        j.close()
        j = opened(root)
        assert list(j.pending()) == [] and j.count() == 0
        j.close()


def test_pending_merges_streams_in_seq_order_and_resumes_after():
    with Scratch("merge") as root:
        j = opened(root)
        r = Rand(3)
        want = []
        for i in range(50):
            p = PRIO_ALARM if r.below(5) == 0 else (PRIO_TELEMETRY if r.below(6) == 0 else PRIO_ROUTINE)
            want.append((append(j, payload(i), p), p))
        got = [(q, p) for q, p, d, c in j.pending()]
        assert got == want
        mid = want[25][0]
        assert seqs_of(j.pending(after=mid)) == [q for q, p in want if q > mid]
        assert seqs_of(j.pending(ROUTINE)) == [q for q, p in want if p != PRIO_ALARM]
        j.close()


def test_reclaim_deletes_whole_delivered_segments():
    with Scratch("reclaim") as root:
        j = opened(root)
        seqs = [append(j, payload(i, 40)) for i in range(100)]
        before = len(segment_files(root))
        assert before >= 8
        j.ack(seqs[:50])
        mid = len(segment_files(root))
        assert mid < before - 3
        j.ack(seqs[50:])
        assert segment_files(root) == segment_files(root)[-1:]  # the newest stays: appends go there
        assert j.stats()["segments"] == 1
        # no segment was rewritten: the one left is the newest, byte for byte a prefix of what it was
        seq = append(j, b"more")
        assert seqs_of(j.pending()) == [seq]
        j.close()


def test_eviction_takes_oldest_routine_before_any_alarm():
    with Scratch("evict") as root:
        reports = []

        def tel(seq, info):
            reports.append((seq, info))
            return cbor.dumps(info)
        j = opened(root, capacity=8 * SEG, telemetry=tel)
        alarms = [append(j, payload(i, 30), PRIO_ALARM) for i in range(8)]
        routine = [append(j, payload(i, 40)) for i in range(150)]
        st = j.stats()
        assert st["segments"] <= 8
        assert st["evicted"] > 0 and st["evicted_alarms"] == 0
        assert seqs_of(j.alarms()) == alarms  # alarms untouched
        left = seqs_of(j.pending(ROUTINE))
        kept = [q for q in routine if q in left]
        assert kept == routine[-len(kept):]  # oldest went first
        lost = len(routine) - len(kept)
        # every eviction is counted and reported in a telemetry record
        assert reports and sum(info["evicted"] for q, info in reports) == st["evicted"]
        tels = [q for q, p, d, c in j.pending(ROUTINE) if p == PRIO_TELEMETRY]
        assert tels and set(tels) <= set(q for q, info in reports)
        # the reports themselves are routine-stream records and may be evicted too
        assert lost <= st["evicted"] <= lost + len(reports)
        j.close()
        # the counters survive a reboot
        j = opened(root, capacity=8 * SEG, telemetry=tel)
        assert j.stats()["evicted"] == st["evicted"]
        j.close()


def test_alarms_are_evicted_only_when_no_routine_segment_is_left():
    with Scratch("evict2") as root:
        j = opened(root, capacity=6 * SEG)
        alarms = [append(j, payload(i, 60), PRIO_ALARM) for i in range(60)]
        st = j.stats()
        assert st["evicted_alarms"] > 0 and st["evicted"] >= st["evicted_alarms"]
        left = seqs_of(j.alarms())
        assert left == alarms[-len(left):]
        assert j.stats()["segments"] <= 6
        j.close()


def test_default_eviction_report_is_a_telemetry_record():
    with Scratch("evict3") as root:
        j = opened(root, capacity=4 * SEG)
        for i in range(60):
            append(j, payload(i, 40))
        tel = [d for q, p, d, c in j.pending() if p == PRIO_TELEMETRY]
        assert tel
        m = cbor.loads(tel[-1])
        assert m[CTX]["total"] == j.stats()["evicted"] > 0
        j.close()


def test_bad_records_are_refused():
    with Scratch("bad") as root:
        j = opened(root)
        raises(JournalError, j.stage, b"")
        raises(JournalError, j.stage, b"x" * (SEG - 29))
        raises(JournalError, j.stage, b"x", 7)
        assert append(j, b"x" * (SEG - 30)) > 0
        raises(JournalError, Journal, root + "/k", capacity=SEG, segment_size=SEG)
        raises(JournalError, Journal, root + "/k", segment_size=16)
        j.close()


def test_staged_records_are_not_durable_until_commit():
    with Scratch("stage") as root:
        j = opened(root)
        a = append(j, b"durable")
        b = j.stage(b"staged")
        assert seqs_of(j.pending()) == [a]
        # "power cut": reopen without committing; the staged record may have made it or not
        j2 = opened(root)
        assert seqs_of(j2.records()) in ([a], [a, b]) and j2.next_seq > b
        c = append(j2, b"after")
        assert c > b
        j2.close()
        many = append_many(opened(root), [b"m1", b"m2", b"m3"])
        assert len(many) == 3 and many[0] > c


def test_group_commit_writes_once_for_many_appends():
    # When to commit is the Store's choice (hub/store.py); the journal flushes
    # once for everything staged, and an alarm's commit takes the routine ones along.
    with Scratch("group") as root:
        flushes = []

        class Counting(Journal):
            def _write(self, s, close=False):
                if self._dirty[s]:
                    flushes.append(s)
                Journal._write(self, s, close)
        j = Counting(root + "/j", capacity=64 * SEG, segment_size=SEG)
        got = [j.stage(payload(i, 12)) for i in range(6)]
        assert flushes == [] and list(j.pending()) == []
        j.commit()
        assert len(set(got)) == 6 and flushes == [ROUTINE]
        assert sorted(seqs_of(j.pending())) == sorted(got)
        flushes[:] = []
        r = j.stage(payload(7, 12))
        a = append(j, b"alarm", PRIO_ALARM)
        assert sorted(flushes) == sorted([ALARM, ROUTINE]) and seqs_of(j.alarms()) == [a]
        assert r in seqs_of(j.pending())
        j.close()


def test_every_segment_carries_the_context_its_records_need():
    with Scratch("ctx") as root:
        j = opened(root, capacity=6 * SEG)
        j.context(b"E1" * 20)
        first = [append(j, payload(i, 40)) for i in range(30)]
        a = append(j, b"alarm", PRIO_ALARM)
        j.context(b"E2" * 25)
        second = [append(j, payload(i, 40)) for i in range(30)]
        b = append(j, b"alarm2", PRIO_ALARM)
        ctx = dict((q, c) for q, p, d, c in j.records())
        assert all(ctx[q] == b"E1" * 20 for q in first if q in ctx)
        assert all(ctx[q] == b"E2" * 25 for q in second if q in ctx)
        assert ctx[a] == b"E1" * 20 and ctx[b] == b"E2" * 25
        # evict the older segments: what is left still reads with its context
        for i in range(40):
            append(j, payload(i, 40))
        for _q, _p, _d, c in j.records():
            assert c in (b"E1" * 20, b"E2" * 25)
        j.close()
        j = opened(root, capacity=6 * SEG)
        for _q, _p, _d, c in j.records():
            assert c in (b"E1" * 20, b"E2" * 25)
        j.close()


def test_torn_tail_is_counted_and_appends_move_on():
    with Scratch("torn") as root:
        j = opened(root)
        seqs = [append(j, payload(i)) for i in range(5)]
        j.close()
        name = segment_files(root)[-1]
        path = root + "/j/seg/" + name
        with open(path, "ab") as f:
            f.write(b"\x20\x00\x07\x00\x00\x00partial")  # a frame cut short by a kill
        j = opened(root)
        assert j.torn == 1 and j.damaged == 0
        assert seqs_of(j.records()) == seqs
        s = append(j, b"next")
        assert s > seqs[-1] and segment_files(root)[-1] != name
        j.close()


def test_lost_state_copy_falls_back_and_skips_seqs():
    with Scratch("state") as root:
        j = opened(root)
        seqs = [append(j, payload(i)) for i in range(10)]
        j.ack(seqs[:3])
        last_next = j.next_seq
        j.close()
        gen = j._gen
        with open(root + "/j/state.%d" % (gen & 1), "r+b") as f:  # the newest copy
            f.seek(5)
            f.write(b"\xff\xff")
        j = opened(root)
        assert j.state_fallback == 1
        assert j.next_seq >= last_next + RESERVE - 1
        # the older copy may not know the last ack: records come back, none is lost
        assert set(seqs[3:]) <= set(seqs_of(j.pending()))
        j.close()
        for k in (0, 1):
            os.remove(root + "/j/state.%d" % k)
        j = opened(root)
        assert j.state_fallback == 2 and j.next_seq > last_next + RESERVE
        assert set(seqs[3:]) <= set(seqs_of(j.pending()))
        j.close()


def test_segment_names_and_headers():
    assert segment.parse_name(segment.name(0x1234, ALARM)) == (0x1234, ALARM)
    assert segment.parse_name("state.0") is None and segment.parse_name("0000zz00.r") is None
    h = segment.header(ROUTINE, 7, 100, 356)
    assert len(h) == segment.HEADER and segment.parse_header(h, len(h)) == (ROUTINE, 7, 100, 356)
    bad = bytearray(h)
    bad[5] ^= 1
    assert segment.parse_header(bad, len(bad)) is None
    fb = bytearray(64)
    k = segment.put_frame(fb, 101, PRIO_ALARM, b"abc")
    out = bytearray(h) + fb[:k]
    assert k == 3 + segment.FRAME and len(out) == segment.HEADER + k
    assert list(segment.frames(out, len(out))) == [(segment.HEADER, 101, PRIO_ALARM, 3)]
    # erased flash and zeros are never frames
    for fill in (b"\xff", b"\x00"):
        blank = bytearray(h) + fill * 64
        assert list(segment.frames(blank, len(blank))) == [(segment.HEADER, -1, 0, 64)]
