# The hub's BLE interface: what the collector uses, whatever is underneath
# (MicroPython's `bluetooth` on the boards, the host's BLE bridge on the
# virtual hub). docs/ble.md describes it; the port hands out a Central.
#
# Addresses are 7 bytes: type (0 public, 1 random) + 6 address bytes, most
# significant first. UUIDs are ints (16-bit SIG) or 16 bytes (128-bit).

import asyncio

from hub.errors import HubError

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

FIFO_SIZE = const(256)

# GATT characteristic properties (Core spec Vol 3 Part G 3.3.1.1)
PROP_READ = const(0x02)
PROP_WRITE_NR = const(0x04)
PROP_WRITE = const(0x08)
PROP_NOTIFY = const(0x10)
PROP_INDICATE = const(0x20)


try:
    Flag = asyncio.ThreadSafeFlag
except AttributeError:  # CPython, where the host runs these modules in tests
    class Flag:
        def __init__(self):
            self._ev = asyncio.Event()

        def set(self):
            self._ev.set()

        async def wait(self):
            await self._ev.wait()
            self._ev.clear()


async def wait_ms(aw, ms):
    """asyncio.wait_for in milliseconds, on MicroPython and CPython alike."""
    if hasattr(asyncio, "wait_for_ms"):
        return await asyncio.wait_for_ms(aw, ms)
    return await asyncio.wait_for(aw, ms / 1000)


# BleError.reason: the device refused the bond we keep for it (HCI 0x06, PIN or Key
# Missing): it lost it (reset, new battery) or an impostor uses its address.
KEY_MISSING = "key-missing"


class BleError(HubError):
    """A BLE operation failed or timed out; the text says which and why, for people.
    Code decides by reason (None, or a word above such as KEY_MISSING), never by the
    text. A HubError, not an OSError: MicroPython allows one native base, and no
    caller needs an errno (a stack's OSError is named in the text)."""

    def __init__(self, msg, reason=None):
        super().__init__(msg)
        self.reason = reason


class Link:
    """What a connection to one device is, on either stack: the bridge's and the
    native Connection extend it, so the collector sees the same fields."""

    def __init__(self, central, handle, addr):
        self.central = central
        self.handle = handle
        self.addr = addr
        self.mtu = 23


class Char:
    __slots__ = ("uuid", "handle", "props", "cccd")

    def __init__(self, uuid, handle, props, cccd):
        self.uuid = uuid
        self.handle = handle
        self.props = props
        self.cccd = cccd

    def __repr__(self):
        return "Char(%s, 0x%04x, props 0x%02x, cccd 0x%04x)" % (uuid_str(self.uuid), self.handle, self.props, self.cccd)


class Service:
    __slots__ = ("uuid", "start", "end", "chars")

    def __init__(self, uuid, start, end, chars):
        self.uuid = uuid
        self.start = start
        self.end = end
        self.chars = chars

    def char(self, uuid):
        for c in self.chars:
            if c.uuid == uuid:
                return c
        return None


def find_char(services, uuid, service=None):
    """The characteristic with this uuid (in this service, if given), or None."""
    for s in services:
        if service is not None and s.uuid != service:
            continue
        c = s.char(uuid)
        if c is not None:
            return c
    return None


def addr_str(addr):
    return ":".join("%02X" % b for b in addr[1:]) + ("/r" if addr[0] else "")


def addr_parse(text):
    """'AA:BB:CC:DD:EE:FF' or 'AA:BB:CC:DD:EE:FF/r' to 7 bytes; ValueError otherwise."""
    t = text.strip()
    kind = 0
    if t.endswith("/r"):
        kind, t = 1, t[:-2]
    parts = t.split(":")
    if len(parts) != 6 or any(len(p) != 2 for p in parts):
        raise ValueError("not a BLE address: %r" % text)
    return bytes([kind] + [int(p, 16) for p in parts])


def uuid_str(u):
    if isinstance(u, int):
        return "%04x" % u
    h = "".join("%02x" % b for b in u)
    return "%s-%s-%s-%s-%s" % (h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])


class Fifo:
    """Bounded FIFO of BLE events, filled from IRQ handlers / socket readers.

    put() only stores a reference and signals; when full, the new event is
    dropped and counted, never an older one replaced. Advertisements are
    refused once the FIFO is 3/4 full, so that notifications have room.
    Link events ("disc", "enc") are never dropped: a device task waits for
    its "disc", forever if it is lost. One that finds the FIFO full waits in
    a side list (at most one per link) and takes the first slot freed."""

    def __init__(self, size=FIFO_SIZE):
        self._q = [None] * size
        self._size = size
        self._head = 0  # next to read
        self._n = 0
        self._adv_limit = size * 3 // 4
        self.flag = Flag()
        self.dropped = 0       # notifications/indications/link events dropped
        self.dropped_adv = 0   # advertisements dropped (harmless: they repeat)
        self.high_water = 0
        self._held = []        # link events that found the FIFO full, in order

    def __len__(self):
        return self._n + len(self._held)

    def put(self, ev):
        n = self._n
        if ev[0] in ("disc", "enc") and (n >= self._size or self._held):
            self._held.append(ev)
            self.flag.set()
            return True
        if n >= self._size or (ev[0] == "adv" and n >= self._adv_limit):
            if ev[0] == "adv":
                self.dropped_adv += 1
            else:
                self.dropped += 1
            return False
        self._q[(self._head + n) % self._size] = ev
        n += 1
        self._n = n
        if n > self.high_water:
            self.high_water = n
        self.flag.set()
        return True

    def get_nowait(self):
        if not self._n:
            return self._held.pop(0) if self._held else None
        i = self._head
        ev = self._q[i]
        self._q[i] = None
        self._head = (i + 1) % self._size
        self._n -= 1
        if self._held:  # the freed slot goes to the oldest held link event, before anything newer
            self._q[(self._head + self._n) % self._size] = self._held.pop(0)
            self._n += 1
        return ev

    async def get(self):
        while True:
            ev = self.get_nowait()
            if ev is not None:
                return ev
            await self.flag.wait()

    def stats(self):
        return {"queued": self._n + len(self._held), "high_water": self.high_water, "dropped": self.dropped,
                "dropped_adv": self.dropped_adv}
