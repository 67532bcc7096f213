# The hub's wall clock: which source may set it, and when a jump is believed.
#
# A board boots with no idea of the date; readings keep (boot, mono) until
# the clock is set, and every reading made after carries the hub's UTC time.
# A wrong clock is worse than none (a glucose value filed under the wrong
# day), so every offer goes through the same rules:
#
#   precedence   sntp (3) > receiver (2) > modem (1). SNTP is measured to
#                milliseconds against servers that exist to be right; the
#                receiver is NTP-disciplined but heard through MQTT (its
#                uncertainty is the round trip); a modem's network time
#                (NITZ, +CCLK) is whole seconds, sent only by some
#                operators, and wrong after some cell changes.
#   bounds       a time before MIN_UTC_MS (this firmware's build) or more
#                than 50 years after it is refused: a modem with no NITZ
#                answers 1980 or 2000, a broken server 1900 or 2036.
#   jumps        once set, an offer that disagrees with the clock by more
#                than both sides' uncertainty plus what the crystal could
#                have drifted since (DRIFT_PPM) is a jump. A source of higher
#                rank than the one that set the clock may jump it; one of
#                equal or lower rank must say the same thing CONFIRM times
#                in a row (one bad packet does not move the clock, a clock
#                that really was wrong is still corrected).
#   journal      the first setting and every jump go to telemetry(mdc, val)
#                (the hub makes each a telemetry reading; a telemetry reading
#                carries both (boot, mono) and the new UTC, which is the pair
#                the receiver needs to date what was read before). Refusals
#                are counted, never raised.
#
# Pure apart from port.utc_ms/set_utc_ms/ticks_ms: tested on both runtimes.

SNTP = "sntp"
RECEIVER = "receiver"
MODEM = "modem"
RANK = {SNTP: 3, RECEIVER: 2, MODEM: 1}

MIN_UTC_MS = 1764547200000             # 2025-12-01T00:00:00Z: no earlier than this firmware
MAX_SPAN_MS = 50 * 366 * 86400 * 1000  # a clock this far past the build is broken
DRIFT_PPM = 200                        # a 20-40 ppm crystal, with room for temperature
CONFIRM = 3
MODEM_UNCERTAINTY_MS = 2000            # NITZ: whole seconds, and when it was sent is unknown

