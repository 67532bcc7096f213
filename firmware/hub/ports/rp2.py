# Raspberry Pi Pico W (RP2040 + CYW43439). Imports modules only rp2
# firmware has; never imported on other boards.

import machine

from hub.ports.base import BasePort


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
        c = machine.reset_cause()
        if c == machine.PWRON_RESET:
            return "power-on"
        if c == machine.WDT_RESET:
            return "watchdog"
        return "unknown"

    def led(self, on):
        self._led.value(1 if on else 0)

    def ble(self, bonds=None):
        from hub.ble.native import Central
        return Central(bonds)

    def reset(self):
        machine.reset()
