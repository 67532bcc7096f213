# The millisecond tick counter: MicroPython's own on a board and on the unix
# port, a monotonic stand-in when the host imports a module under CPython to
# cross-check it. Differences go through ticks_diff, as on a board, where
# the counter wraps.

try:
    from time import ticks_diff, ticks_ms
except ImportError:
    import time as _time

    def ticks_ms():
        return int(_time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


def sleep_ms(ms):
    """asyncio.sleep_ms where it exists (MicroPython), else asyncio.sleep: the
    same logic runs on CPython when the host cross-checks it."""
    import asyncio
    f = getattr(asyncio, "sleep_ms", None)
    return f(ms) if f else asyncio.sleep(ms / 1000)


def backoff_ms(steps, fails):
    """The wait before retry `fails` (0 = the first): a random point in the upper half of its
    step. Hubs that one outage cut off together would otherwise all come back at the same
    instants, a reconnect storm on the broker for every step of the ladder (docs/deploy.md)."""
    import os
    base = steps[min(fails, len(steps) - 1)]
    r = os.urandom(2)
    return base - (base // 2) * ((r[0] << 8) | r[1]) // 65536
