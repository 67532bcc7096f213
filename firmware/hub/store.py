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

from hub import reading
from hub.reading import PRIO_ALARM, PRIO_ROUTINE

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

LIVE_MS = const(2000)
BACKED_MS = const(30 * 60 * 1000)
CHECK_MS = const(500)  # how often run() looks whether a group is due


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

    def put(self, partial, dev, prio=PRIO_ROUTINE, backed=False, now=False):
        """Stage one reading; returns its seq. Durable after the next commit (before
        returning for an alarm, or with now=True: nobody else keeps it, e.g. an indicated
        measurement the device deleted once confirmed). backed: the device keeps it and
        can send it again."""
        mono = [self.boot, self.port.ticks_ms() & 0x3FFFFFFF]
        hts = self.port.utc_ms()
        try:
            r = reading.complete(partial, 0, dev, mono, hts)
            if prio != PRIO_ROUTINE:
                r[reading.PRIO] = prio  # the receiver sees the priority in the reading itself
        except ValueError:
            self.rejected += 1
            raise
        sealer = self.sealer

        def make(seq):
            r[reading.SEQ] = seq
            return sealer.seal(seq, reading.encode(r))

        seq = self.journal.stage(make, prio)
        self.staged += 1
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

    def due(self):
        """Whether the staged readings should be committed now (see the top of this file)."""
        now = self.port.ticks_ms() & 0x3FFFFFFF
        if self._live_since is not None and (now - self._live_since) & 0x3FFFFFFF >= LIVE_MS:
            return True
        return self._backed_since is not None and (now - self._backed_since) & 0x3FFFFFFF >= BACKED_MS

    def commit(self):
        """Make every staged reading durable (one journal sync), then tell after_commit."""
        self.journal.commit()
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
            if self.staged and self.due():
                self.commit()
