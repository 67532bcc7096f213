# The hub's main task. Boots the port, counts the boot, and runs the
# hub's asyncio tasks. Later issues add BLE collection, the journal and
# the uplink as tasks here.

import asyncio
import gc
import json

from hub import VERSION, board, ports, state, status

STATUS_EVERY_MS = 10000


class Hub:
    def __init__(self, port, boot):
        self.port = port
        self.boot = boot
        self.started = port.ticks_ms()

    def status(self):
        return status.snapshot(self.port, self.boot, self.started)

    def emit_status(self):
        # One JSON line, prefixed, so the host can read it off the console.
        print("STATUS " + json.dumps(self.status()))

    async def status_task(self, every_ms):
        while True:
            self.emit_status()
            await asyncio.sleep_ms(every_ms)


def boot_quiet():
    """The hub's objects without counting a boot: for a host asking for status."""
    b = board.load()
    return Hub(ports.load(b), state.read_int("boot"))


def boot():
    b = board.load()
    port = ports.load(b)
    n = state.next_boot()
    hub = Hub(port, n)
    print("samband hub %s on %s (%s port), boot %d, reset: %s"
          % (VERSION, b["name"], port.name, n, port.reset_cause()))
    return hub


async def main(hub, status_every_ms=STATUS_EVERY_MS):
    gc.collect()
    await hub.status_task(status_every_ms)


def run():
    hub = boot()
    asyncio.run(main(hub))
