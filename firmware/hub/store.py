# Readings into the journal, sealed. A profile decoder's partial reading
# gets the hub-side fields (seq, device, boot/ms, UTC) and is sealed with
# the sequence number the journal gives it, so the seal's nonce and the
# reading's seq are the same number; nothing plaintext reaches flash.
#
# The Store owns commit timing (one place: run() is the commit task, which
# app.main starts; put() commits an alarm or an indicated reading before it
# returns; flush() commits now, for the collector when a device's RACP report
# has ended; after_commit hooks learn what became durable). Nothing else
# calls Journal.commit.
# Readings are staged and committed in groups: one littlefs commit per
# record writes 25 bytes per record byte, a 30-minute group under 2
# (docs/journal.md). How long a reading may wait depends on whether
# anything else still has it:
#   alarms            commit at once;
#   indicated         put(now=True) commits before returning: the device
#                     was told (the stack confirmed the indication) and
#                     has deleted it, so the hub's copy is the only one;
#   device-backed     readings the device keeps and the hub can fetch again
#                     through RACP (glucose meters, CGMs): up to BACKED_MS,
#                     because the hub remembers a record number only after
#                     its commit (after_commit), so a power cut just means
#                     fetching again;
#   everything else   live values only the hub has: within LIVE_MS.
#
# A reading the journal refuses for lack of room (JournalRefused: nothing left
# to evict, or the flash refused the write) never raises to its producer:
# put() returns None instead of a seq, the refusal is counted (here and in
# the journal's stats, which reports it in a telemetry record once one fits),
# and the reading is held in RAM (HOLD of them; an alarm pushes out the
# oldest routine one) and staged again, oldest first, alarms first, at the
# next put() or the commit task's next look. A device-backed reading is not
# held: its record number is not remembered, so RACP fetches it again.
# The commit task also watches the journal's fill: one hub telemetry
# reading (MDC_HUB_JOURNAL_FILL) when undelivered records pass FILL_WARN_PCT
# of its capacity, one more when they fall back under FILL_CLEAR_PCT.

from hub import reading
from hub.journal import JournalRefused
from hub.reading import PRIO_ALARM, PRIO_ROUTINE

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

LIVE_MS = const(2000)
BACKED_MS = const(30 * 60 * 1000)
CHECK_MS = const(500)  # how often run() looks whether a group is due
HOLD = const(8)        # readings the journal refused, kept in RAM until it takes them

# Hub telemetry (the private partition 1024; the other codes are in hub/collect.py,
# clock.py, bearers/manager.py, ota.py and hubcfg.py): the journal's undelivered records
# passed FILL_WARN_PCT of its capacity (val: the per cent, at or above it), or fell back
# under FILL_CLEAR_PCT (val: the per cent, below it). The receiver's alert engine raises
# and clears its "journal-filling" alert by it (samband/receiver/alerts_causes.py).
MDC_HUB_JOURNAL_FILL = 1024 << 16 | 80
FILL_WARN_PCT = 70
FILL_CLEAR_PCT = 60


