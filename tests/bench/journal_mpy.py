# Journal benchmarks on the MicroPython unix port (run by bench_journal.py):
#   micropython journal_mpy.py speed DIR      appends/s and ack cost on a folder (the virtual hub's flash)
#   micropython journal_mpy.py lfsspeed       the same on littlefs over a RAM block device
#   micropython journal_mpy.py wa PROG        write amplification and erases on littlefs (RAM block device)
#   micropython journal_mpy.py fit PROG       seven days of CGM + BP + HR summaries in 512 KB of littlefs
#   micropython journal_mpy.py heap           heap held by the module and by an open journal
#   micropython journal_mpy.py loop DIR       append/ack loop (bench_journal.py bisects its heap)
# Prints figures as "name: value unit".
#
# Record sizes are those of sealed readings: hub.reading's encoding of a
# CGM reading, a blood pressure and a heart-rate summary, plus the
# sealer's 20 bytes (hub.seal.RECORD_OVERHEAD); every segment also holds
# the epoch header (62 bytes) as its context.

import gc
import os
import sys
import time

import vfs
from fwtest import live, rmtree
from journal_util import append, append_many

# hub.journal is imported by main() after the "heap" figures are taken
Journal = R = None
PRIO_ROUTINE = 0

SEAL_OVERHEAD = 20  # hub.seal.RECORD_OVERHEAD (not imported: it pulls in the crypto)
EPOCH_HEADER = b"\x11" * 62  # hub.seal.EPOCH_BYTES
BS = 4096
DEV = b"\x00\x11\x22\x33\x44\x55\x66"


def figure(name, value, unit=""):
    if isinstance(value, float):
        value = "%.4g" % value
    print(("%s: %s %s" % (name, value, unit)).rstrip())


def sizes():
    """Sealed sizes of the workload's readings, as hub.reading encodes them: cgm, bp, hr (a
    one-minute summary) and the spot checks spo2, pulse rate (the oximeter sends both), temperature
    and weight."""
    mono = [12, 123456789]
    hts = 1764400000123
    dts = 1764400000
    spot = {"ctx": {"mod": 150588}}  # plx.py: MDC_MODALITY_SPOT
    made = [
        R.make(seq=123456, dev=DEV, mdc=160184, val=104, mono=mono, unit="mg/dL", dts=dts, rec=4242, hts=hts),
        R.make(seq=123456, dev=DEV, mdc=150020, val=[120, 80, 93], comp=[150021, 150022, 150023],
               mono=mono, unit="mm[Hg]", dts=dts, hts=hts),
        R.make(seq=123456, dev=DEV, mdc=147842, val=[72, 60, 95], comp=[147842, 147842, 147842],
               mono=mono, unit="/min", hts=hts),
        R.make(seq=123456, dev=DEV, mdc=150456, val=97, mono=mono, unit="%", dts=dts, hts=hts, **spot),
        R.make(seq=123456, dev=DEV, mdc=149530, val=68, mono=mono, unit="/min", dts=dts, hts=hts, **spot),
        R.make(seq=123456, dev=DEV, mdc=150364, val=368, exp=-1, mono=mono, unit="Cel", dts=dts, hts=hts),
        R.make(seq=123456, dev=DEV, mdc=188736, val=72400, exp=-3, mono=mono, unit="kg", dts=dts, hts=hts),
    ]
    return [len(R.encode(r)) + SEAL_OVERHEAD for r in made]


