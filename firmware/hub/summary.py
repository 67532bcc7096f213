# Heart rate arrives once a second; stored one by one it would be 86,400
# records a day. The hub keeps a summary instead: per minute the mean,
# lowest and highest rate, and one reading per SUMMARY_MINUTES minutes
# carrying those minutes as a run (VAL = the means, PERIOD = 60 s, CTX
# "min"/"max" = the extremes). Seven days of it take about 70 KB of flash.
# Clinically abnormal rates are not summarised away: alarms.classify sees
# every beat-rate value, and an alarm reading goes out at once.

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from hub.reading import CTX, DTS, MDC, PERIOD, UNIT, VAL

MDC_ECG_HEART_RATE = const(147842)
MINUTE_MS = const(60000)
SUMMARY_MINUTES = const(15)


class HeartRateSummary:
    def __init__(self, minutes=SUMMARY_MINUTES):
        self.minutes = minutes
        self.means = []
        self.lows = []
        self.highs = []
        self.first_utc = None  # hub UTC seconds at the start of the run
        self._sum = 0
        self._n = 0
        self._lo = 0
        self._hi = 0
        self._start = None

    def add(self, bpm, now_ms, utc_s=None):
        """One heart-rate value; returns a finished summary reading or None."""
        out = None
        if self._start is not None and now_ms - self._start >= MINUTE_MS:
            self._close_minute()
            if len(self.means) >= self.minutes:
                out = self.flush()
        if self._start is None:
            self._start = now_ms
            if self.first_utc is None:
                self.first_utc = utc_s
        if self._n == 0:
            self._lo = self._hi = bpm
        self._sum += bpm
        self._n += 1
        if bpm < self._lo:
            self._lo = bpm
        if bpm > self._hi:
            self._hi = bpm
        return out

    def _close_minute(self):
        if self._n:
            self.means.append((self._sum + self._n // 2) // self._n)
            self.lows.append(self._lo)
            self.highs.append(self._hi)
        self._sum = self._n = 0
        self._start = None

    def flush(self):
        """The summary of what was gathered (the open minute included), or None."""
        if self._n:
            self._close_minute()
        if not self.means:
            return None
        r = {MDC: MDC_ECG_HEART_RATE, VAL: self.means, UNIT: "/min", PERIOD: MINUTE_MS * 1000,
             CTX: {"min": self.lows, "max": self.highs}}
        if self.first_utc is not None:
            r[DTS] = self.first_utc
        self.means, self.lows, self.highs = [], [], []
        self.first_utc = None
        return r
