# What every port shares: the parts of the interface that MicroPython's
# portable modules already provide.

import gc
import os
import time


class BasePort:
    name = "base"

    def __init__(self, board):
        self.board = board
        self._utc_offset = None  # utc_ms - ticks_ms, once the clock is set

    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def utc_ms(self):
        if self._utc_offset is None:
            return None
        return self._utc_offset + time.ticks_ms()

    def set_utc_ms(self, ms):
        self._utc_offset = ms - time.ticks_ms()

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

    def bearers(self):
        return []
