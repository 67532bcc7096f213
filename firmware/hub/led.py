# The status LED: what a patient or a technician sees on a hub without a
# tool. One pattern per state, looked at again after each pattern:
#   ok         a short blip every 4 s: alive, and data can leave
#   no-bearer  1 s on, 1 s off: readings are kept on flash, nothing can leave
#              (no bearer is up, or none reaches the broker)
#   alarm      5 Hz: an alarm reading is waiting to leave
# Not solid on for ok: a lit LED all night in a bedroom is a complaint, and a
# blip also shows that the firmware runs (a hung hub leaves the LED as it was).
# The console's `?blink N` (a technician finding this hub among others) takes
# the LED while it blinks; the pattern resumes after.

from hub.ticks import sleep_ms

OK = "ok"
NO_BEARER = "no-bearer"
ALARM = "alarm"
PATTERNS = {OK: (60, 3940), NO_BEARER: (1000, 1000), ALARM: (100, 100)}  # (on ms, off ms)


def choose(uplink_stats):
    """The LED state from the uplink's state: {"connected", "pending_alarms"}, or
    None for a hub with no uplink provisioned (nothing can leave it)."""
    if uplink_stats is None:
        return NO_BEARER
    if uplink_stats.get("pending_alarms"):
        return ALARM
    if not uplink_stats.get("connected"):
        return NO_BEARER
    return OK


class Led:
    def __init__(self, port, state):
        self.port = port
        self.state = state  # () -> the uplink state choose() takes
        self.shown = None  # the state on the LED now, for status and tests
        self.busy = False  # the console is blinking it

    async def run(self):
        while True:
            try:
                st = choose(self.state())
            except Exception:  # noqa: BLE001 - a status the LED cannot read must not stop it
                st = NO_BEARER
            self.shown = st
            on, off = PATTERNS[st]
            if not self.busy:
                self.port.led(True)
            await sleep_ms(on)
            if not self.busy:
                self.port.led(False)
            await sleep_ms(off)
