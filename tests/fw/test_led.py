# The status LED (hub/led.py): which pattern for which state, and the task
# that drives a port's LED, on both runtimes.

import asyncio

from hub import led
from hub.ticks import sleep_ms


def test_state_from_the_uplink():
    assert led.choose(None) == led.NO_BEARER  # no uplink provisioned: nothing can leave
    assert led.choose({"connected": False, "pending_alarms": 0}) == led.NO_BEARER
    assert led.choose({"connected": True, "pending_alarms": 0}) == led.OK
    assert led.choose({"connected": True, "pending_alarms": 2}) == led.ALARM
    assert led.choose({"connected": False, "pending_alarms": 1}) == led.ALARM  # the most urgent shows


def test_no_bearer_is_a_slow_even_blink_distinct_from_ok_and_alarm():
    on, off = led.PATTERNS[led.NO_BEARER]
    assert on == off == 1000
    assert led.PATTERNS[led.OK][0] < led.PATTERNS[led.OK][1]  # mostly dark at night
    assert sum(led.PATTERNS[led.ALARM]) < 500


class Port:
    def __init__(self):
        self.calls = []

    def led(self, on):
        self.calls.append(on)


def test_the_task_follows_the_state_and_yields_to_the_console():
    saved = dict(led.PATTERNS)
    for k in led.PATTERNS:
        led.PATTERNS[k] = (5, 5)
    port = Port()
    states = [None, {"connected": True, "pending_alarms": 0}]
    seen = []

    def state():
        return states[0] if len(seen) < 3 else states[1]

    async def main():
        lamp = led.Led(port, state)
        task = asyncio.create_task(lamp.run())
        while len(seen) < 6:
            await sleep_ms(10)
            seen.append(lamp.shown)
        lamp.busy = True
        n = len(port.calls)
        await sleep_ms(60)
        quiet = len(port.calls) - n
        lamp.busy = False
        await sleep_ms(40)
        task.cancel()
        return quiet

    try:
        quiet = asyncio.run(main())
    finally:
        led.PATTERNS.update(saved)
    assert seen[0] == led.NO_BEARER and seen[-1] == led.OK
    assert quiet == 0  # the console's blink owns the LED meanwhile
    assert port.calls[:2] == [True, False] and port.calls[-2:] in ([True, False], [False, True])


def test_a_state_it_cannot_read_shows_no_bearer():
    def broken():
        raise OSError("gone")

    async def main():
        lamp = led.Led(Port(), broken)
        task = asyncio.create_task(lamp.run())
        await sleep_ms(20)
        task.cancel()
        return lamp.shown

    assert asyncio.run(main()) == led.NO_BEARER
