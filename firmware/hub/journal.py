# The journal: an append-only, power-cut-safe store of sealed records on
# the hub's flash, from which the uplink delivers them. docs/journal.md
# explains the format, the durability argument and the eviction policy;
# hub/segment.py holds the bytes.
#
#   root/seg/<segno>.r   routine and telemetry records (one stream)
#   root/seg/<segno>.a   alarm records (the other stream)
#   root/state.0, .1     sequence reservation, delivered cursors, counters
#
# Records are opaque bytes (already sealed). The journal gives each one a
# sequence number from a reservation persisted ahead of use and writes it
# in a CRC-checked frame at the end of its stream's active segment
# (stage()); commit() flushes what is staged (fsync on the unix port, a
# littlefs commit on the boards), and only then is it durable. When to
# commit is not decided here: hub/store.py owns commit timing (its tests
# use journal_util.append: stage + commit). Segments are never rewritten: a whole segment is
# deleted once every record in it is delivered, or evicted (oldest
# routine first, alarms last) when the journal is full.
#
# Delivery: pending() yields undelivered records; ack() marks records the
# receiver acknowledged, in any order, and returns once that is durable.
# Per stream, `low` is the first undelivered record's seq and `ranges`
# holds records acknowledged out of order above it.
#
# RAM does not grow with the amount of data: mounting streams every
# segment through one buffer, and the segment table has a fixed size set
# by the capacity.
#
# Runs on MicroPython (unix port, ESP32, RP2) and CPython (the host reads
# a hub's journal with this same module).
#
# One module: the Journal is one object whose invariants span mount, stage,
# commit, evict and ack. The segment table, the per-stream `low`/`ranges`
# cursors and the sequence reservation are read and written by all of them,
# and the durability argument (docs/journal.md) is made over the order in
# which they touch the flash. Split by operation, those private fields would
# become an interface between modules (test_one_owner forbids reaching into
# another module's privates), and every hub imports the journal at boot, so a
# second always-imported module adds its own name table and code objects to
# the heap and unloads nothing. The one seam worth measuring is the mount (the
# recovery scan, _mount, about 110 lines, run once per boot): as a module of
# its own it could be dropped after boot; that is a heap trade for `make bench`
# to decide, not a size clean-up, and it would make the segment table public.

import os
import struct
from array import array
from binascii import crc32

from hub import cbor, segment
from hub.reading import CTX, PRIO, PRIO_ALARM, PRIO_ROUTINE, PRIO_TELEMETRY, SEQ
from hub.segment import ALARM, FRAME, HEADER, ROUTINE
from hub.errors import HubError

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

RESERVE = const(256)        # sequence numbers reserved (persisted) at a time
SKIP_LOST = const(1 << 20)  # skipped when every copy of the state is lost
MIN_SEGMENTS = const(4)
FS_SLACK = const(5)         # filesystem blocks kept free for littlefs's copy-on-write and directories
DIR_BLOCKS = const(4)       # blocks a new directory may take (may_take: what others write)
_F_ALARM = const(1)         # segment belongs to the alarm stream
_F_FULL = const(2)          # no more appends (closed, or its tail is torn)
_STATE_MAGIC = b"JS\x01"


class JournalError(HubError):
    """The journal cannot do what was asked (record too big, journal full, bad argument)."""


