# The hub's clock rules (hub/clock.py) on both runtimes: precedence of the
# sources, the bounds, jumps that need a better source or confirmation,
# telemetry for the first setting and every jump, and the pure parsers of
# a modem's +CCLK and an SNTP reply.
import struct

from fwtest import raises
from hub import clock
from hub.clock import MODEM, RECEIVER, SNTP, Clock, parse_cclk, parse_sntp

T0 = 1796180137000  # 2026-12-02T02:55:37Z


class FakePort:
    """A board's clock: ticks move only when the test says; utc_ms None until set."""

    def __init__(self):
        self.ticks = 1000
        self.off = None

    def ticks_ms(self):
        return self.ticks

    def ticks_diff(self, a, b):
        return a - b

    def utc_ms(self):
        return None if self.off is None else self.off + self.ticks

    def set_utc_ms(self, ms):
        self.off = ms - self.ticks


def make():
    tel = []
    p = FakePort()
    return p, Clock(p, lambda mdc, val: tel.append((mdc, val))), tel


def test_first_offer_sets_and_is_journaled():
    p, c, tel = make()
    assert p.utc_ms() is None
    assert c.offer(MODEM, T0, 2000) == "set"
    assert p.utc_ms() == T0 and c.source == MODEM
    assert tel == [(clock.MDC_HUB_CLOCK_SET, 1)]
    p.ticks += 500
    assert p.utc_ms() == T0 + 500


def test_bounds_refuse_times_before_the_build_and_far_future():
    p, c, tel = make()
    assert c.offer(MODEM, parse_cclk('+CCLK: "80/01/06,00:00:00+00"'), 2000) == "refused:before-build"
    assert c.offer(SNTP, clock.MIN_UTC_MS - 1, 10) == "refused:before-build"
    assert c.offer(SNTP, clock.MIN_UTC_MS + clock.MAX_SPAN_MS + 1, 10) == "refused:too-late"
    assert c.offer("gps", T0, 10) == "refused:unknown-source"
    assert p.utc_ms() is None and tel == [] and c.counts["refused"] == 4


def test_a_better_source_may_jump_a_worse_one_not_the_other_way():
    p, c, tel = make()
    c.offer(MODEM, T0 + 3600000, 2000)  # a modem an hour off (wrong zone from the network)
    p.ticks += 1000
    assert c.offer(SNTP, T0 + 1000, 20) == "jumped"
    assert p.utc_ms() == T0 + 1000 and c.source == SNTP
    assert tel[-1] == (clock.MDC_HUB_CLOCK_JUMP, -3600000)
    p.ticks += 1000
    # the modem says the hour again: one claim is not believed, nor two
    assert c.offer(MODEM, T0 + 3602000, 2000) == "refused:unjustified-jump"
    assert c.offer(MODEM, T0 + 3602000, 2000) == "refused:unjustified-jump"
    assert p.utc_ms() == T0 + 2000 and c.source == SNTP
    # the receiver agrees with SNTP within both uncertainties: kept (it is not better)
    assert c.offer(RECEIVER, T0 + 2040, 50) == "kept"
    assert p.utc_ms() == T0 + 2000


def test_a_source_that_insists_is_believed_after_confirmations():
    p, c, tel = make()
    c.offer(RECEIVER, T0, 100)
    for i in range(clock.CONFIRM - 1):
        p.ticks += 1000
        assert c.offer(RECEIVER, T0 + (i + 1) * 1000 + 86400000, 100) == "refused:unjustified-jump"
    p.ticks += 1000
    assert c.offer(RECEIVER, T0 + clock.CONFIRM * 1000 + 86400000, 100) == "jumped"
    assert p.utc_ms() == T0 + clock.CONFIRM * 1000 + 86400000
    assert tel[-1] == (clock.MDC_HUB_CLOCK_JUMP, 86400000)
    assert c.counts["jumps"] == 1


