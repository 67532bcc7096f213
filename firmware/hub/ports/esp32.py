# ESP32 boards (ESP32-WROOM/WROVER DevKits). Imports modules only ESP32
# firmware has; never imported on other boards.

import machine

from hub.ports.base import BasePort

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
        return _CAUSES.get(machine.reset_cause(), "unknown")

    def led(self, on):
        if self._led is not None:
            self._led.value(1 if on else 0)

    def ble(self, bonds=None):
        from hub.ble.native import Central
        return Central(bonds)

    def reset(self):
        machine.reset()
