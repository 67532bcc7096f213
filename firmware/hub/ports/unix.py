# The virtual hub: MicroPython's unix port run by the host's supervisor
# (samband vhub) with the flash folder mounted at "/". The supervisor
# tells us what a board's hardware would: our identity and why we reset.

import os
import sys
import time

from hub.ports.base import BasePort


def _du(path):
    total = 0
    for name, kind, *_ in os.ilistdir(path):
        p = path.rstrip("/") + "/" + name
        if kind == 0x4000:
            total += _du(p)
        else:
            total += os.stat(p)[6]
    return total


class Port(BasePort):
    name = "unix"

    def unique_id(self):
        uid = os.getenv("SAMBAND_VHUB_UID")
        if uid:
            return bytes.fromhex(uid)
        return b"\x00\x00\x00\x00\x00\x01"

    def reset_cause(self):
        return os.getenv("SAMBAND_VHUB_RESET") or "power-on"

    def utc_ms(self):
        # The host's clock is set (NTP); a board sets its own from the network later.
        return time.time_ns() // 1000000

    def fs(self):
        # The folder lives on the host's disk; report the board's flash budget instead.
        total = self.board.get("fs_size", 2 * 1024 * 1024)
        return total, max(0, total - _du("/"))

    def ble(self, bonds=None):
        # The virtual hub's radio is the host's BLE bridge (docs/ble.md).
        where = os.getenv("SAMBAND_BLE_BRIDGE")
        if not where:
            return None
        host, _, port = where.rpartition(":")
        from hub.ble.bridge import Central
        return Central(host or "127.0.0.1", int(port), self.unique_id(), bonds)

    def reset(self):
        # The supervisor treats a process that ends with this code as a hard reset.
        sys.exit(75)