def test_drift_allowance_grows_with_time_since_setting():
    p, c, tel = make()
    c.offer(SNTP, T0, 10)
    p.ticks += 3600 * 1000  # an hour later: up to 720 ms of drift at 200 ppm
    assert c.offer(SNTP, T0 + 3600 * 1000 + 700, 10) == "set"  # a small correction, no jump
    assert p.utc_ms() == T0 + 3600 * 1000 + 700
    assert tel == [(clock.MDC_HUB_CLOCK_SET, 3)]
    p.ticks += 1000
    assert c.offer(SNTP, T0 + 3601 * 1000 + 700 + 5000, 10) == "refused:unjustified-jump"


def test_parse_cclk():
    assert parse_cclk('+CCLK: "26/12/02,03:55:37+04"') == T0   # UTC+1 (4 quarters)
    assert parse_cclk('+CCLK: "26/12/02,00:55:37-08"') == T0   # UTC-2
    for bad in ('+CCLK: "26/13/02,03:55:37+04"', '+CCLK: "26/12/02 03:55:37+04"',
                '+CCLK: 26/12/02', '+CSQ: 20,99', '+CCLK: "2x/12/02,03:55:37+04"'):
        raises(ValueError, parse_cclk, bad)


def sntp_reply(secs, frac, mode=4, stratum=2, li=0):
    return bytes([(li << 6) | (4 << 3) | mode, stratum]) + bytes(38) + struct.pack(">II", secs, frac)


def test_parse_sntp():
    secs = T0 // 1000 + clock.NTP_DELTA
    assert parse_sntp(sntp_reply(secs, 0x80000000)) == T0 + 500
    assert len(clock.sntp_request()) == 48
    raises(ValueError, parse_sntp, sntp_reply(secs, 0, stratum=0))  # kiss-o'-death
    raises(ValueError, parse_sntp, sntp_reply(secs, 0, mode=3))
    raises(ValueError, parse_sntp, sntp_reply(secs, 0, li=3))      # unsynchronised
    raises(ValueError, parse_sntp, sntp_reply(0, 0))
    raises(ValueError, parse_sntp, b"\x24" * 20)


class BoardTicks:
    """A board's tick counter: wraps every 2**30 ms (12.4 days), ticks_diff as
    MicroPython's (extmod/modtime.c time_ticks_diff: the period's signed difference)."""
    PERIOD = 1 << 30

    def ticks_ms(self):
        return self.t

    def ticks_diff(self, a, b):
        d = (a - b) & (self.PERIOD - 1)
        return d - self.PERIOD if d >= self.PERIOD // 2 else d


def test_a_boards_wall_clock_stays_right_across_tick_wraps():
    from hub.ports.base import BasePort

    class P(BoardTicks, BasePort):
        pass
    p = P({})
    p.t = P.PERIOD - 5000  # set 5 s before the counter wraps
    assert p.utc_ms() is None
    p.set_utc_ms(T0)
    for day in range(1, 31):  # a month on a shelf, read once a day (the status reads it far more often)
        p.t = (P.PERIOD - 5000 + day * 86400000) % P.PERIOD
        assert p.utc_ms() == T0 + day * 86400000


def test_boot_anchor_says_whether_the_reset_proof_clock_went_on():
    tel = []
    p = FakePort()
    p.rtc_ms = lambda: 61000
    for cause, power_on in (("power-on", 1), ("hard", 0), ("watchdog", 0), ("crash", 0), ("unknown", 1)):
        p.reset_cause = lambda c=cause: c
        assert clock.boot_anchor(p, lambda mdc, val: tel.append((mdc, val)))
        assert tel.pop() == (clock.MDC_HUB_BOOT_RTC, [power_on, 61000])
    p.set_utc_ms(T0)  # a clock known from the start (the virtual hub on the host's) needs no chain
    assert not clock.boot_anchor(p, tel.append)
    p.off = None
    p.rtc_ms = lambda: None  # a board without one (rp2)
    assert not clock.boot_anchor(p, tel.append) and tel == []