# Hub telemetry codes (private partition 1024 of IEEE 11073-10101, beside
# hub.collect's and the bearer manager's): the first setting (val = source
# rank) and a jump (val = the change in ms, signed).
MDC_HUB_CLOCK_SET = 1024 << 16 | 48
MDC_HUB_CLOCK_JUMP = 1024 << 16 | 49
# Where a boot's mono sits on the board's reset-proof clock (port.rtc_ms), val
# [power_on, rtc ms]: power_on 1 when this boot began with a power-on (that
# clock restarted), 0 when it kept counting through the reset.
MDC_HUB_BOOT_RTC = 1024 << 16 | 50
KEEPS_RTC = ("soft", "hard", "crash", "watchdog", "deep-sleep")  # ports/base.py reset_name's words


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (integers only:
    boards have single-precision floats, and time.mktime's epoch differs by port)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_cclk(line):
    """UTC ms from a modem's '+CCLK: "yy/MM/dd,hh:mm:ss±zz"' (27.007 8.15: local
    time, zz in quarter hours east of UTC); ValueError for anything else."""
    i = line.find('"')
    j = line.rfind('"')
    if not line.startswith("+CCLK:") or i < 0 or j - i != 21:
        raise ValueError("not a +CCLK reply: %r" % (line,))
    s = line[i + 1:j]
    if s[2] != "/" or s[5] != "/" or s[8] != "," or s[11] != ":" or s[14] != ":" or s[17] not in "+-":
        raise ValueError("bad +CCLK time: %r" % (s,))
    try:
        yy, mo, dd = int(s[0:2]), int(s[3:5]), int(s[6:8])
        hh, mi, ss, zz = int(s[9:11]), int(s[12:14]), int(s[15:17]), int(s[18:20])
    except ValueError:
        raise ValueError("bad +CCLK time: %r" % (s,))
    if not (1 <= mo <= 12 and 1 <= dd <= 31 and hh < 24 and mi < 60 and ss < 61 and zz <= 56):
        raise ValueError("bad +CCLK time: %r" % (s,))
    if s[17] == "-":
        zz = -zz
    # modems without network time count from their own epoch: "80/01/06" (GPS's, SIMCom),
    # "70/01/01"; two digits from 70 are the 1900s, so such a clock reads as before the build
    secs = days_from_civil((1900 if yy >= 70 else 2000) + yy, mo, dd) * 86400 + hh * 3600 + mi * 60 + ss - zz * 900
    return secs * 1000


NTP_DELTA = 2208988800  # seconds from 1900 (NTP's era 0) to 1970


def sntp_request():
    """An SNTP v4 client request (RFC 4330): 48 bytes, LI 0, VN 4, mode 3."""
    return b"\x23" + bytes(47)


def parse_sntp(data):
    """UTC ms of a server reply's transmit timestamp; ValueError for a reply
    that is not a usable server answer (wrong mode, kiss-o'-death, unsynchronised)."""
    if len(data) < 48:
        raise ValueError("SNTP reply of %d bytes" % len(data))
    mode = data[0] & 7
    li = data[0] >> 6
    stratum = data[1]
    if mode not in (4, 5) or stratum == 0 or stratum > 15 or li == 3:
        raise ValueError("SNTP server not usable (mode %d, stratum %d, LI %d)" % (mode, stratum, li))
    secs = (data[40] << 24) | (data[41] << 16) | (data[42] << 8) | data[43]
    frac = (data[44] << 24) | (data[45] << 16) | (data[46] << 8) | data[47]
    if secs == 0:
        raise ValueError("SNTP reply without a transmit time")
    if secs < 0x80000000:
        secs += 1 << 32  # era 1 (from 2036) — RFC 4330 section 3
    return (secs - NTP_DELTA) * 1000 + ((frac * 1000) >> 32)


class Clock:
    """Clock(port, telemetry=None). offer(source, utc_ms, uncertainty_ms)
    returns "set", "jumped", "kept" or "refused:<why>"; port.set_utc_ms does
    the setting. stats() for the status line."""

    def __init__(self, port, telemetry=None, min_utc_ms=MIN_UTC_MS, confirm=CONFIRM):
        self.port = port
        self.telemetry = telemetry
        self.min = min_utc_ms
        self.confirm = confirm
        self.source = None       # who set it last
        self.uncertainty = 0     # that source's uncertainty, ms
        self.set_at = None       # ticks when it was set
        self._pending = None     # [source, offset, count]: a jump waiting for confirmation
        self.counts = {"set": 0, "jumps": 0, "kept": 0, "refused": 0}
        self.last_refused = None

    def _refuse(self, why):
        self.counts["refused"] += 1
        self.last_refused = why
        return "refused:" + why

    def _tel(self, mdc, val):
        if self.telemetry is not None:
            try:
                self.telemetry(mdc, val)
            except Exception:  # a full journal must not stop the clock
                pass

    def offer(self, source, utc_ms, uncertainty_ms=0):
        if source not in RANK:
            return self._refuse("unknown-source")
        if not isinstance(utc_ms, int) or utc_ms < self.min:
            return self._refuse("before-build")
        if utc_ms - self.min > MAX_SPAN_MS:
            return self._refuse("too-late")
        now = self.port.ticks_ms()
        cur = self.port.utc_ms() if self.source is not None else None
        if cur is None:
            self._apply(source, utc_ms, uncertainty_ms, now)
            self.counts["set"] += 1
            self._tel(MDC_HUB_CLOCK_SET, RANK[source])
            return "set"
        diff = utc_ms - cur
        elapsed = self.port.ticks_diff(now, self.set_at)
        allowed = uncertainty_ms + self.uncertainty + elapsed * DRIFT_PPM // 1000000 + 1
        higher = RANK[source] > RANK[self.source]
        if -allowed <= diff <= allowed:
            self._pending = None
            if RANK[source] >= RANK[self.source] and uncertainty_ms <= self.uncertainty + elapsed * DRIFT_PPM // 1000000:
                self._apply(source, utc_ms, uncertainty_ms, now)  # a small correction, no jump
                return "set"
            self.counts["kept"] += 1
            return "kept"
        if not higher:
            p = self._pending
            if p is not None and p[0] == source and abs(diff - p[1]) <= uncertainty_ms + 1000:
                p[1] = diff
                p[2] += 1
            else:
                p = self._pending = [source, diff, 1]
            if p[2] < self.confirm:
                return self._refuse("unjustified-jump")
        self._pending = None
        self._apply(source, utc_ms, uncertainty_ms, now)
        self.counts["jumps"] += 1
        self._tel(MDC_HUB_CLOCK_JUMP, diff)
        return "jumped"

    def _apply(self, source, utc_ms, unc, now):
        # utc_ms was true at `now`; set_utc_ms takes the time of the call (a few µs later)
        self.port.set_utc_ms(utc_ms + self.port.ticks_diff(self.port.ticks_ms(), now))
        self.source = source
        self.uncertainty = unc
        self.set_at = now

    def stats(self):
        s = dict(self.counts)
        s["source"] = self.source
        s["refused_why"] = self.last_refused
        return s


def boot_anchor(port, telemetry):
    """Journal this boot's place on the board's reset-proof clock, if it has one. A
    boot that ends (a reset, a watchdog) before the wall clock is known has readings
    with only (boot, mono); the receiver dates them from a later boot's (boot, mono)
    <-> UTC pair by chaining the boots' anchors, as long as no power-on came between.
    Returns whether there was one."""
    rtc = port.rtc_ms()
    if rtc is None or port.utc_ms() is not None:  # (the virtual hub on the host's clock: nothing to chain)
        return False
    telemetry(MDC_HUB_BOOT_RTC, [0 if port.reset_cause() in KEEPS_RTC else 1, rtc])
    return True


async def from_modem(at, clock):
    """Offer the modem's network time (AT+CCLK?) through a cellular bearer's
    AT engine; returns what offer() said, or "refused:<why>"."""
    try:
        r = await at.cmd("AT+CCLK?", 2000)
    except Exception as e:  # ATError, timeout: the modem has no time for us
        return clock._refuse("modem: %s" % (getattr(e, "kind", None) or type(e).__name__))
    for line in r.lines:
        if line.startswith("+CCLK:"):
            try:
                return clock.offer(MODEM, parse_cclk(line), MODEM_UNCERTAINTY_MS)
            except ValueError:
                return clock._refuse("modem-reply")
    return clock._refuse("modem-reply")


async def from_sntp(clock, host="pool.ntp.org", port=123, timeout_ms=3000):
    """One SNTP exchange over UDP (Wi-Fi or Ethernet: the modem's sockets are
    TCP only); the offer's uncertainty is half the round trip."""
    import socket
    try:
        import asyncio
    except ImportError:  # pragma: no cover
        import uasyncio as asyncio
    p = clock.port
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
        t0 = p.ticks_ms()
        s.sendto(sntp_request(), addr)
        while True:
            try:
                data = s.recv(64)
                break
            except OSError:
                if p.ticks_diff(p.ticks_ms(), t0) > timeout_ms:
                    return clock._refuse("sntp-timeout")
                await asyncio.sleep_ms(10)
        rtt = p.ticks_diff(p.ticks_ms(), t0)
        try:
            utc = parse_sntp(data)
        except ValueError:
            return clock._refuse("sntp-reply")
        return clock.offer(SNTP, utc + rtt // 2, rtt // 2 + 1)
    except OSError:
        return clock._refuse("sntp-network")
    finally:
        s.close()
