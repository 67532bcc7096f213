# The virtual hub: MicroPython's unix port run by the host's supervisor
# (samband vhub) with its flash image (littlefs) mounted at "/". The supervisor
# tells us what a board's hardware would: our identity and why we reset.

import os
import sys
import time

from hub.ports.base import BasePort


class Port(BasePort):
    name = "unix"

    def __init__(self, board):
        BasePort.__init__(self, board)
        # SAMBAND_VHUB_CLOCK=board: a board's wall clock, unknown (None) until the
        # firmware sets it (hub/clock.py); else the host's, always set (NTP).
        self._host_clock = os.getenv("SAMBAND_VHUB_CLOCK") != "board"
        # SAMBAND_VHUB_TICKS=ms: where the monotonic clock starts, e.g. near the 30-bit
        # wrap of a reading's mono (12.4 days of a board's uptime); warp() moves it on.
        # It is where *this boot's* clock starts, as a board's ticks start at its boot: an
        # offset from the host's monotonic clock, which has run since the host booted (a fixed
        # offset would land anywhere, by the host's uptime).
        t = os.getenv("SAMBAND_VHUB_TICKS")
        self._ticks0 = time.ticks_diff(int(t), time.ticks_ms()) if t else 0
        self._warp = 0
        # The supervisor's warp (VirtualHub.warp, a soak's accelerated clock): a host file
        # opened by the vhub's boot script before "/" became the flash, holding the ms the
        # host has moved this hub's clock on, twice (a read torn by the host's write is
        # seen as two different halves and ignored). Read at most once a real ms, into a
        # buffer made here: the clock allocates nothing.
        self._host_warp = 0
        self._warp_f = sys.modules.get("_vhub_warp")
        self._warp_buf = bytearray(16)
        self._warp_at = None

    def ticks_ms(self):
        return time.ticks_add(time.ticks_ms(), self._ticks0 + self._warp + self._warped())

    def _warped(self):
        f = self._warp_f
        if f is None:
            return 0
        now = time.ticks_ms()
        if now != self._warp_at:
            self._warp_at = now
            b = self._warp_buf
            f.seek(0)
            if f.readinto(b) == 16:
                v = 0
                for i in range(7, -1, -1):  # a counted loop: no range object, no slices
                    if b[i] != b[i + 8]:
                        return self._host_warp
                    v = v << 8 | b[i]
                self._host_warp = v
        return self._host_warp

    def warp(self, ms):
        """Move the monotonic clock (and a set board clock with it) ms ahead at once: for a
        test, what a board sees after ms of uptime spent waiting, without the wait. Only
        the port's clock moves (what dates readings and the wall clock); timeouts that
        run on time.ticks_ms keep real time."""
        self._warp += ms

    def rtc_ms(self):
        # A board's RTC counts from its power-on through every other reset (ESP-IDF,
        # "System Time": only the power-up reset resets the RTC timer). The supervisor
        # says when the virtual board was powered on, on the host's CLOCK_MONOTONIC
        # (which time.ticks_ms reads here too: ports/unix/unix_mphal.c mp_hal_ticks_ms).
        at = os.getenv("SAMBAND_VHUB_POWERED_AT")
        if not at:
            return None
        return time.ticks_ms() + self._warp + self._warped() - int(at)

    def unique_id(self):
        uid = os.getenv("SAMBAND_VHUB_UID")
        if uid:
            return bytes.fromhex(uid)
        return b"\x00\x00\x00\x00\x00\x01"

    def reset_cause(self):
        return os.getenv("SAMBAND_VHUB_RESET") or "power-on"

    def utc_ms(self):
        # The host's clock is set (NTP); a board sets its own from the network later.
        # The host's warp moves it too: the time that passed for this hub passed for its NTP.
        if self._host_clock:
            return time.time_ns() // 1000000 + self._warped()
        return BasePort.utc_ms(self)

    def set_utc_ms(self, ms):
        # the host's clock is not ours to set
        if not self._host_clock:
            BasePort.set_utc_ms(self, ms)

    def ble(self, bonds=None):
        # The virtual hub's radio is the host's BLE bridge (docs/ble.md).
        where = os.getenv("SAMBAND_BLE_BRIDGE")
        if not where:
            return None
        host, _, port = where.rpartition(":")
        from hub.ble.bridge import Central
        return Central(host or "127.0.0.1", int(port), self.unique_id(), bonds)

    def modem(self):
        # The virtual hub's modem is the host's simulator on a pty (samband.modem.sim).
        path = os.getenv("SAMBAND_MODEM")
        if not path:
            return None
        from hub.bearers import serial
        try:
            return serial.open_pty(path), None
        except OSError:
            # Under the supervisor "/" is the hub's flash (littlefs, host/samband/vhub/boot.py),
            # where no /dev/pts exists: reach the host's pty through a VfsPosix of its folder.
            import vfs
            d, _, name = path.rpartition("/")
            try:
                vfs.mount(vfs.VfsPosix(d), "/_modem")
            except OSError:
                pass  # mounted by an earlier call
            return serial.open_pty("/_modem/" + name), None

    def make_bearer(self, kind, name, spec):
        # The virtual hub's IP bearers are fixed TCP paths (a relay each in tests).
        if kind == "hostnet":
            from hub.bearers.hostnet import HostNet
            return HostNet(name, spec)
        return BasePort.make_bearer(self, kind, name, spec)

    def mdns_port(self):
        # The host owns 5353 and parallel tests must not share a port: the
        # supervisor or test names one, else the virtual hub advertises nothing.
        p = os.getenv("SAMBAND_MDNS_PORT")
        return int(p) if p else None

    def reset(self):
        # The supervisor treats a process that ends with this code as a hard reset.
        sys.exit(75)