class JournalRefused(JournalError):
    """A record the journal could not take for lack of room: nothing left to evict
    (reason "full": the flash taken by other files, or a capacity too small for the
    active segments) or the flash refused the write (reason "flash": an OSError,
    ENOSPC from littlefs). Counted (stats "refused") and reported in a telemetry
    record once one fits again; the caller keeps the reading (hub/store.py)."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def stream_of(prio):
    if prio == PRIO_ALARM:
        return ALARM
    if prio == PRIO_ROUTINE or prio == PRIO_TELEMETRY:
        return ROUTINE
    raise JournalError("unknown priority %r" % (prio,))


def _in(ranges, seq):
    k = 0
    n = len(ranges)
    while k < n:
        if seq < ranges[k]:
            return False
        if seq < ranges[k + 1]:
            return True
        k += 2
    return False


def _add(ranges, seq):
    # ranges: flat sorted [lo, hi, lo, hi, ...] of half-open, non-touching intervals.
    k = 0
    n = len(ranges)
    while k < n and ranges[k + 1] < seq:
        k += 2
    if k < n and ranges[k] <= seq < ranges[k + 1]:
        return
    if k < n and ranges[k + 1] == seq:  # extends [lo, seq) upwards
        ranges[k + 1] = seq + 1
        if k + 2 < n and ranges[k + 2] == seq + 1:
            ranges[k + 1] = ranges[k + 3]
            del ranges[k + 2:k + 4]
        return
    if k < n and ranges[k] == seq + 1:  # extends [seq + 1, hi) downwards
        ranges[k] = seq
        return
    ranges[k:k] = [seq, seq + 1]


def _trim(ranges, low):
    """ranges without anything below low, trimmed in place (no new list: after a
    long scan the heap may have no large hole left); returns ranges."""
    k = 0
    n = len(ranges)
    while k < n and ranges[k + 1] <= low:
        k += 2
    if k:
        del ranges[:k]
    if ranges and ranges[0] < low:
        ranges[0] = low
    return ranges


def _telemetry(seq, info):
    # Default eviction report: a CBOR map with the reading keys SEQ, PRIO and
    # CTX. The hub replaces this with a builder that seals (Journal.telemetry).
    return cbor.dumps({SEQ: seq, PRIO: PRIO_TELEMETRY, CTX: info})


def _names(path):
    if hasattr(os, "ilistdir"):
        for e in os.ilistdir(path):
            yield e[0]
    else:  # CPython
        for n in sorted(os.listdir(path)):
            yield n


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass


class Journal:
    """Open (or create) the journal under root and recover it.

    capacity is the flash the segments may take, in bytes; segment_size is
    one segment's size (one erase block on the boards). telemetry(seq,
    info) -> bytes builds the eviction report (seal it there); it is the
    public attribute .telemetry too, because the hub's sealer is made after
    the journal (it reports epochs to journal.context) and is then set as the
    builder. When to commit is the caller's choice: the hub's Store decides
    (hub/store.py)."""

    def __init__(self, root="/journal", capacity=512 * 1024, segment_size=4096,
                 telemetry=None, reserve=RESERVE):
        if not HEADER + FRAME < segment_size <= 0xFFFF:
            raise JournalError("segment size %d out of range" % segment_size)
        self.root = root.rstrip("/") or "/"
        self._dir = self.root + "/seg"
        self._seg = segment_size
        self._max = capacity // segment_size
        if self._max < MIN_SEGMENTS:
            raise JournalError("capacity %d holds fewer than %d segments" % (capacity, MIN_SEGMENTS))
        self.max_payload = min(segment.MAX_PAYLOAD, segment_size - HEADER - FRAME)
        self.telemetry = telemetry or _telemetry
        self._reserve = reserve
        self._buf = bytearray(segment_size)
        self._fh = [None, None]      # open active segment files
        self._act = [-1, -1]         # active segment number per stream
        self._fb = bytearray(128)    # one frame at a time is built here (grows to the largest)
        self._dirty = [0, 0]         # bytes written to the active segment, not yet flushed
        self._sn = [0, 0]            # staged (written, unflushed) records per stream
        self._sf = [0, 0]            # first and last staged seq per stream
        self._sl = [0, 0]
        self._dseq = [0, 0]          # highest durable seq per stream
        self._pend = [0, 0]          # undelivered records per stream
        self._unrep = None           # eviction not yet reported: [records, alarms, first, last]
        self._unref = None           # refusals not yet reported: [records, alarms]
        self.refused = [0, 0]        # records refused for lack of room since mount, per stream
        self._ctx = None             # context blob (epoch header) the next records need
        self._ctx_due = [False, False]  # ... and not yet written before them in this stream
        self._telling = False
        # Counted since mount (damage stays on flash until its segment goes, so
        # it is counted again at the next boot) and, for evictions, for ever.
        self.damaged = 0       # damaged stretches skipped (one or more records each)
        self.damaged_bytes = 0
        self.torn = 0          # unfinished frames at the end of a stream (a cut append)
        self.bad_headers = 0
        self.unknown_acks = 0
        self.state_fallback = 0  # 1: older state copy used; 2: no valid state, seqs skipped
        self.mount_ms = 0
        self._mount()

    # ------------------------------------------------------------ state file

    def _spath(self, k):
        return "%s/state.%d" % (self.root, k)

    def _load_state(self):
        best = None
        found = bad = 0
        for k in (0, 1):
            try:
                with open(self._spath(k), "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            found += 1
            st = None
            if len(raw) > 7 and raw[:3] == _STATE_MAGIC \
                    and crc32(raw[3:-4]) == struct.unpack("<I", raw[-4:])[0]:
                try:
                    st = cbor.loads(raw[3:-4])
                    if not (isinstance(st, list) and len(st) == 6 and all(isinstance(x, int) for x in st[:2])
                            and len(st[2]) == 2 and len(st[3]) == 2 and len(st[4]) == 2
                            and all(len(r) % 2 == 0 for r in st[3])):
                        st = None
                except (ValueError, TypeError):
                    st = None
            if st is None:
                bad += 1
            elif best is None or st[0] > best[0]:
                best = st
        return best, found, bad

    def _save(self, limit=None, low=None, ranges=None):
        # Two copies written in turn: a cut write (or a flipped bit) leaves
        # the other, one generation older, intact. Returns once durable.
        limit = self._limit if limit is None else limit
        low = self._low if low is None else low
        ranges = self._ranges if ranges is None else ranges
        gen = self._gen + 1
        blob = cbor.dumps([gen, limit, low, ranges, self._evicted, self._reported])
        with open(self._spath(gen & 1), "wb") as f:
            f.write(_STATE_MAGIC + blob + struct.pack("<I", crc32(blob)))
            f.flush()
        self._gen = gen
        self._limit = limit
        self._low = low
        self._ranges = ranges

    # ------------------------------------------------------------ segment table

    def _alloc(self, m):
        self._tcap = m
        self._sno = array("I", bytes(4 * m))
        self._first = array("I", bytes(4 * m))
        self._last = array("I", bytes(4 * m))
        self._cnt = array("H", bytes(2 * m))
        self._used = array("H", bytes(2 * m))
        self._flag = array("B", bytes(m))
        self._n = 0

    def _path(self, i):
        return self._dir + "/" + segment.name(self._sno[i], self._flag[i] & _F_ALARM)

    def _idx(self, segno):
        for i in range(self._n - 1, -1, -1):
            if self._sno[i] == segno:
                return i
        return -1

    def _sweep(self, doomed):
        # Delete the segments doomed(i) picks and close the gaps, in one pass.
        j = 0
        for i in range(self._n):
            if doomed(i):
                try:
                    os.remove(self._path(i))
                except OSError:
                    pass
                continue
            if j != i:
                for t in (self._sno, self._first, self._last, self._cnt, self._used, self._flag):
                    t[j] = t[i]
            j += 1
        gone = self._n - j
        self._n = j
        return gone

    def _spare(self, i):
        # Neither a stream's newest segment nor the one being appended to.
        s = self._flag[i] & _F_ALARM
        return self._sno[i] != self._top[s] and self._sno[i] != self._act[s]

    def _done(self, i):
        # Holds nothing undelivered.
        return self._cnt[i] == 0 or self._last[i] < self._low[self._flag[i] & _F_ALARM]

    def _read(self, i, buf, committed=True):
        # Bytes of segment i; only those flushed, unless mounting (a folder shows
        # written but unflushed bytes to other readers, littlefs does not).
        try:
            with open(self._path(i), "rb") as f:
                n = f.readinto(buf) or 0
        except OSError:
            return 0
        return min(n, self._used[i]) if committed else n

    # ------------------------------------------------------------ mount

    def _mount(self):
        import time
        t0 = time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.monotonic() * 1000)
        _mkdir(self.root)
        _mkdir(self._dir)
        st, found, bad = self._load_state()
        count = 0
        for nm in _names(self._dir):
            if segment.parse_name(nm):
                count += 1
        self._alloc(max(self._max + 2, count))
        for nm in _names(self._dir):
            p = segment.parse_name(nm)
            if p:
                # insertion sort by segment number; the table is small
                i = self._n
                while i > 0 and self._sno[i - 1] > p[0]:
                    for t in (self._sno, self._flag):
                        t[i] = t[i - 1]
                    i -= 1
                self._sno[i] = p[0]
                self._flag[i] = p[1]
                self._n += 1
        if st:  # the decoded lists as they are: copies made now would land in a churned heap
            self._gen, self._limit, self._low, self._ranges = st[0], st[1], st[2], st[3]
            self._evicted, self._reported = st[4], st[5]
        else:
            self._gen, self._limit, self._low, self._ranges = 0, 0, [0, 0], [[], []]
            self._evicted, self._reported = [0, 0], 0
        self._top = [-1, -1]  # newest segment number per stream
        newest = [-1, -1]
        for i in range(self._n):
            newest[self._flag[i] & _F_ALARM] = i
            self._top[self._flag[i] & _F_ALARM] = self._sno[i]
        prev = [-1, -1]          # last good seq per stream, for ordering across segments
        head = [None, None]      # first undelivered seq per stream
        seen = 0                 # highest seq or reservation anywhere on flash
        buf = self._buf
        for i in range(self._n):
            s = self._flag[i] & _F_ALARM
            n = self._read(i, buf, False)
            h = segment.parse_header(buf, n)
            if n < HEADER:
                # Empty and newest: a cut just after the file was created, which
                # promised nothing. Anything else this short was cut or truncated.
                if i != newest[s]:
                    self.damaged += 1
                elif n:
                    self.torn += 1
                self._flag[i] |= _F_FULL
            elif h is None or h[0] != s or h[1] != self._sno[i]:
                self.bad_headers += 1
            else:
                seen = max(seen, h[2], h[3])
            cnt = 0
            low, ranges = self._low[s], self._ranges[s]
            for pos, seq, prio, ln in segment.frames(buf, n, HEADER, prev[s]):
                if seq < 0:
                    if pos + ln == n and i == newest[s]:
                        self.torn += 1
                    else:
                        self.damaged += 1
                        self.damaged_bytes += ln
                    if pos + ln == n:
                        self._flag[i] |= _F_FULL
                    continue
                if cnt == 0:
                    self._first[i] = seq
                cnt += 1
                prev[s] = seq
                if seq >= low and not _in(ranges, seq):
                    self._pend[s] += 1
                    if head[s] is None:
                        head[s] = seq
            self._cnt[i] = cnt
            if cnt:
                self._last[i] = prev[s]
                seen = max(seen, prev[s] + 1)
            self._used[i] = n
        if st:
            nxt = max(self._limit, seen)
            if bad:  # the other copy may have been newer: skip what it could have reserved
                nxt = max(nxt, self._limit + self._reserve)
                self.state_fallback = 1
        elif found or self._n:
            nxt = seen + SKIP_LOST
            self.state_fallback = 2
        else:
            nxt = 1
        self._next = nxt
        self._nsno = (self._sno[self._n - 1] + 1) if self._n else 1
        for s in (ROUTINE, ALARM):
            self._low[s] = head[s] if head[s] is not None else nxt
            self._ranges[s] = _trim(self._ranges[s], self._low[s])
            self._dseq[s] = prev[s]
        # Delete what holds nothing undelivered (the newest segment of each
        # stream stays: it is where appends go, and it remembers the last seq).
        self._sweep(lambda i: self._spare(i) and self._done(i))
        for s in (ROUTINE, ALARM):
            i = self._idx(self._top[s])
            if i >= 0 and not self._flag[i] & _F_FULL and self._cnt[i] and self._used[i] + FRAME < self._seg:
                self._act[s] = self._sno[i]
        if self._evicted[0] + self._evicted[1] > self._reported:
            self._unrep = [self._evicted[0] + self._evicted[1] - self._reported, 0, 0, 0]
        t1 = time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.monotonic() * 1000)
        self.mount_ms = t1 - t0

    # ------------------------------------------------------------ appending

    def _take_seq(self):
        seq = self._next
        if seq >= self._limit:
            self._save(limit=seq + self._reserve)  # durable before the seq is used
        self._next = seq + 1
        return seq

    def _out(self, s, data):
        # Stage: write to the active segment without flushing. littlefs keeps it
        # uncommitted (a power cut drops it); a folder may keep it, complete or cut.
        f = self._fh[s]
        if f is None:
            f = self._fh[s] = open(self._path(self._idx(self._act[s])), "ab")
        f.write(data)
        self._dirty[s] += len(data)

    def _frame(self, seq, prio, data, fill=None):
        n = (data if fill else len(data)) + FRAME
        if len(self._fb) < n:
            self._fb = bytearray(n)
        return memoryview(self._fb)[:segment.put_frame(self._fb, seq, prio, data, fill)]

    def _write(self, s, close=False):
        # Flush stream s's active segment: what was staged is durable on return.
        i = self._idx(self._act[s])
        f = self._fh[s]
        st = self._dirty[s]
        if st:
            f.flush()
            n = self._sn[s]
            if n:
                if self._cnt[i] == 0:
                    self._first[i] = self._sf[s]
                if self._pend[s] == 0:
                    self._low[s] = self._sf[s]
                self._cnt[i] += n
                self._last[i] = self._sl[s]
                self._pend[s] += n
                self._dseq[s] = self._sl[s]
            self._used[i] += st
            self._dirty[s] = 0
            self._sn[s] = 0
        if close:
            if f is not None:
                f.close()
            self._fh[s] = None
            self._flag[i] |= _F_FULL
            self._act[s] = -1

    def _make_room(self, s=ROUTINE):
        # One more segment must fit, in our capacity and on the filesystem:
        # reclaim delivered segments, else evict (for an alarm, the routine
        # stream's newest segment too, once nothing else is left).
        while self._n >= self._max or self._fs_short():
            if not self._reclaim():
                self._evict(s == ALARM)

    def _fs(self):
        # (block size, free blocks) of the filesystem the journal is on, or None
        # where it says nothing (no statvfs).
        try:
            st = os.statvfs(self.root)
        except (OSError, AttributeError):
            return None
        # MicroPython's littlefs reports block_count - lfs_fs_size as an unsigned number, and
        # lfs_fs_size may count a block twice: near full it wraps to about 2**32 (seen on the
        # unix port). More free blocks than blocks means none.
        return st[0], st[3] if st[3] <= st[2] else 0

    def _fs_short(self):
        # The flash may fill before our capacity does (other files, littlefs's
        # own metadata, a capacity set too high): keep room for a new segment
        # and for littlefs to copy a block and split a directory.
        fs = self._fs()
        return fs is not None and fs[0] * fs[1] < self._seg + FS_SLACK * fs[0]

    def spare_bytes(self, fs=None):
        """Bytes of flash other files (an update's stage and trees, hub/ota.py) may still
        take now and leave the journal what it needs to grow to its capacity: the blocks
        of the segments it may still open, the rest of its active segments, and the
        FS_SLACK blocks _fs_short keeps. Negative when it is short already; None where
        the filesystem says nothing (no statvfs). The one place this is worked out:
        may_take() asks it."""
        fs = fs or self._fs()
        if fs is None:
            return None
        bs, free = fs
        per = (self._seg + bs - 1) // bs  # blocks one whole segment takes
        need = max(0, self._max - self._n) * per + FS_SLACK
        for s in (ROUTINE, ALARM):
            i = self._idx(self._act[s])
            if i >= 0:
                need += max(0, per - (self._used[i] + self._dirty[s] + bs - 1) // bs)
        return (free - need) * bs

    def may_take(self, nbytes):
        """Whether a file of nbytes may be written now without taking the journal's room:
        its size in whole blocks, plus DIR_BLOCKS for a directory it may create or split
        (a new folder took 4 blocks of a littlefs with 4 KB blocks, measured on the unix
        port: its metadata pair and its parent's). Asks the filesystem (statvfs) each time."""
        fs = self._fs()
        if fs is None:
            return True
        bs = fs[0]
        return ((nbytes + bs - 1) // bs + DIR_BLOCKS) * bs <= self.spare_bytes(fs)

    def _reclaim(self):
        return self._sweep(lambda i: self._spare(i) and self._done(i))

    def _evict(self, for_alarm=False):
        # Oldest inactive routine segment first; alarm segments only when no
        # routine segment is left to evict; for_alarm: then the routine stream's
        # newest segment, rather than refuse an alarm.
        for s in (ROUTINE, ALARM):
            for i in range(self._n):
                if (self._flag[i] & _F_ALARM) == s and self._spare(i):
                    break
            else:
                continue
            break
        else:
            i = self._idx(self._top[ROUTINE]) if for_alarm else -1
            if i < 0 or not self._cnt[i]:
                raise JournalRefused("full", "journal full: capacity too small for the active segments")
            # An alarm must not be refused while routine records hold flash: the routine
            # stream's newest segment goes too (committed first, so that every record in it
            # is counted as evicted), and the next routine record opens a new one.
            s = ROUTINE
            if self._act[s] == self._sno[i]:
                self._write(s, close=True)
                i = self._idx(self._top[s])
        low, ranges = self._low[s], self._ranges[s]
        lost = 0
        n = self._read(i, self._buf)
        for pos, seq, prio, ln in segment.frames(self._buf, n):
            if seq >= low and not _in(ranges, seq):
                lost += 1
        first, last = self._first[i], self._last[i]
        new_low = self._walk(s, last + 1, ranges) if self._low[s] <= last else self._low[s]
        lows = list(self._low)
        lows[s] = new_low
        rr = list(self._ranges)
        rr[s] = _trim(list(ranges), new_low)
        if lost:
            self._evicted[s] += lost
            u = self._unrep or [0, 0, first, last]
            u[0] += lost
            if s == ALARM:
                u[1] += lost
            u[2] = min(u[2], first) if u[2] else first
            u[3] = max(u[3], last)
            self._unrep = u
        self._save(low=lows, ranges=rr)  # counted before the records go
        self._pend[s] -= lost
        doomed = self._sno[i]
        self._sweep(lambda j: self._sno[j] == doomed)

    def _stage1(self, data, prio, size=None):
        s = stream_of(prio)
        seq = self._take_seq()
        if size is None:
            if callable(data):
                data = data(seq)
            n = len(data)
        else:
            n = size
        ctx = self._ctx
        extra = len(ctx) + FRAME if ctx else 0
        if not 0 < n <= self.max_payload - extra:
            raise JournalError("record of %d bytes (1..%d allowed)" % (n, self.max_payload - extra))
        if not self._ctx_due[s]:
            extra = 0
        a = self._act[s]
        if a < 0 or self._used[self._idx(a)] + self._dirty[s] + n + FRAME + extra > self._seg:
            if a >= 0:
                self._write(s, close=True)
            t = self._idx(self._top[s])
            if t >= 0 and self._cnt[t] == 0:  # an empty file left by a cut: not a segment
                self._sweep(lambda j: j == t)
            self._make_room(s)
            i = self._n
            if i >= self._tcap:
                raise JournalRefused("full", "segment table full")
            segno = self._nsno
            self._nsno += 1
            self._sno[i] = segno
            self._flag[i] = s
            self._cnt[i] = 0
            self._used[i] = 0
            self._first[i] = self._last[i] = 0
            self._n += 1
            self._act[s] = segno
            self._top[s] = segno
            self._out(s, segment.header(s, segno, seq, self._limit))
            self._ctx_due[s] = ctx is not None  # every segment starts with the context
        if self._ctx_due[s]:
            self._out(s, self._frame(seq, segment.CONTEXT, ctx))
            self._ctx_due[s] = False
        self._out(s, self._frame(seq, prio, data) if size is None else self._frame(seq, prio, n, data))
        if self._sn[s] == 0:
            self._sf[s] = seq
        self._sn[s] += 1
        self._sl[s] = seq
        return seq

    def context(self, blob):
        """Keep blob (the sealer's epoch header: Sealer(on_epoch=journal.context))
        with every record appended from now on: it is written before the next
        record of each stream and at the start of every new segment, so any
        segment holds what its records need however old segments go."""
        if not blob or len(blob) > self.max_payload // 2:
            raise JournalError("context of %d bytes (1..%d allowed)" % (len(blob), self.max_payload // 2))
        self._ctx = bytes(blob)
        self._ctx_due = [True, True]

    def stage(self, data, prio=PRIO_ROUTINE, size=None, again=False):
        """Give data the next sequence number and buffer it; returns the seq.
        data is bytes, or a callable seq -> bytes (a sealer: lambda seq:
        sealer.seal(seq, plaintext)), or with size a callable fill(seq, view)
        that writes exactly size bytes into the journal's buffer (seal_into).
        It is written to the segment at once but not durable until commit()
        (or until the segment fills and closes); until then a power cut may
        keep it or drop it, and pending() does not show it.
        JournalRefused if there is no room for it (counted, reported; again: the
        record was refused before and is offered again, so it is not counted twice)."""
        try:
            seq = self._stage1(data, prio, size)
        except JournalRefused:
            self._refuse(stream_of(prio), 0 if again else 1)
            raise
        except OSError as e:  # the flash refused the write (ENOSPC): a refusal as well
            self._refuse(stream_of(prio), 0 if again else 1)
            self._cut_tails()
            raise JournalRefused("flash", "flash: %s" % (e,))
        if (self._unrep or self._unref) and not self._telling:
            self._telling = True
            try:
                self._tell()
            finally:
                self._telling = False
        return seq

    def _refuse(self, s, n):
        # Count refused records and have them reported once a record fits again.
        if not n:
            return
        self.refused[s] += n
        u = self._unref or [0, 0]
        u[0] += n
        if s == ALARM:
            u[1] += n
        self._unref = u

    def _cut_tails(self):
        # After a failed write an active segment's tail is unknown: nothing more is
        # appended after it (its flushed records stay; the next record opens a new
        # segment). What was staged and could not be flushed is counted as refused
        # (it may still be found on flash at the next mount, then it is delivered).
        for t in (ROUTINE, ALARM):
            if self._act[t] < 0:
                continue
            try:
                self._write(t, close=True)
            except OSError:
                self._refuse(t, self._sn[t])
                i = self._idx(self._act[t])
                try:
                    self._fh[t].close()
                except (OSError, AttributeError):
                    pass
                self._fh[t] = None
                self._flag[i] |= _F_FULL
                self._act[t] = -1
                self._dirty[t] = self._sn[t] = 0

    def _tell(self):
        # The eviction and refusal reports, as telemetry records. A report that does not
        # fit now waits for the next record (the reading before it is staged either way).
        while self._unrep or self._unref:
            if self._unrep:
                u, self._unrep = self._unrep, None  # an eviction while this one is staged starts a new one
                info = {"evicted": u[0], "alarms": u[1], "first": u[2], "last": u[3],
                        "total": self._evicted[0] + self._evicted[1]}
            else:
                u, self._unref = self._unref, None
                info = {"refused": u[0], "alarms": u[1], "total": self.refused[0] + self.refused[1]}
            try:
                self._stage1(lambda q: self.telemetry(q, info), PRIO_TELEMETRY)
            except (JournalRefused, OSError) as e:
                if isinstance(e, OSError):
                    self._cut_tails()
                if "evicted" in info:  # told with the next record that fits, with what came since
                    v = self._unrep
                    self._unrep = u if v is None else [u[0] + v[0], u[1] + v[1], min(u[2], v[2]) or v[2],
                                                       max(u[3], v[3])]
                else:
                    self._unref = u if self._unref is None else [u[0] + self._unref[0], u[1] + self._unref[1]]
                return
            if "evicted" in info:
                self._reported = info["total"]

    def commit(self):
        """Make everything staged durable (alarms first). JournalRefused ("flash") if the
        flash refused a flush: what that stream had staged is counted as refused."""
        for s in (ALARM, ROUTINE):
            if self._dirty[s]:
                try:
                    self._write(s)
                except OSError as e:
                    self._cut_tails()
                    raise JournalRefused("flash", "flash: %s" % (e,))

    # ------------------------------------------------------------ delivery

    def _walk(self, s, start, ranges):
        # First undelivered seq >= start in stream s, or where the next one will be.
        buf = self._buf
        for i in range(self._n):
            if (self._flag[i] & _F_ALARM) != s or not self._cnt[i] or self._last[i] < start:
                continue
            n = self._read(i, buf)
            for pos, seq, prio, ln in segment.frames(buf, n):
                if seq >= start and not _in(ranges, seq):
                    return seq
        return self._sf[s] if self._sn[s] else self._next

    def ack(self, seqs):
        """The receiver acknowledged these seqs (an int or an iterable, any order).
        Returns how many were undelivered records; durable on return. Seqs
        that are no (longer) undelivered records are ignored and counted."""
        if isinstance(seqs, int):
            seqs = (seqs,)
        wset = set(seqs)
        want = sorted(wset)
        if not want:
            return 0
        found = [[], []]
        buf = self._buf
        for i in range(self._n):
            if not self._cnt[i]:
                continue
            s = self._flag[i] & _F_ALARM
            lo, hi = self._first[i], self._last[i]
            if want[-1] < lo or want[0] > hi or not any(lo <= q <= hi for q in want):
                continue
            n = self._read(i, buf)
            low, ranges = self._low[s], self._ranges[s]
            for pos, seq, prio, ln in segment.frames(buf, n):
                if lo <= seq <= hi and seq >= low and seq in wset and not _in(ranges, seq):
                    found[s].append(seq)
        total = len(found[0]) + len(found[1])
        self.unknown_acks += len(want) - total
        if not total:
            return 0
        lows = list(self._low)
        rr = [list(self._ranges[0]), list(self._ranges[1])]
        for s in (ROUTINE, ALARM):
            if not found[s]:
                continue
            for q in found[s]:
                _add(rr[s], q)
            if _in(rr[s], lows[s]):
                lows[s] = self._walk(s, lows[s], rr[s])
            rr[s] = _trim(rr[s], lows[s])
        self._save(low=lows, ranges=rr)
        self._pend[0] -= len(found[0])
        self._pend[1] -= len(found[1])
        self._reclaim()
        return total

    def is_pending(self, seq, stream):
        return seq >= self._low[stream] and not _in(self._ranges[stream], seq)

    def _iter(self, s, after, every=False):
        # Each segment is read into the journal's one buffer and its records
        # copied out (small objects, no 4 KB buffer per walk); whether a record
        # is still pending is asked again as it is handed out.
        sno = -1
        while True:
            i = -1
            for j in range(self._n):
                if self._sno[j] > sno and (self._flag[j] & _F_ALARM) == s:
                    i = j
                    break
            if i < 0:
                return
            sno = self._sno[i]
            if not self._cnt[i] or self._last[i] <= after or (self._last[i] < self._low[s] and not every):
                continue
            buf = self._buf
            n = self._read(i, buf)
            ctx = None
            got = []
            for pos, seq, prio, ln in segment.frames(buf, n, context=True):
                if seq < 0:
                    ctx = None  # the damage may have been a context frame: unknown, never wrong
                elif prio == segment.CONTEXT:
                    ctx = bytes(buf[pos + 6:pos + 6 + ln])
                elif seq > after and (every or self.is_pending(seq, s)):
                    got.append((seq, prio, buf[pos + 6:pos + 6 + ln], ctx))
            for r in got:
                if every or self.is_pending(r[0], s):
                    yield r

    def pending(self, stream=None, after=-1):
        """Yield (seq, prio, data, context) for every undelivered durable record
        with seq above `after`, in seq order: one stream (ROUTINE, ALARM) or
        both merged. context is the blob set by context() that was in force
        when the record was appended (its epoch header), or None if there was
        none or damage hides it (contexts() lists them all). Records appended
        during the walk may show up in the next one."""
        return self._merged(stream, after, False)

    def records(self, stream=None, after=-1):
        """Like pending(), but every intact record still on flash, delivered or not."""
        return self._merged(stream, after, True)

    def _merged(self, stream, after, every):
        if stream is not None:
            yield from self._iter(stream, after, every)
            return
        a = self._iter(ALARM, after, every)
        r = self._iter(ROUTINE, after, every)
        x = next(a, None)
        y = next(r, None)
        while x is not None or y is not None:
            if y is None or (x is not None and x[0] < y[0]):
                yield x
                x = next(a, None)
            else:
                yield y
                y = next(r, None)

    def contexts(self):
        """Every context blob still on flash (consecutive repeats once): where
        the uplink finds an epoch header for a record that came with None."""
        last = None
        sno = -1
        while True:
            i = 0
            while i < self._n and self._sno[i] <= sno:
                i += 1
            if i == self._n:
                return
            sno = self._sno[i]
            buf = self._buf
            n = self._read(i, buf)
            got = []
            for pos, seq, prio, ln in segment.frames(buf, n, context=True):
                if seq >= 0 and prio == segment.CONTEXT:
                    c = bytes(buf[pos + 6:pos + 6 + ln])
                    if c != last:
                        last = c
                        got.append(c)
            for c in got:
                yield c

    def alarms(self, after=-1):
        """Undelivered alarm records, oldest first (the uplink sends these first)."""
        return self._iter(ALARM, after)

    # ------------------------------------------------------------ the rest

    @property
    def next_seq(self):
        return self._next

    def count(self, stream=None):
        """Undelivered durable records (in one stream, or both)."""
        return self._pend[0] + self._pend[1] if stream is None else self._pend[stream]

    def fill_pct(self):
        """Per cent of the capacity that undelivered records take: the bytes of every segment
        still holding one (delivered records share their segments until those go whole).
        hub/store.py's FillWatch reports it crossing 70 % (and back under 60 %)."""
        used = 0
        for i in range(self._n):
            if not self._done(i):
                used += self._used[i]
        return used * 100 // (self._max * self._seg)

    def stats(self):
        return {
            "next_seq": self._next, "pending": self._pend[0], "pending_alarms": self._pend[1],
            "segments": self._n, "max_segments": self._max,
            "bytes": sum(self._used[i] for i in range(self._n)),
            "capacity": self._max * self._seg,
            "evicted": self._evicted[0] + self._evicted[1], "evicted_alarms": self._evicted[1],
            "refused": self.refused[0] + self.refused[1], "refused_alarms": self.refused[1],
            "damaged": self.damaged, "damaged_bytes": self.damaged_bytes, "torn": self.torn,
            "bad_headers": self.bad_headers, "unknown_acks": self.unknown_acks,
            "state_fallback": self.state_fallback, "mount_ms": self.mount_ms,
        }

    def close(self):
        self.commit()
        for s in (ROUTINE, ALARM):
            if self._fh[s] is not None:
                self._fh[s].close()
                self._fh[s] = None
