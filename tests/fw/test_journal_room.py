# The journal's flash is its own (hub/journal.py spare_bytes/may_take, hub/ota.py):
# an update pauses rather than write what the journal needs to reach its
# capacity, and goes on once there is room; a journal that has no room
# refuses a record as a counted JournalRefused (an alarm first evicts the
# routine stream's newest segment), the Store holds what was refused and
# stages it again, never raising to its producer; the fill warning at 70 %
# and its all-clear under 60 % (hub/store.py). Both runtimes: the flash is a
# folder whose free blocks are worked out from what it holds (Flash below);
# on the unix port test_littlefs_keeps_the_journals_room runs the update and
# the journal on littlefs itself (a RAM block device).

import os

from fwtest import IS_MPY, rmtree, scratch
from hub import cbor, ota
from hub.journal import Journal, JournalRefused
from hub.reading import CTX, MDC, PRIO_ALARM, PRIO_ROUTINE, PRIO_TELEMETRY, VAL
from hub.segment import ALARM
from hub.store import FILL_CLEAR_PCT, FILL_WARN_PCT, HOLD, MDC_HUB_JOURNAL_FILL, Store
from journal_util import append
from ota_util import chunk as _chunk
from ota_util import install_old
from ota_util import offer as _offer
from ota_util import read as _read

MPY_HEAP = "1m"  # the littlefs run keeps its 320 KB flash image in the heap
BS = 4096
CS = 256
_ZERO = bytes(BS)
# The littlefs run's flash image, made while the heap is fresh: made in that test, after the
# file's other tests, 320 KB in one piece was not always there (CI: MemoryError at 512k)
_LFS_IMAGE = bytearray(80 * BS) if IS_MPY else None


def _blocks(path):
    # blocks a folder takes as littlefs would count them: each file its whole blocks,
    # each folder a metadata pair
    n = 0
    for name in os.listdir(path):
        p = path + "/" + name
        st = os.stat(p)
        if st[0] & 0x4000:
            n += 2 + _blocks(p)
        else:
            n += (st[6] + BS - 1) // BS
    return n


class Flash(Journal):
    """A journal on a folder standing in for a flash of `blocks` blocks, shared with the
    update's files under base/fw: statvfs worked out from what the folder holds."""

    def __init__(self, base, blocks, **kw):
        self.base = base
        self.blocks = blocks
        super().__init__(root=base + "/journal", segment_size=BS, **kw)

    def _fs(self):
        return BS, self.blocks - _blocks(self.base)


def _fill(base, blocks):
    """A file taking `blocks` blocks of the flash (another tenant: a tree, logs)."""
    with open(base + "/filler", "wb") as f:
        for _ in range(blocks):
            f.write(_ZERO)


def _unfill(base):
    os.remove(base + "/filler")


def _fw(base):
    fw = base + "/fw"
    os.mkdir(fw)
    return install_old(fw)


def _diff(a, b):
    return (a - b) & 0x3FFFFFFF


def _fill_journal(j):
    """Routine records until the journal holds as many segments as its capacity allows;
    returns how many (each one must be kept: nothing evicted, nothing refused)."""
    n = 0
    while j.stats()["segments"] < j.stats()["max_segments"]:
        j.stage(bytes(100 + n % 50))
        n += 1
        if n % 8 == 0:
            j.commit()
    j.commit()
    return n