class Store:
    def __init__(self, journal, sealer, port, boot):
        self.journal = journal
        self.sealer = sealer
        self.port = port
        self.boot = boot
        self.staged = 0
        self.stored = 0
        self.rejected = 0  # partial readings that failed validation (a decoder bug), counted
        self.commits = 0
        self.on_alarm = None  # called after an alarm is durable (the uplink sends it at once)
        self.after_commit = []  # called (no arguments) after every commit: what was staged is durable now
        self._live_since = None    # ticks of the oldest staged reading only the hub has
        self._backed_since = None  # ticks of the oldest staged device-backed reading
        self.refused = 0  # readings the journal did not take at once (held, or left to RACP)
        self.lost = 0     # held readings given up: the hold was full (counted, never silent)
        self.held = []    # [reading, prio] the journal refused, staged again when it has room
        self.telemetry = None  # telemetry(mdc, val, unit): the hub's own readings (fill warning)
        self.filling = False   # the fill warning was sent and not yet taken back

    def put(self, partial, dev, prio=PRIO_ROUTINE, backed=False, now=False):
        """Stage one reading; returns its seq. Durable after the next commit (before
        returning for an alarm, or with now=True: nobody else keeps it, e.g. an indicated
        measurement the device deleted once confirmed). backed: the device keeps it and
        can send it again. None if the journal refused it for lack of room (never an
        exception): counted, and held to be staged again, unless backed (see the top)."""
        mono = [self.boot, self.port.ticks_ms() & 0x3FFFFFFF]
        hts = self.port.utc_ms()
        try:
            r = reading.complete(partial, 0, dev, mono, hts)
            if prio != PRIO_ROUTINE:
                r[reading.PRIO] = prio  # the receiver sees the priority in the reading itself
        except ValueError:
            self.rejected += 1
            raise
        if self.held:
            self.retry()
        # behind what is held already (in order), except an alarm, which goes first
        seq = None if self.held and prio != PRIO_ALARM else self._stage(r, prio)
        if seq is None:
            self.refused += 1
            if not backed:
                self._hold(r, prio)
            return None
        if prio == PRIO_ALARM:
            self.commit()
            if self.on_alarm is not None:
                self.on_alarm()
        elif now:
            self.commit()
        elif backed:
            if self._backed_since is None:
                self._backed_since = mono[1]
        elif self._live_since is None:
            self._live_since = mono[1]
        return seq

    def _stage(self, r, prio, again=False):
        # The seq, or None if the journal refused it (counted there, once a reading).
        sealer = self.sealer

        def make(seq):
            r[reading.SEQ] = seq
            return sealer.seal(seq, reading.encode(r))

        try:
            seq = self.journal.stage(make, prio, again=again)
        except JournalRefused:
            return None
        self.staged += 1
        return seq

    def _hold(self, r, prio):
        if len(self.held) >= HOLD:
            k = 0
            while k < len(self.held) and self.held[k][1] == PRIO_ALARM:
                k += 1
            self.lost += 1
            if k == len(self.held) and prio != PRIO_ALARM:
                return  # every one held is an alarm: this routine reading is the one given up
            del self.held[k if k < len(self.held) else 0]
        self.held.append([r, prio])

    def retry(self):
        """Stage the held readings again, alarms first, each in the order it came; they are
        committed at once (they waited already, and nobody else keeps them). Returns how
        many are still held."""
        n = 0
        while self.held:
            k = 0
            while k < len(self.held) and self.held[k][1] != PRIO_ALARM:
                k += 1
            if k == len(self.held):
                k = 0
            if self._stage(self.held[k][0], self.held[k][1], True) is None:
                break
            del self.held[k]
            n += 1
        if n:
            self.commit()
            if self.on_alarm is not None:
                self.on_alarm()
        return len(self.held)

    def due(self):
        """Whether the staged readings should be committed now (see the top of this file)."""
        now = self.port.ticks_ms() & 0x3FFFFFFF
        if self._live_since is not None and (now - self._live_since) & 0x3FFFFFFF >= LIVE_MS:
            return True
        return self._backed_since is not None and (now - self._backed_since) & 0x3FFFFFFF >= BACKED_MS

    def commit(self):
        """Make every staged reading durable (one journal sync), then tell after_commit."""
        try:
            self.journal.commit()
        except JournalRefused:
            # the flash refused the flush: what was staged is counted as refused by the
            # journal; nothing is remembered as durable (RACP fetches backed records again)
            self.staged = 0
            self._live_since = self._backed_since = None
            return
        self.commits += 1
        self.stored += self.staged
        self.staged = 0
        self._live_since = self._backed_since = None
        for fn in self.after_commit:
            fn()

    def flush(self):
        """Commit now what is staged; after_commit hears of it even when nothing was (record
        numbers a device said it does not have become durable too)."""
        if self.staged:
            self.commit()
        else:
            for fn in self.after_commit:
                fn()

    async def run(self):
        """The commit task: commits a group once it is due (see the top of this file)."""
        import asyncio
        while True:
            await asyncio.sleep(CHECK_MS / 1000)
            if self.held:
                self.retry()
            if self.staged and self.due():
                self.commit()
            self.watch_fill()

    def watch_fill(self):
        """One telemetry reading when the journal's undelivered records pass FILL_WARN_PCT of
        its capacity, one more when they fall back under FILL_CLEAR_PCT (a hub that has been
        offline for long); after a reset, the first look reports a fill above the line again."""
        if self.telemetry is None:
            return
        pct = self.journal.fill_pct()
        if pct >= FILL_WARN_PCT if not self.filling else pct < FILL_CLEAR_PCT:
            self.filling = not self.filling
            self.telemetry(MDC_HUB_JOURNAL_FILL, pct, "%")
