# The virtual hub's BLE: a client of the host's BLE bridge (docs/ble.md),
# since the unix port has no `bluetooth` module. The bridge runs bumble
# with the hub's central and the emulated devices on one virtual link;
# everything above this module is the same code the boards run.

import asyncio
import struct

from hub import cbor
from hub.ble import BleError, Char, Fifo, Link, Service, wait_ms

# The bridge protocol's frame codes and size (docs/ble.md, "Bridge protocol").
# This module owns them: the host's bridge server and client import these
# names, so the two ends cannot drift apart. A frame is a 2-byte big-endian
# length and a CBOR array whose first item is one of these codes.
REQ = 0  # hub -> bridge: [REQ, rid, op, args...]
OK = 1  # bridge -> hub: [OK, rid, result]
ERR = 2  # bridge -> hub: [ERR, rid, message] or [ERR, rid, message, reason] (a BleError reason word)
EVENT = 3  # bridge -> hub: [EVENT, name, args...]
KEYREQ = 4  # bridge -> hub: [KEYREQ, rid, op, args...] (the hub owns the bond keys)
KEYREP = 5  # hub -> bridge: [KEYREP, rid, result]
MAX_FRAME = 0xFFFF



def frame(msg):
    body = cbor.dumps(msg)
    if len(body) > MAX_FRAME:
        raise BleError("frame of %d bytes is too long" % len(body))
    return struct.pack(">H", len(body)) + body


class Connection(Link):
    async def exchange_mtu(self, mtu=247):
        self.mtu = await self.central.call("mtu", self.handle, mtu)
        return self.mtu

    async def discover(self, timeout_ms=20000):
        raw = await self.central.call("discover", self.handle, timeout_ms=timeout_ms)
        out = []
        try:
            for uuid, start, end, chars in raw:
                out.append(Service(_uuid(uuid), start, end,
                                   [Char(_uuid(c[0]), c[1], c[2], c[3]) for c in chars]))
        except (TypeError, ValueError, IndexError):
            raise BleError("bridge sent a malformed service list")
        return out

    async def pair(self, bond=True, mitm=False, lesc=True, timeout_ms=30000):
        return await self.central.call("pair", self.handle, bond, mitm, lesc, timeout_ms=timeout_ms)

    async def read(self, handle, timeout_ms=10000):
        return await self.central.call("read", self.handle, handle, timeout_ms=timeout_ms)

    async def write(self, handle, data, response=True, timeout_ms=10000):
        await self.central.call("write", self.handle, handle, bytes(data), response, timeout_ms=timeout_ms)

    async def subscribe(self, cccd_handle, mode, timeout_ms=10000):
        await self.central.call("subscribe", self.handle, cccd_handle, mode, timeout_ms=timeout_ms)

    async def disconnect(self, timeout_ms=5000):
        try:
            await self.central.call("disconnect", self.handle, timeout_ms=timeout_ms)
        except BleError:
            pass  # already gone


def _uuid(u):
    if isinstance(u, int):
        return u
    if isinstance(u, bytes) and len(u) == 16:
        return u
    raise ValueError("bad uuid")