def _update_waits_for_room(j, base, fw, spare_left):
    """The whole update on a flash with little spare: paused while fetching, the journal
    filled to its capacity meanwhile, then (room freed) fetched, paused in the apply,
    and applied. Shared by the folder and the littlefs runs."""
    tel = []
    o = ota.Ota("vhub", "1.0.0", _read("release/release.pub"), {"window": 2},
                lambda mdc, val: tel.append((mdc, val)), fw=fw, room=j.may_take)
    assert o.start() == "none"
    _fill(base, j.spare_bytes() // BS - spare_left)
    parts = _offer(o)
    assert o.state == "fetch"
    for i, p in enumerate(parts):
        _chunk(o, i, p)
    room = ota.REFUSALS.index("room")
    assert 0 < o.stage.count < len(parts), (o.stage.count, len(parts))
    assert o.refused == "room" and o.status()["r"] == "room" and o.state == "fetch"
    assert o.counters["no_room"] == len(parts) - o.stage.count
    assert tel == [(ota.MDC_HUB_OTA_OFFER, o.offered_version()), (ota.MDC_HUB_OTA_REFUSED, room)]
    assert o.wants(0, _diff)  # the status goes once, to say it is paused...
    assert not o.wants(0, _diff) and "w" not in o.status(True)  # ...and asks for nothing
    assert j.spare_bytes() >= 0

    seen = [j.spare_bytes() // BS, j._fs()]  # spare blocks and statvfs at each step, for the messages
    kept = _fill_journal(j)
    seen += [j.spare_bytes() // BS, j._fs()]
    st = j.stats()
    assert st["evicted"] == 0 and st["refused"] == 0 and j.count() == kept + 1, st

    _unfill(base)  # another tenant's file went: the update goes on
    assert o.wants(0, _diff) and o.refused is None
    for _ in range(len(parts)):
        for i in o.status(True).get("w", []):
            _chunk(o, i, parts[i])
        o.asked = {}
        o.wants(0, _diff)
    assert o.state == "apply" and o.stage.count == len(parts)
    assert tel[-1][0] == ota.MDC_HUB_OTA_FETCHED

    seen += [j.spare_bytes() // BS, j._fs()]
    _fill(base, j.spare_bytes() // BS - 3)  # too little for the tree
    seen += [j.spare_bytes() // BS, j._fs()]
    assert o.due(0, 0) and not o.run_apply(), seen
    assert o.refused == "room" and o.state == "apply" and ota.read_pointer(fw) == "a"
    assert "b" not in os.listdir(fw)  # the half-filled slot went at once
    assert tel[-1] == (ota.MDC_HUB_OTA_REFUSED, room) and not o.due(0, 0)
    assert j.spare_bytes() >= 0
    _unfill(base)
    seen += [j.spare_bytes() // BS, j._fs(), o._apply_need]
    assert o.due(0, 0) and o.run_apply() and o.state == "reboot", seen
    assert ota.read_pointer(fw) == "b?a" and o.refused is None and j.spare_bytes() >= 0, seen
    st = j.stats()
    assert st["evicted"] == 0 and st["refused"] == 0 and j.count() == kept + 1
    j.close()


def test_update_pauses_for_the_journals_room():
    base = scratch("room")
    try:
        j = Flash(base, 80, capacity=24 * BS)
        append(j, b"first")  # the journal's state files exist from its first record on
        _update_waits_for_room(j, base, _fw(base), 8)  # the offer and one chunk, not two
    finally:
        rmtree(base)


def test_littlefs_keeps_the_journals_room():
    if not IS_MPY:
        return  # littlefs (vfs.VfsLfs2) is the unix port's; the folder run above covers CPython
    import vfs
    from logbd import LogBD
    mnt = "/lfsroom"
    bd = LogBD(_LFS_IMAGE, bs=BS)  # mkfs erases what it uses
    vfs.VfsLfs2.mkfs(bd)
    vfs.mount(vfs.VfsLfs2(bd), mnt)
    try:
        j = Journal(mnt + "/journal", capacity=16 * BS, segment_size=BS)
        append(j, b"first")
        _update_waits_for_room(j, mnt, _fw(mnt), 11)  # a new folder takes 4 blocks here, a big file 1 more
    finally:
        vfs.umount(mnt)


def _reports(j):
    out = []
    for _seq, prio, data, _ctx in j.records():
        if prio == PRIO_TELEMETRY:
            out.append(cbor.loads(bytes(data))[CTX])
    return out


def _short(blocks=40):
    """A journal whose flash another file has all but taken: its routine segment is open,
    and no new segment can be opened (five blocks free: the slack it keeps)."""
    base = scratch("short")
    j = Flash(base, blocks, capacity=32 * BS)
    j.ack(append(j, b"first"))  # both copies of the state file are on flash from now on
    _fill(base, j._fs()[1] - 5)
    return base, j


def test_refused_routine_counted_and_an_alarm_evicts_routine():
    base, j = _short()
    try:
        n = 0
        e = None
        while e is None:
            try:
                j.stage(bytes(200))
                n += 1
            except JournalRefused as x:
                e = x
        assert e.reason == "full"
        st = j.stats()
        assert st["refused"] == 1 and st["refused_alarms"] == 0 and st["evicted"] == 0
        assert j.count() == n  # the segment was closed (and flushed) before the refusal
        # an alarm is never refused while routine records hold flash: the routine
        # stream's newest segment goes, counted as evicted
        a = j.stage(b"alarm", PRIO_ALARM)
        j.commit()
        st = j.stats()
        assert st["evicted"] == n and st["refused"] == 1 and j.count(ALARM) == 1
        assert [r[0] for r in j.alarms()] == [a]
        _unfill(base)
        append(j, b"after")  # room again: the reports go with the next record
        got = _reports(j)
        assert {"refused": 1, "alarms": 0, "total": 1} in got, got
        assert [g for g in got if "evicted" in g][0]["evicted"] == n
        j.close()
    finally:
        rmtree(base)


class _Sealer:
    def seal(self, seq, plaintext):
        return bytes(plaintext)


class _Port:
    def __init__(self):
        self.t = 0

    def ticks_ms(self):
        self.t += 1
        return self.t

    def utc_ms(self):
        return None


def _partial(v):
    return {MDC: 160212, VAL: v}  # any small reading


def test_store_holds_what_the_journal_refused_and_stages_it_later():
    base, j = _short()
    try:
        s = Store(j, _Sealer(), _Port(), 1)
        alarms = []
        s.on_alarm = lambda: alarms.append(1)
        seqs = []
        while not seqs or seqs[-1] is not None:
            seqs.append(s.put(_partial(len(seqs)), bytes(7)))  # never raises
        assert s.refused == 1 and len(s.held) == 1 and s.lost == 0
        assert s.put(_partial(99), bytes(7), now=True) is None  # behind the held one, in order
        assert s.put(_partial(98), bytes(7), backed=True) is None  # the device keeps it: not held
        assert len(s.held) == 2 and s.refused == 3 and j.stats()["refused"] == 1
        a = s.put(_partial(500), bytes(7), PRIO_ALARM)  # an alarm goes ahead, evicting routine
        assert a is not None and alarms == [1] and j.count(1) == 1
        _unfill(base)
        assert s.retry() == 0 and s.held == [] and s.lost == 0
        vals = [cbor.loads(bytes(r[2]))[VAL] for r in j.pending() if r[1] == PRIO_ROUTINE]
        assert vals[-2:] == [len(seqs) - 1, 99], vals  # the held readings, in the order they came
        j.close()
    finally:
        rmtree(base)


class _Refusing:
    def stage(self, make, prio, again=False):
        raise JournalRefused("full", "journal full")


def test_store_hold_gives_up_routine_before_alarms():
    s = Store(_Refusing(), _Sealer(), _Port(), 1)
    for v in range(HOLD + 2):
        assert s.put(_partial(v), bytes(7)) is None
    assert len(s.held) == HOLD and s.lost == 2 and s.held[0][0][VAL] == 2
    assert s.put(_partial(7), bytes(7), PRIO_ALARM) is None
    assert s.lost == 3 and s.held[-1][1] == PRIO_ALARM and s.held[0][0][VAL] == 3
    for v in range(HOLD):
        s.put(_partial(v), bytes(7), PRIO_ALARM)
    assert [h[1] for h in s.held] == [PRIO_ALARM] * HOLD
    assert s.put(_partial(1), bytes(7)) is None and [h[1] for h in s.held] == [PRIO_ALARM] * HOLD


def test_fill_warning_once_above_and_once_back_under():
    root = scratch("fill")
    try:
        j = Journal(root, capacity=10 * BS, segment_size=BS)
        tel = []
        s = Store(j, _Sealer(), _Port(), 1)
        s.telemetry = lambda mdc, val, unit=None: tel.append((mdc, val, unit))
        s.watch_fill()
        assert tel == []
        while j.fill_pct() < FILL_WARN_PCT:
            for _ in range(10):
                s.put(_partial(1), bytes(7))
            s.commit()
            s.watch_fill()
            assert tel == [] or j.fill_pct() >= FILL_WARN_PCT
        assert len(tel) == 1 and tel[0][0] == MDC_HUB_JOURNAL_FILL and tel[0][1] >= FILL_WARN_PCT
        assert tel[0][2] == "%"
        for _ in range(3):
            s.put(_partial(1), bytes(7))
        s.commit()
        s.watch_fill()
        assert len(tel) == 1  # once while above
        todo = [r[0] for r in j.pending()]
        while j.fill_pct() >= FILL_CLEAR_PCT:
            j.ack(todo[:20])
            del todo[:20]
            s.watch_fill()
            assert len(tel) == 1 or j.fill_pct() < FILL_CLEAR_PCT
        assert len(tel) == 2 and tel[1][1] < FILL_CLEAR_PCT
        s.watch_fill()
        assert len(tel) == 2
        j.close()
    finally:
        rmtree(root)
