# Readings into the journal, sealed. A profile decoder's partial reading
# gets the hub-side fields (seq, device, boot/ms, UTC) and is sealed with
# the sequence number the journal gives it, so the seal's nonce and the
# reading's seq are the same number; nothing plaintext reaches flash.
#
# Routine readings are staged and committed in groups (commit_every_ms):
# one flash commit per notification would cost 25x write amplification on
# littlefs (docs/journal.md). Alarms commit at once. Whoever must know a
# reading is durable (RACP bookkeeping) waits for commit().

from hub import reading
from hub.reading import PRIO_ALARM, PRIO_ROUTINE


class Store:
    def __init__(self, journal, sealer, port, boot):
        self.journal = journal
        self.sealer = sealer
        self.port = port
        self.boot = boot
        self.staged = 0
        self.stored = 0
        self.rejected = 0  # partial readings that failed validation (a decoder bug), counted
        self._after_commit = []

    def put(self, partial, dev, prio=PRIO_ROUTINE):
        """Stage one reading; returns its seq. Durable after the next commit()."""
        mono = [self.boot, self.port.ticks_ms() & 0x3FFFFFFF]
        hts = self.port.utc_ms()
        try:
            r = reading.complete(partial, 0, dev, mono, hts)
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
        return seq

    def after_commit(self, fn):
        """Run fn() once everything staged so far is durable (e.g. remember a record number)."""
        self._after_commit.append(fn)

    def commit(self):
        self.journal.commit()
        self.stored += self.staged
        self.staged = 0
        fns, self._after_commit = self._after_commit, []
        for fn in fns:
            fn()