def hr_run_size():
    """Sealed size of the hub's heart-rate record (hub.summary): 15 per-minute summaries in one reading."""
    from hub.summary import HeartRateSummary
    s = HeartRateSummary()
    t = 0
    for minute in range(15):
        for sec in range(60):
            s.add(60 + (minute * 7 + sec) % 45, t, 1764400000 + t // 1000)
            t += 1000
    r = s.flush()
    r = R.complete(r, 123456, DEV, [12, 123456789], 1764400000123)
    return len(R.encode(r)) + SEAL_OVERHEAD


def week(hr_every=1, hr=None, days=7):
    """The seven-day workload minute by minute: yields (minute, [record sizes]): a CGM reading every
    5 minutes, blood pressure at 8:00, 14:00 and 20:00, SpO2 with pulse rate and a temperature at
    8:00, 14:00 and 20:00 (spot checks), the weight at 7:00, heart rate as summaries.
    hr_every: minutes between heart-rate records (1: one summary a minute; 15: the hub's runs)."""
    cgm, bp, hr1, spo2, pr, temp, weight = sizes()
    hr = hr or hr1
    for m in range(days * 24 * 60):
        out = [hr] if m % hr_every == 0 else []
        if m % 5 == 0:
            out.append(cgm)
        of_day = m % (24 * 60)
        if of_day in (8 * 60, 14 * 60, 20 * 60):
            out += [bp, spo2, pr, temp]
        if of_day == 7 * 60:
            out.append(weight)
        yield m, out


class RamBD:
    """littlefs RAM block device counting bytes programmed and blocks erased."""

    def __init__(self, blocks, bs=BS):
        self.bs = bs
        self.n = blocks
        self.img = bytearray(b"\xff" * (blocks * bs))
        self.prog = 0
        self.erases = 0

    def readblocks(self, b, buf, off=0):
        a = b * self.bs + off
        buf[:] = memoryview(self.img)[a:a + len(buf)]

    def writeblocks(self, b, buf, off=None):
        if off is None:
            off = 0
            self.erases += 1
        a = b * self.bs + off
        self.img[a:a + len(buf)] = buf
        self.prog += len(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        if op == 6:
            self.erases += 1
        return 0


def lfs(blocks, prog):
    bd = RamBD(blocks)
    vfs.VfsLfs2.mkfs(bd, progsize=prog)
    vfs.mount(vfs.VfsLfs2(bd, progsize=prog), "/lfs")
    return bd


def unmount():
    vfs.umount("/lfs")


def record(size):
    return bytes(size)  # ciphertext stand-in: only the length matters here


def wa_case(prog, window, acks, minutes=24 * 60, burst=0):
    """One day of the workload on littlefs. window: minutes between group commits
    (0: every record commits on its own). acks: the receiver acks what was sent
    every 5 minutes. burst: instead, RACP backfills of this many records, one commit each."""
    bd = lfs(128, prog)
    j = Journal("/lfs/journal", capacity=120 * BS, segment_size=BS)
    j.context(EPOCH_HEADER)
    p0, e0 = bd.prog, bd.erases
    payload = 0
    n = 0
    if burst:
        cgm = sizes()[0]
        while n < 1700:
            append_many(j, [record(cgm)] * burst)
            n += burst
            payload += cgm * burst
    else:
        for m, recs in week():
            if m >= minutes:
                break
            for size in recs:
                if window:
                    j.stage(record(size), PRIO_ROUTINE)
                else:
                    append(j, record(size), PRIO_ROUTINE)
                payload += size
                n += 1
            if window and (m + 1) % window == 0:
                j.commit()
            if acks and m % 5 == 4:
                j.ack([q for q, p, d, c in j.pending()])
        j.commit()
    wa = (bd.prog - p0) / payload
    erases = (bd.erases - e0) * 1000 / n
    st = j.stats()
    j.close()
    unmount()
    return wa, erases, n, st


def cmd_wa(prog):
    tag = "littlefs prog %d" % prog
    for window, label in ((0, "one commit per record"), (1, "group commit 1 min"), (5, "group commit 5 min"),
                          (15, "group commit 15 min"), (30, "group commit 30 min"), (60, "group commit 60 min")):
        wa, er, n, st = wa_case(prog, window, False)
        figure("%s, %s: write amplification" % (tag, label), wa, "bytes written per record byte")
        figure("%s, %s: erases" % (tag, label), er, "blocks per 1000 records")
    wa, er, n, st = wa_case(prog, 0, True)
    figure("%s, one commit per record, acked every 5 min: write amplification" % tag, wa,
           "bytes written per record byte")
    figure("%s, one commit per record, acked every 5 min: erases" % tag, er, "blocks per 1000 records")
    wa, er, n, st = wa_case(prog, 0, False, burst=50)
    figure("%s, RACP backfill (50 records a commit): write amplification" % tag, wa,
           "bytes written per record byte")
    figure("%s, RACP backfill (50 records a commit): erases" % tag, er, "blocks per 1000 records")


def cmd_fit(prog, hr_every=1):
    cgm, bp, hr, spo2, pr, temp, weight = sizes()
    if hr_every == 1:
        figure("sealed record sizes cgm/bp/hr-summary/spo2/pulse/temperature/weight",
               "/".join("%d" % n for n in (cgm, bp, hr, spo2, pr, temp, weight)), "bytes")
        label = "7 days"
        hr_size = hr
    else:
        hr_size = hr_run_size()
        figure("sealed size of the hub's 15-minute heart-rate run (hub.summary)", hr_size, "bytes")
        label = "7 days, heart rate as the hub stores it (15-minute runs)"
    lfs(128, prog)  # 512 KB of flash, all of it littlefs
    # segments may take what littlefs leaves: superblock and directories need a few blocks
    j = Journal("/lfs/journal", capacity=120 * BS, segment_size=BS)
    j.context(EPOCH_HEADER)
    n = payload = 0
    for m, recs in week(hr_every, hr_size):
        for size in recs:
            j.stage(record(size), PRIO_ROUTINE)
            payload += size
            n += 1
        if m % 15 == 14:
            j.commit()
    j.commit()
    st = j.stats()
    fs = os.statvfs("/lfs")
    figure("littlefs 512 KB: blocks holding journal segments / littlefs's own / free",
           "%d/%d/%d" % (st["segments"], fs[2] - fs[3] - st["segments"], fs[3]), "of %d" % fs[2])
    figure("%s (%d records, %d KB of sealed records) in 512 KB: records kept" % (label, n, payload // 1024),
           "%d of %d" % (n - st["evicted"], n))
    figure("%s in 512 KB: evicted (oldest routine first)" % label, st["evicted"], "records")
    if hr_every != 1:
        figure("%s in 512 KB: journal fill (undelivered bytes of its capacity)" % label,
               100 * st["bytes"] / (120 * BS), "%")
        j.close()
        unmount()
        figure("%s: days offline before the first eviction" % label.replace("7 days, ", ""),
               days_before_eviction(prog, hr_size), "days")
        return
    on_flash = st["bytes"] / max(1, st["pending"])
    figure("journal bytes per record on flash (frame, segment header, context)", on_flash, "bytes")
    figure("journal overhead per record", on_flash - payload / n, "bytes")
    figure("7 days would fit in 512 KB with sealed records averaging at most",
           st["segments"] * BS / n - (on_flash - payload / n), "bytes")
    figure("7 days at these sizes need", n * on_flash / 1024, "KB of segments")
    j.close()
    unmount()


def days_before_eviction(prog, hr_size):
    """How long the hub can stay offline on 512 KB before it must evict: the workload run on
    (as the hub stores heart rate) until the journal's first eviction."""
    lfs(128, prog)
    j = Journal("/lfs/journal", capacity=120 * BS, segment_size=BS)
    j.context(EPOCH_HEADER)
    last = 0
    for m, recs in week(15, hr_size, days=60):
        for size in recs:
            j.stage(record(size), PRIO_ROUTINE)
        if m % 15 == 14:
            j.commit()
            if j.stats()["evicted"]:
                break
            last = m + 1
    j.close()
    unmount()
    return last / (24 * 60)


def cmd_speed(root):
    cgm = sizes()[0]
    rec = record(cgm)
    rmtree(root)
    j = Journal(root, capacity=1024 * 1024, segment_size=BS)
    j.context(EPOCH_HEADER)
    n = 1000
    t = time.ticks_us()
    for _ in range(n):
        append(j, rec)
    us = time.ticks_diff(time.ticks_us(), t)
    figure("unix port, folder: appends per second (one fsync each, %d-byte records)" % cgm, n * 1e6 / us, "/s")
    t = time.ticks_us()
    for _ in range(n // 50):
        append_many(j, [rec] * 50)
    us = time.ticks_diff(time.ticks_us(), t)
    figure("unix port, folder: appends per second in batches of 50", n * 1e6 / us, "/s")
    from array import array
    k = 200
    seqs = array("I", bytes(4 * (k + 50 * 16)))  # a list would need 8 KB in one piece
    i = 0
    for q, _p, _d, _c in j.pending():
        seqs[i] = q
        i += 1
        if i == len(seqs):
            break
    t = time.ticks_us()
    for q in seqs[:k]:
        j.ack(q)
    us = time.ticks_diff(time.ticks_us(), t)
    figure("unix port, folder: ack of one record", us / k / 1000, "ms")
    t = time.ticks_us()
    for i in range(k, k + 50 * 16, 16):
        j.ack(seqs[i:i + 16])
    us = time.ticks_diff(time.ticks_us(), t)
    figure("unix port, folder: ack of 16 records", us / 50 / 1000, "ms")
    j.close()
    rmtree(root)


def cmd_lfsspeed():
    # on littlefs over RAM: the journal's and littlefs's CPU cost, no I/O wait
    # (the RAM disk does not fit the hub's heap: run with a bigger one)
    rec = record(sizes()[0])
    n = 1000
    k = 200
    for prog in (32, 256):
        bd = lfs(256, prog)
        j = Journal("/lfs/journal", capacity=240 * BS, segment_size=BS)
        j.context(EPOCH_HEADER)
        t = time.ticks_us()
        for _ in range(n):
            append(j, rec)
        us = time.ticks_diff(time.ticks_us(), t)
        figure("unix port, littlefs prog %d on RAM: appends per second" % prog, n * 1e6 / us, "/s")
        seqs = [q for q, p, d, c in j.pending()]
        p0, e0 = bd.prog, bd.erases
        t = time.ticks_us()
        for q in seqs[:k]:
            j.ack(q)
        us = time.ticks_diff(time.ticks_us(), t)
        figure("unix port, littlefs prog %d on RAM: ack of one record" % prog, us / k / 1000, "ms")
        figure("littlefs prog %d: bytes written per ack" % prog, (bd.prog - p0) / k, "bytes")
        figure("littlefs prog %d: erases per 1000 acks" % prog, (bd.erases - e0) * 1000 / k, "blocks")
        j.close()
        unmount()
        bd = j = None
        gc.collect()


def cmd_heap():
    a = live()
    from hub import cbor, reading  # noqa: F401 - what the hub has loaded anyway
    b = live()
    from hub.journal import Journal
    c = live()
    figure("heap: hub.journal and hub.segment once imported (64-bit unix port)", c - b, "bytes")
    figure("heap: hub.cbor and hub.reading, which it needs", b - a, "bytes")
    root = "/tmp/samband-bench-journal-heap"
    rmtree(root)
    for cap in (64 * 1024, 512 * 1024, 1024 * 1024):
        d = live()
        j = Journal(root, capacity=cap, segment_size=BS)
        gc.collect()
        figure("heap: open journal of %d KB capacity (table, buffer, state)" % (cap // 1024), gc.mem_alloc() - d,
               "bytes")
        j.close()
        del j
    rmtree(root)


def cmd_loop(root):
    # a busy hub: appends, out-of-order acks, segment reclaim; must not run out of heap
    rmtree(root)
    j = Journal(root, capacity=256 * 1024, segment_size=BS)
    j.context(EPOCH_HEADER)
    rec = record(sizes()[0])
    for i in range(3000):
        append(j, rec)
        if i % 10 == 9:
            pend = [q for q, p, d, c in j.pending()]
            j.ack(pend[1::2] + pend[:1])
    j.close()
    rmtree(root)
    print("LOOP OK")


def main():
    global Journal, R
    cmd = sys.argv[1]
    if cmd == "heap":
        cmd_heap()
        return
    from hub import reading as R
    from hub.journal import Journal
    if cmd == "speed":
        cmd_speed(sys.argv[2])
    elif cmd == "lfsspeed":
        cmd_lfsspeed()
    elif cmd == "wa":
        cmd_wa(int(sys.argv[2]))
    elif cmd == "fit":
        cmd_fit(int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    elif cmd == "loop":
        cmd_loop(sys.argv[2])


main()
