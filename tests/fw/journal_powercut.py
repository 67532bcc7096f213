# Exhaustive power-cut test of the journal on littlefs (MicroPython unix
# port only: vfs.VfsLfs2). Run by tests/test_journal_powercut.py:
#
#   micropython journal_powercut.py [--all | --sample N] [--part I/P] [--seed S]
#                                   [--bs BYTES] [--prog BYTES]
#
# 1. A scripted workload (appends, batches, alarms, out-of-order acks,
#    segment reclaim, eviction when acks stall, clean reboots) runs once on
#    a RAM block device under littlefs that logs every block write and
#    erase, and what the journal had promised by then.
# 2. For every cut point k (or a sample) the image after the first k
#    operations is mounted afresh, twice: once as it is, once with
#    operation k+1 torn (a random prefix of it written, or of an erase).
#    The checks: littlefs mounts and the journal recovers; every record
#    whose append had returned is there exactly once and intact unless an
#    acknowledgement of it had returned (or it was evicted); nothing is
#    delivered that no ack had started on; acked records are not pending;
#    the pending count is exact; no sequence number is given out again.
# Prints "OPS n", "FAIL k kind: why" lines and "DONE checked failures".

import sys
import vfs

from fwtest import Rand
from journal_util import append, append_many
from logbd import LogBD
from hub.journal import Journal
from hub.reading import PRIO_ALARM, PRIO_ROUTINE, PRIO_TELEMETRY
from hub.segment import ALARM, ROUTINE

BS = 512          # littlefs block = journal segment (--bs)
PROG = 32         # littlefs prog size (--prog): 32 as on ESP32, 256 as on RP2
BLOCKS = 96
CAPACITY = 8 * BS
ROOT = "/pc/journal"


