# ESP32 boards (ESP32-WROOM/WROVER DevKits). Imports modules only ESP32
# firmware has; never imported on other boards.

import time

import machine

from hub import state
from hub.ports.base import RESET_ASKED, BasePort, reset_at_boot

# ports/esp32/modmachine.c machine_reset_cause: HARD_RESET is ESP_RST_SW (machine.reset()),
# ESP_RST_PANIC (a crash) and ESP_RST_EXT (never on the ESP32); our marker splits them.
_CAUSES = {
    machine.PWRON_RESET: "power-on",
    machine.HARD_RESET: "hard",
    machine.WDT_RESET: "watchdog",
    machine.DEEPSLEEP_RESET: "deep-sleep",
    machine.SOFT_RESET: "soft",
}


class Port(BasePort):
    name = "esp32"

    def __init__(self, board):
        super().__init__(board)
        pin = board["pins"].get("led")
        self._led = machine.Pin(pin, machine.Pin.OUT) if pin is not None else None

    def unique_id(self):
        return machine.unique_id()

    def reset_cause(self):
        if not hasattr(self, "_cause"):  # read once: the marker is cleared for the next boot
            self._cause = reset_at_boot(_CAUSES.get(machine.reset_cause()))
        return self._cause

    def rtc_ms(self):
        # time.time_ns is the IDF's gettimeofday (ports/esp32/mphalport.c mp_hal_time_ns),
        # kept by the RTC timer through every reset and sleep, restarted only by a power-up
        # (ESP-IDF "System Time"). The hub never sets it (its wall clock is BasePort's),
        # so it counts from the power-on: what chains boots before the clock is known.
        return time.time_ns() // 1000000

    def led(self, on):
        if self._led is not None:
            self._led.value(1 if on else 0)

    def ble(self, bonds=None):
        from hub.ble.native import Central
        return Central(bonds)

    def modem(self):
        return self.uart_modem(machine)

    def bearers(self, config=None):
        kinds = [b.get("kind") for b in (config or {}).get("bearers") or () if isinstance(b, dict)]
        self._ip_beside = "wifi" in kinds or "lan" in kinds
        return BasePort.bearers(self, config)

    def make_bearer(self, kind, name, spec):
        if kind == "cellular":
            # PPP (network.PPP, MicroPython >= 1.24) where cellular is the board's one IP
            # bearer: connect() makes PPP lwIP's default interface and DNS (ports/esp32/
            # network_ppp.c pppapi_set_default, ppp_set_usepeerdns), so beside Wi-Fi or
            # Ethernet both sessions would leave by it; there the modem's own sockets
            # (which never touch the route) carry cellular. "data": "ppp" | "sockets" decides.
            import network
            mode = spec.get("data") or ("sockets" if getattr(self, "_ip_beside", False) else "ppp")
            if mode not in ("ppp", "sockets"):
                from hub.bearers import BearerError
                raise BearerError("bad-config", "bearer %s: data must be ppp or sockets, not %r" % (name, mode))
            if mode == "ppp" and hasattr(network, "PPP"):
                m = self.modem()
                if m is None:
                    return None
                from hub.bearers.cellular import Cellular
                uart = self.modem_uart
                return Cellular(name, m[0], spec, spec.get("modem", self.board.get("modem", "sim7080g")), m[1],
                                make_ppp=lambda: network.PPP(uart))
        if kind == "wifi":
            import network
            from hub.bearers.wifi import WiFi
            return WiFi(name, network, spec)
        if kind == "lan":
            import network
            from hub.bearers.lan import LAN
            return LAN(name, network, machine, self.board.get("ethernet"), spec)
        return BasePort.make_bearer(self, kind, name, spec)

    def reset(self):
        state.write_int(RESET_ASKED, 1)
        machine.reset()

    def firmware_slots(self):
        """The OTA app partitions (hub/ports/esp32ota.py) for a whole-firmware update; imported only then."""
        import esp32
        from hub.ports.esp32ota import Slots
        return Slots(esp32.Partition)
