# Signed configs for tests/data/uplink_main.py, taken as hub/app.py takes them
# (test data, not firmware; tests/test_hubcfg_e2e.py writes it beside main.py).
# Its own file so that main.py's bytecode, in the heap of every hub that runs
# it, does not grow for the hubs that take no configs.
#
# "judge": readings are alarms by hub.alarms (an alarm below 54 mg/dL unless
# the patient's limits say otherwise) instead of alarm_every; "hold_cfg":
# [[n, "l" or "k"], ...]: before reading n, wait until that config serial
# changed. Each config message is logged to /uplink.log as "C keys-serial
# limits-serial refusals" after it was taken.
import os

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from hub import alarms, reading


class Wired:
    def __init__(self, cfg, up, keys, sealer, telemetry, log):
        if "limits" in os.listdir("/keys"):
            from hub import limits
            limits.boot(keys, "/keys", [])
        self.keys, self.sealer, self.telemetry, self.log = keys, sealer, telemetry, log
        self.state = {"k": keys.serial, "l": 0}
        self.booted = dict(self.state)
        self.judging = cfg.get("judge")
        self.holds = dict((n, key) for n, key in cfg.get("hold_cfg", ()))
        up.set_config(self.take, self.state)

    def take(self, payload):
        from hub import hubcfg
        hubcfg.take(payload, self.keys, self.sealer, self.state, "/keys", self.telemetry)
        st = self.state
        self.log.write(("C %d %d %d\n" % (st["k"], st["l"], st.get("bad", 0))).encode())
        self.log.flush()

    def judge(self, r, code):
        prio = alarms.classify(r, (((code,), "mg/dL", 54, None),))
        if prio != reading.PRIO_ROUTINE:
            r[reading.PRIO] = prio
        return prio

    async def hold(self, n):
        key = self.holds.get(n)
        while key is not None and self.state[key] == self.booted[key]:
            await asyncio.sleep_ms(20)
