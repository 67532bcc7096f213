# Raspberry Pi Pico W (RP2040 + CYW43439). Imports modules only rp2
# firmware has; never imported on other boards.

import machine

from hub import state
from hub.ports.base import RESET_ASKED, BasePort, reset_at_boot


class Port(BasePort):
    name = "rp2"

    def __init__(self, board):
        super().__init__(board)
        # On the Pico W the LED hangs off the wireless chip: Pin("LED").
        pin = board["pins"].get("led", "LED")
        self._led = machine.Pin(pin, machine.Pin.OUT)

    def unique_id(self):
        return machine.unique_id()

    def reset_cause(self):
        if not hasattr(self, "_cause"):  # read once: the marker is cleared for the next boot
            c = machine.reset_cause()
            self._cause = reset_at_boot("power-on" if c == machine.PWRON_RESET else
                                        "watchdog" if c == machine.WDT_RESET else None)
        return self._cause

    def led(self, on):
        self._led.value(1 if on else 0)

    def ble(self, bonds=None):
        from hub.ble.native import Central
        return Central(bonds)

    def modem(self):
        return self.uart_modem(machine)

    def make_bearer(self, kind, name, spec):
        if kind == "wifi":
            import network
            from hub.bearers.wifi import WiFi
            return WiFi(name, network, spec)
        return BasePort.make_bearer(self, kind, name, spec)

    def reset(self):
        state.write_int(RESET_ASKED, 1)
        machine.reset()
