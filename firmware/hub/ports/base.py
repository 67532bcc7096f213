# What every port shares: the parts of the interface that MicroPython's
# portable modules already provide.

import gc
import os
import time


# Reset causes every port reports (the virtual hub's supervisor uses the same words):
# "power-on", "soft", "hard" (machine.reset(), asked for), "crash" (a panic or fatal
# error), "watchdog", "deep-sleep", "unknown".
RESET_ASKED = "reset-asked"  # state counter: set just before machine.reset()


def reset_name(cause, asked):
    """Our name for a reset, from the port's own class of it and whether we asked for it.

    cause is "power-on", "watchdog", "deep-sleep", "soft", "hard" or anything else
    (unknown); asked: the RESET_ASKED marker was set. A port whose "hard" covers both
    machine.reset() and a panic (the ESP32: ports/esp32/modmachine.c machine_reset_cause)
    needs the marker to tell them apart, and the rp2's machine.reset() reboots through the
    watchdog (ports/rp2/modmachine.c mp_machine_reset), so there it reads "watchdog"."""
    if cause == "hard":
        return "hard" if asked else "crash"
    if cause == "watchdog" and asked:
        return "hard"
    if cause in ("power-on", "watchdog", "deep-sleep", "soft"):
        return cause
    return "unknown"


def reset_at_boot(cause):
    """reset_name of the reset this boot came from, the RESET_ASKED marker read and cleared so
    that the next reset is not taken for one we asked for: a port calls it once per boot."""
    from hub import state
    asked = state.read_int(RESET_ASKED, 0)
    if asked:
        state.write_int(RESET_ASKED, 0)
    return reset_name(cause, asked)


class BasePort:
    name = "base"

    def __init__(self, board):
        self.board = board
        self._utc_at = None  # [utc ms, ticks ms] of one instant, once the clock is set

    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def utc_ms(self):
        # A board's ticks wrap every 2**30 ms (12.4 days) and ticks_diff is right within
        # half that: utc = the anchor + ticks since it, and every read moves the anchor on
        # (the hub reads its clock with each status, far more often than every 6 days).
        a = self._utc_at
        if a is None:
            return None
        now = self.ticks_ms()
        a[0] += self.ticks_diff(now, a[1])
        a[1] = now
        return a[0]

    def set_utc_ms(self, ms):
        self._utc_at = [ms, self.ticks_ms()]

    def rtc_ms(self):
        """ms on a clock that counts through every reset but a power-on, set or not
        (hub/clock.py boot_anchor); None: this board has none (its clock restarts too)."""
        return None

    def mem(self):
        return gc.mem_alloc(), gc.mem_free()

    def fs(self):
        s = os.statvfs("/")
        return s[0] * s[2], s[0] * s[3]

    def led(self, on):
        pass

    def ble(self, bonds=None):
        """The BLE Central (hub.ble), or None if this board has no BLE."""
        return None

    def mdns_port(self):
        """The UDP port the hub's mDNS responder listens on (hub/mdnsd.py); None: none."""
        return 5353

    def bearers(self, config=None):
        """The board's bearers in provisioned order (cheapest first), from the
        hub config's "bearers" list: [{"kind": "wifi"|"lan"|"cellular"|"hostnet",
        "name": ..., kind's own keys}]. A kind this board cannot do raises
        BearerError naming it: a provisioning mistake is said, not skipped."""
        from hub.bearers import BearerError
        out = []
        names = set()
        for i, spec in enumerate((config or {}).get("bearers") or ()):
            if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
                raise BearerError("bad-config", "bearer %d has no kind" % i)
            name = spec.get("name") or "%s%d" % (spec["kind"], i)
            if name in names:
                raise BearerError("bad-config", "two bearers named %s" % name)
            names.add(name)
            b = self.make_bearer(spec["kind"], name, spec)
            if b is None:
                raise BearerError("not-supported", "board %s has no %s bearer" % (self.board.get("name"), spec["kind"]))
            b.keepalive = spec.get("keepalive")  # its own MQTT keepalive (s), else the uplink's
            out.append(b)
        return out

    def make_bearer(self, kind, name, spec):
        """One bearer of a kind this port can build, or None (each port adds its own)."""
        if kind == "cellular":
            m = self.modem()
            if m is None:
                return None
            from hub.bearers.cellular import Cellular
            return Cellular(name, m[0], spec, spec.get("modem", self.board.get("modem", "sim7080g")), m[1])
        return None

    def firmware_slots(self):
        """The board's OTA app partitions for a whole-firmware update (hub/otafw.py), or None:
        this board takes updates as folder slots only (docs/ota.md)."""
        return None

    def modem(self):
        """The cellular modem as (asyncio stream, async pwrkey(ms) or None), or
        None if this board has none: what hub.bearers.cellular.Cellular takes."""
        return None

    def uart_modem(self, machine):
        """modem() for boards with a modem on a UART (board.json pins
        modem_uart, modem_pwrkey); the board's port passes its machine module,
        which this portable module must not import. UART timeout=0: a read
        returns what has arrived, as asyncio wants."""
        u = self.board["pins"].get("modem_uart")
        if not u:
            return None
        from hub.bearers import serial
        uart = machine.UART(u["id"], baudrate=u.get("baud", 115200), tx=u["tx"], rx=u["rx"],
                            timeout=0, rxbuf=1024)
        self.modem_uart = uart  # the raw UART, for a board whose network.PPP takes it over
        key = self.board["pins"].get("modem_pwrkey")
        pwrkey = None
        if key is not None:
            from hub.bearers.cellular import pulse
            pin = machine.Pin(key, machine.Pin.OUT, value=0)

            async def pwrkey(ms):
                await pulse(pin, ms)
        return serial.stream(uart), pwrkey
