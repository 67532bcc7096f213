"""A small CPython client of the BLE bridge protocol (docs/ble.md), for tests
and tools: asyncio, one connection, answers the bridge's key-store requests
from a dict (as the hub answers them from its sealed bond store).

    c = await BridgeClient.open(host, port)
    await c.request("scan", True, True)
    ev = await c.next_event("adv", timeout=5)
    h = await c.request("connect", addr7, 5000)
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

import cbor2

# The frame codes belong to the hub's end (firmware/hub/ble/bridge.py).
from hub.ble.bridge import ERR, EVENT, KEYREP, KEYREQ, OK, REQ
from samband.errors import SambandError


class BridgeRequestError(SambandError):
    """The bridge answered a request with an error frame (or the link went away);
    reason is the frame's reason word (hub.ble.KEY_MISSING ...) or None."""

    def __init__(self, msg: str, reason: str | None = None) -> None:
        super().__init__(msg)
        self.reason = reason


class BridgeClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.keys = {}            # addr7 -> opaque keys (the hub's bond store)
        self.keystore_log = []    # (op, addr7) of every key-store request
        self.events = asyncio.Queue()
        self.backlog = []
        self.closed = asyncio.Event()
        self._rid = 0
        self._wait = {}
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, host: str, port: int, hello: bytes = b"test-hub") -> BridgeClient:
        r, w = await asyncio.open_connection(host, port)
        c = cls(r, w)
        if hello is not None:
            c.info = await c.request("hello", hello)
        return c

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def send(self, msg: list[Any]) -> None:
        body = cbor2.dumps(msg, canonical=True)
        self.writer.write(struct.pack(">H", len(body)) + body)

    async def request(self, op: str, *args: Any, timeout: float = 30) -> Any:
        self._rid += 1
        rid = self._rid
        fut = asyncio.get_running_loop().create_future()
        self._wait[rid] = fut
        self.send([REQ, rid, op] + list(args))
        try:
            ok, value, reason = await asyncio.wait_for(fut, timeout)
        finally:
            self._wait.pop(rid, None)
        if not ok:
            raise BridgeRequestError(value, reason)
        return value

    async def next_event(self, kind: str | None = None, timeout: float = 10,
                         where: Callable[[tuple[Any, ...]], bool] | None = None) -> tuple[Any, ...]:
        """The oldest event of this kind (matching `where`), as a tuple without the 3.
        Events passed over stay in the backlog for later calls."""
        def match(ev: tuple[Any, ...]) -> bool:
            return (kind is None or ev[0] == kind) and (where is None or where(ev))

        for i, ev in enumerate(self.backlog):
            if match(ev):
                return self.backlog.pop(i)

        async def get():
            while True:
                ev = await self.events.get()
                if match(ev):
                    return ev
                self.backlog.append(ev)
        return await asyncio.wait_for(get(), timeout)

    def drain_events(self) -> list[tuple[Any, ...]]:
        """Every event received so far (the backlog too), removed."""
        out, self.backlog = self.backlog, []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    async def _read(self) -> None:
        try:
            while True:
                hdr = await self.reader.readexactly(2)
                body = await self.reader.readexactly(struct.unpack(">H", hdr)[0])
                msg = cbor2.loads(body)
                kind = msg[0]
                if kind in (OK, ERR):
                    fut = self._wait.get(msg[1])
                    if fut is not None and not fut.done():
                        fut.set_result((kind == OK, msg[2], msg[3] if kind == ERR and len(msg) > 3 else None))
                elif kind == EVENT:
                    self.events.put_nowait(tuple(msg[1:]))
                elif kind == KEYREQ:
                    self._keystore(msg)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            for fut in self._wait.values():
                if not fut.done():
                    fut.set_result((False, "bridge connection closed", None))

    def _keystore(self, msg: list[Any]) -> None:
        rid, op = msg[1], msg[2]
        result = None
        if op == "get":
            result = self.keys.get(bytes(msg[3]))
        elif op == "set":
            self.keys[bytes(msg[3])] = bytes(msg[4])
        elif op == "delete":
            self.keys.pop(bytes(msg[3]), None)
        elif op == "all":
            result = [[a, k] for a, k in sorted(self.keys.items())]
        self.keystore_log.append((op, bytes(msg[3]) if len(msg) > 3 else None))
        self.send([KEYREP, rid, result])

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
        self._task.cancel()

    # ------------------------------------------------------------ conveniences
    async def discover(self, conn: int) -> dict[Any, tuple[int, int, Any]]:
        """{uuid: (value_handle, props, cccd)} of every characteristic (first one of a uuid wins)."""
        out = {}
        for svc in await self.request("discover", conn):
            for uuid, vh, props, cccd in svc[3]:
                out.setdefault(uuid, (vh, props, cccd))
        return out