def payload(seq):
    n = 6 + (seq * 37) % (BS // 11)  # about a dozen records a segment
    return bytes((seq * 7 + i * 13) & 0xFF for i in range(n))


def apply(img, op, torn=None):
    block, off, data = op
    a = block * BS
    if data is None:
        n = BS if torn is None else torn % (BS + 1)
        img[a:a + n] = b"\xff" * n
    else:
        n = len(data) if torn is None else torn % (len(data) + 1)
        img[a + off:a + off + n] = data[:n]


class Recorder:
    def __init__(self, bd):
        self.bd = bd
        self.events = []  # (kind, ops at the time, ...)
        self.prio = {}
        self.ctx = {}  # seq -> context in force when it was appended
        self.current = None

    def note(self, *ev):
        self.events.append((ev[0], self.bd.ops) + ev[1:])


def make_journal(rec):
    def tel(seq, info):
        rec.prio[seq] = PRIO_TELEMETRY
        rec.ctx[seq] = rec.current
        rec.note("s", seq)
        return payload(seq)

    class J(Journal):
        def _evict(self, for_alarm=False):
            # the segment Journal._evict picks: oldest spare routine, else alarm, else (for
            # an alarm) the routine stream's newest, with what it has staged flushed first
            for s in (ROUTINE, ALARM):
                for i in range(self._n):
                    if (self._flag[i] & 1) == s and self._spare(i):
                        rec.note("e", s, self._first[i], self._last[i])
                        return Journal._evict(self, for_alarm)
            i = self._idx(self._top[ROUTINE]) if for_alarm else -1
            if i >= 0 and self._cnt[i]:
                staged = self._act[ROUTINE] == self._sno[i] and self._sn[ROUTINE]
                rec.note("e", ROUTINE, self._first[i], self._sl[ROUTINE] if staged else self._last[i])
            return Journal._evict(self, for_alarm)

    return J(ROOT, capacity=CAPACITY, segment_size=BS, telemetry=tel, reserve=16)


def epoch(rec, j, n):
    # what the sealer does at each new epoch (Sealer(on_epoch=journal.context))
    rec.current = b"epoch header %d " % n * (1 + n % 4)
    j.context(rec.current)


def gen(rec, prio):
    def f(seq):
        rec.prio[seq] = prio
        rec.ctx[seq] = rec.current
        rec.note("s", seq)
        return payload(seq)
    return f


def mount(bd):
    fs = vfs.VfsLfs2(bd, progsize=PROG)
    vfs.mount(fs, "/pc")


def workload(seed):
    img = bytearray(b"\xff" * (BS * BLOCKS))
    bd = LogBD(img, bs=BS)
    vfs.VfsLfs2.mkfs(bd, progsize=PROG)
    base = bytes(img)
    bd.log = []
    bd.ops = 0
    rec = Recorder(bd)
    mount(bd)
    j = make_journal(rec)
    epoch(rec, j, 0)
    r = Rand(seed)
    steps = 190
    for step in range(steps):
        stall = 50 <= step < 120  # no acks: the journal fills and evicts
        x = r.below(100)
        if r.below(25) == 0:
            epoch(rec, j, step)
        if x < 50:
            p = PRIO_ALARM if r.below(8) == 0 else PRIO_ROUTINE
            seq = append(j, gen(rec, p), p)
            rec.note("a", seq)
        elif x < 65:
            seqs = append_many(j, [gen(rec, PRIO_ROUTINE) for _ in range(2 + r.below(4))])
            for seq in seqs:
                rec.note("a", seq)
        elif x < 93 and not stall:
            pend = [s for s, p, d, c in j.pending()]
            alarms = [s for s, p, d, c in j.alarms()]
            pick = alarms[:2]
            for s in pend:
                if r.below(3) and len(pick) < 12:
                    pick.append(s)
            if pick:
                rec.note("k0", pick)
                j.ack(pick)
                rec.note("k1", pick)
        elif x >= 97:
            j.close()
            vfs.umount("/pc")
            rec.note("reboot")
            mount(bd)
            j = make_journal(rec)
            epoch(rec, j, step)
    j.close()
    vfs.umount("/pc")
    return base, bd.log, rec


def check(img, k, rec):
    """Mount img (state after k operations) and check the promises; returns an error or None."""
    durable = {}
    acked = set()
    started = set()
    assigned = 0
    evicted = []  # (stream, first, last) of evictions that had started
    for ev in rec.events:
        if ev[1] > k:
            break
        kind = ev[0]
        if kind == "a":
            durable[ev[2]] = True
        elif kind == "s":
            assigned = max(assigned, ev[2])
        elif kind == "k0":
            started.update(ev[2])
        elif kind == "k1":
            acked.update(ev[2])
        elif kind == "e":  # an eviction that had started may have removed these
            evicted.append(ev[2:])
    bd = LogBD(img, bs=BS)
    try:
        mount(bd)
    except OSError as e:
        return "littlefs does not mount: %r" % e
    try:
        j = Journal(ROOT, capacity=CAPACITY, segment_size=BS, reserve=16)
        seen = {}
        npend = 0
        for seq, prio, data, ctx in j.records():
            if seq in seen:
                return "seq %d twice" % seq
            seen[seq] = 1
            if data != payload(seq):
                return "seq %d damaged" % seq
            if prio != rec.prio.get(seq):
                return "seq %d prio %r, appended as %r" % (seq, prio, rec.prio.get(seq))
            if ctx != rec.ctx.get(seq):
                return "seq %d context %r, appended under %r" % (seq, ctx, rec.ctx.get(seq))
            s = ALARM if prio == PRIO_ALARM else ROUTINE
            pend = j.is_pending(seq, s)
            npend += pend
            if pend and seq in acked:
                return "seq %d acked but pending again" % seq
            if not pend and seq not in started:
                return "seq %d delivered without an ack" % seq
        if npend != j.count():
            return "count %d, %d pending found" % (j.count(), npend)
        for seq in durable:
            if seq in acked or seq in seen:
                continue
            s = ALARM if rec.prio[seq] == PRIO_ALARM else ROUTINE
            if seq in started and not j.is_pending(seq, s):
                continue  # an ack running at the cut landed, and the segment went
            if any(e[0] == s and e[1] <= seq <= e[2] for e in evicted):
                continue  # evicted (counted; test_journal checks the counts)
            return "durable seq %d lost" % seq
        st = j.stats()
        if st["damaged"] or st["torn"] or st["bad_headers"]:
            return "damage after a power cut: %r" % j.stats()
        if j.next_seq <= assigned:
            return "next seq %d would reuse (assigned up to %d)" % (j.next_seq, assigned)
        seq = append(j, b"after")
        if seq <= assigned:
            return "appended seq %d reuses (assigned up to %d)" % (seq, assigned)
        j.close()
    except Exception as e:  # noqa: BLE001 - any failure to recover is the finding
        sys.print_exception(e)
        return "recovery raised %r" % e
    finally:
        vfs.umount("/pc")
    return None


def main():
    global BS, PROG, CAPACITY
    args = sys.argv[1:]
    seed = 1
    sample = 0
    part, parts = 0, 1
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--all":
            sample = 0
        elif a == "--sample":
            i += 1
            sample = int(args[i])
        elif a == "--seed":
            i += 1
            seed = int(args[i])
        elif a == "--part":
            i += 1
            part, parts = [int(x) for x in args[i].split("/")]
        elif a == "--bs":
            i += 1
            BS = int(args[i])
            CAPACITY = 8 * BS
        elif a == "--prog":
            i += 1
            PROG = int(args[i])
        i += 1
    base, log, rec = workload(seed)
    n = len(log)
    kinds = {}
    for ev in rec.events:
        kinds[ev[0]] = kinds.get(ev[0], 0) + 1
    print("OPS %d appends %d acks %d evictions %d reboots %d (block %d, prog %d, seed %d)" % (
        n, kinds.get("a", 0), kinds.get("k1", 0), kinds.get("e", 0), kinds.get("reboot", 0), BS, PROG, seed))
    if sample and sample < n:
        r = Rand(seed * 7919 + 1)
        points = sorted(set([0, n - 1] + [r.below(n) for _ in range(sample)]))
    else:
        points = list(range(n))
    points = [k for idx, k in enumerate(points) if idx % parts == part]
    img = bytearray(base)
    done = 0
    failed = 0
    r = Rand(seed + 99)
    pi = 0
    for k in range(n + 1):
        # img holds the first k operations
        if pi < len(points) and points[pi] == k:
            pi += 1
            for torn in (None, r.next64()):
                t = bytearray(img)
                if torn is not None and k < n:
                    apply(t, log[k], torn)
                err = check(t, k, rec)
                done += 1
                if err:
                    failed += 1
                    print("FAIL %d %s: %s" % (k, "torn" if torn is not None else "cut", err))
        if k < n:
            apply(img, log[k])
    print("DONE %d %d" % (done, failed))


main()
