# The record numbers of one device that the hub has accounted for: stored
# in the journal, or known not to exist on the device (a completed RACP
# report from N sent nothing for them). The reconnect backfill asks for
# "every record >= lowest_missing()", so a newer record that arrives
# early (a live notification before the backfill) can never hide older
# ones the hub has not fetched: the set remembers the gap below it.
#
# Compact on purpose, because a board's heap is small: `low` (every number
# below it is accounted for; None until a report from the beginning has
# completed) plus at most MAX_RANGES half-open ranges above it. A gap
# beyond that is given up (the oldest first), and counted in `given_up`,
# never silently.
#
# Record numbers on the air are 16 bits (GLS sequence numbers, CGMS time
# offsets) and wrap; extend() turns one into a number that keeps growing,
# taking the value nearest the highest number known.
#
# The collector keeps two sets per device: one durable (persisted at
# /state/recs-<addr> after the journal commit that holds its records) and
# one of records only staged so far, merged into the first after the
# commit (Store.after_commit). docs/ble.md, "Backfill".

import os

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MAX_RANGES = const(8)
WRAP = const(0x10000)
HALF = const(0x8000)


class RecSet:
    def __init__(self, low=None, ranges=None, epoch=None):
        self.epoch = epoch        # what the numbers count from (a CGM session's start), if they restart
        self.low = low            # lowest number not accounted for; None: unknown (ask for all)
        self.ranges = ranges or []  # flat sorted [lo, hi, lo, hi, ...], half-open, above low, not touching
        self.given_up = 0         # gaps abandoned because more than MAX_RANGES were open
        self._tidy()

    # ------------------------------------------------------------ queries
    def top(self):
        """The highest number accounted for, or None."""
        if self.ranges:
            return self.ranges[-1] - 1
        return None if self.low is None else self.low - 1

    def has(self, n):
        if self.low is not None and n < self.low:
            return True
        r = self.ranges
        for k in range(0, len(r), 2):
            if n < r[k]:
                return False
            if n < r[k + 1]:
                return True
        return False

    def lowest_missing(self):
        """Where the backfill starts ("records >= this"), or None to ask for every record."""
        return self.low

    def gaps(self):
        return len(self.ranges) // 2

    def extend(self, raw, top=None):
        """The growing number for a 16-bit record number: the one nearest top (default: our top)."""
        if top is None:
            top = self.top()
        if top is None:
            return raw
        return top + ((raw - top + HALF) & (WRAP - 1)) - HALF

    # ------------------------------------------------------------ changes
    def add(self, n):
        self.settle(n, n + 1)

    def settle(self, lo, hi):
        """Account for [lo, hi); lo None: everything below hi."""
        if lo is None:
            if self.low is None or hi > self.low:
                self.low = hi
            self._tidy()
            return
        if hi <= lo or (self.low is not None and hi <= self.low):
            return
        r = self.ranges
        k = 0
        while k < len(r) and r[k + 1] < lo:
            k += 2
        # r[k:] ends at or after lo: merge every range that touches [lo, hi)
        j = k
        while j < len(r) and r[j] <= hi:
            lo = min(lo, r[j])
            hi = max(hi, r[j + 1])
            j += 2
        r[k:j] = [lo, hi]
        self._tidy()

    def merge(self, other):
        """Take everything other accounts for (other is not changed)."""
        if other.low is not None:
            self.settle(None, other.low)
        r = other.ranges
        for k in range(0, len(r), 2):
            self.settle(r[k], r[k + 1])
        self.given_up += other.given_up

    def clear(self):
        self.low = None
        self.ranges = []
        self.given_up = 0

    def _tidy(self):
        r = self.ranges
        if self.low is not None:
            while r and r[0] <= self.low:
                if r[1] > self.low:
                    self.low = r[1]
                del r[0:2]
        while len(r) > 2 * MAX_RANGES:
            # give up the oldest gap: everything below the first range's end counts as done
            self.low = r[1]
            del r[0:2]
            self.given_up += 1

    # ------------------------------------------------------------ persistence
    def encode(self):
        parts = ["R1", "-" if self.low is None else str(self.low), str(self.given_up),
                 "-" if self.epoch is None else str(self.epoch)]
        parts.extend(str(x) for x in self.ranges)
        return " ".join(parts)

    @staticmethod
    def decode(text):
        """A RecSet from encode()'s text; ValueError for anything else."""
        p = text.split()
        if len(p) < 4 or p[0] != "R1" or len(p) % 2:
            raise ValueError("not a record set: %r" % text[:40])
        low = None if p[1] == "-" else int(p[1])
        ranges = [int(x) for x in p[4:]]
        for k in range(1, len(ranges)):
            if ranges[k] <= ranges[k - 1]:
                raise ValueError("record set ranges out of order")
        s = RecSet(low, ranges, None if p[3] == "-" else int(p[3]))
        s.given_up = int(p[2])
        return s


def path(addr, folder="/state"):
    return folder + "/recs-" + "".join("%02x" % b for b in addr)


def load(addr, folder="/state"):
    """The durable set of a device. A hub that kept only the highest record number
    (/state/rec-<addr>, before record sets) starts from it. A missing file: empty;
    an unreadable one: empty too (the backfill then asks for every record)."""
    try:
        with open(path(addr, folder)) as f:
            return RecSet.decode(f.read())
    except (OSError, ValueError):
        pass
    try:
        with open(folder + "/rec-" + "".join("%02x" % b for b in addr)) as f:
            return RecSet(int(f.read()) + 1)
    except (OSError, ValueError):
        return RecSet()


def save(s, addr, folder="/state"):
    """Write atomically (temporary file, rename): a power cut leaves the old set or the new."""
    try:
        os.mkdir(folder)
    except OSError:
        pass
    p = path(addr, folder)
    with open(p + ".tmp", "w") as f:
        f.write(s.encode())
    os.rename(p + ".tmp", p)