class Central:
    """The BLE interface over a TCP connection to samband.blebridge."""

    def __init__(self, host, port, hub_id, bonds=None):
        self.host = host
        self.port = port
        self.hub_id = bytes(hub_id)
        self.bonds = bonds
        self.events = Fifo()
        self.address = None
        self.errors = 0  # malformed frames from the bridge
        self._rid = 0
        self._wait = {}
        self._r = None
        self._w = None
        self._reader = None
        self._conns = set()  # connection handles the bridge gave us
        self._open_lock = asyncio.Lock()  # one TCP connection, however many tasks call at once

    async def open(self):
        """Connect to the bridge (again); idempotent, and safe from several tasks at once."""
        async with self._open_lock:
            if self._w is None:
                await self._open()

    async def _open(self):
        try:
            r, w = await asyncio.open_connection(self.host, self.port)
        except OSError as e:
            raise BleError("no BLE bridge at %s:%d (%s)" % (self.host, self.port, e))
        self._r, self._w = r, w
        self._reader = asyncio.create_task(self._read_loop(r))
        info = await self.call("hello", self.hub_id)
        self.address = info.get("address") if isinstance(info, dict) else None

    def _lost(self, why):
        w, self._w, self._r = self._w, None, None
        if w is not None:
            try:
                w.close()
            except OSError:
                pass
        for slot in self._wait.values():
            slot[2] = why
            slot[0].set()
        self._wait = {}
        # Every link went with the bridge: tell their owners, as a radio would (0x08: timeout).
        for h in self._conns:
            self.events.put(("disc", h, 0x08))
        self._conns = set()

    async def call(self, op, *args, timeout_ms=10000):
        if self._w is None and op != "hello":
            await self.open()
        w = self._w
        if w is None:
            raise BleError("BLE bridge connection lost")
        self._rid = (self._rid + 1) & 0x3FFFFFFF
        rid = self._rid
        slot = [asyncio.Event(), None, None, None]  # done, result, error text, error reason
        self._wait[rid] = slot
        try:
            w.write(frame([REQ, rid, op] + list(args)))
            await w.drain()
            await wait_ms(slot[0].wait(), timeout_ms)
        except asyncio.TimeoutError:
            raise BleError("%s timed out after %d ms" % (op, timeout_ms))
        except OSError as e:
            self._lost("BLE bridge connection lost: %s" % e)
            raise BleError("BLE bridge connection lost: %s" % e)
        finally:
            self._wait.pop(rid, None)
        if slot[2] is not None:
            raise BleError("%s: %s" % (op, slot[2]), slot[3])
        return slot[1]

    async def scan(self, on, active=True):
        await self.call("scan", bool(on), bool(active))

    async def connect(self, addr, timeout_ms=10000):
        h = await self.call("connect", bytes(addr), timeout_ms, timeout_ms=timeout_ms + 2000)
        self._conns.add(h)
        return Connection(self, h, bytes(addr))

    async def bond_delete(self, addr):
        await self.call("bond_delete", bytes(addr))
        if self.bonds is not None:
            self.bonds.delete(addr)

    async def _read_loop(self, r):
        why = "BLE bridge closed the connection"
        try:
            while True:
                hdr = await r.readexactly(2)
                body = await r.readexactly((hdr[0] << 8) | hdr[1])
                try:
                    msg = cbor.loads(body)
                    kind = msg[0]
                except (ValueError, TypeError, IndexError, KeyError):
                    self.errors += 1
                    why = "malformed frame from the BLE bridge"
                    break
                if kind == EVENT:
                    if msg[1] == "disc":
                        self._conns.discard(msg[2])
                    self.events.put(tuple(msg[1:]))
                elif kind == OK or kind == ERR:
                    slot = self._wait.get(msg[1]) if len(msg) > 2 else None
                    if slot is not None:
                        if kind == OK:
                            slot[1] = msg[2]
                        else:
                            slot[2] = str(msg[2])
                            if len(msg) > 3 and isinstance(msg[3], str):
                                slot[3] = msg[3]
                        slot[0].set()
                elif kind == KEYREQ:
                    await self._keystore(msg)
                else:
                    self.errors += 1
        except (EOFError, OSError, BleError) as e:  # BleError: a key-store reply too long to frame
            why = "BLE bridge connection lost: %s" % (e,)
        self._lost(why)

    async def _keystore(self, msg):
        rid, op = msg[1], msg[2]
        b = self.bonds
        result = None
        if b is not None:
            if op == "get":
                result = b.get(msg[3])
            elif op == "set":
                b.set(msg[3], msg[4])
            elif op == "delete":
                b.delete(msg[3])
            elif op == "all":
                result = b.all()
        w = self._w
        if w is not None:
            w.write(frame([KEYREP, rid, result]))
            await w.drain()
