# A TCP connection on the modem's own IP stack, as an asyncio-style stream
# (read, readexactly, write, drain, close), for boards without network.PPP
# (Pico W releases, the virtual hub) and for a second, simultaneous bearer
# beside Wi-Fi: a socket opened here can only leave through the modem, so it
# is bound to the cellular bearer by construction, never to a default route.
#
# Why polling with a hint: the modem announces data with a URC
# (+CADATAIND / +QIURC "recv") once, and keeps it until read. The reader asks
# with the profile's read command (AT+CARECV / AT+QIRD), and waits for the
# next announcement only when a read came back empty; a lost URC costs at
# most poll_ms, never the data.

import asyncio

from hub.bearers import BearerError
from hub.bearers.at import ATError, wait_ms

READ = 512  # bytes asked for per read command (the framer takes up to atparse.MAX_DATA)
SEND = 1024  # bytes per send command


class ModemSocket:
    def __init__(self, cell, cid, poll_ms=1000):
        self.cell = cell
        self.at = cell.at
        self.p = cell.profile
        self.cid = cid
        self.poll_ms = poll_ms
        self.buf = bytearray()
        self.out = bytearray()
        self.ev = asyncio.Event()  # data announced, or peer closed
        self.wlock = asyncio.Lock()  # one drain at a time (below)
        self.peer_closed = False
        self.closed = False
        self.tx = 0
        self.rx = 0

    # URC hooks, called by the bearer's URC router
    def announced(self):
        self.ev.set()

    def gone(self):
        self.peer_closed = True
        self.ev.set()

    async def _fill(self):
        while not self.buf:
            if self.closed:
                raise OSError("socket %d is closed" % self.cid)
            self.ev.clear()
            # The peer's close can be announced while this read is answered (data
            # and close arrive together): only an empty read asked after the close
            # was known proves the modem holds nothing more.
            closed = self.peer_closed
            try:
                r = await self.at.cmd(self.p["sock_read"](self.cid, READ), 5000)
            except ATError as e:
                raise OSError("read on socket %d: %s" % (self.cid, e))
            if r.data:
                self.buf.extend(r.data)
                self.rx += len(r.data)
                return
            if closed:
                return  # and nothing left at the modem: end of stream
            if self.peer_closed:
                continue  # closed meanwhile: ask once more for what came before the close
            try:
                await wait_ms(self.ev.wait(), self.poll_ms)
            except asyncio.TimeoutError:
                pass

    async def read(self, n=-1):
        """Up to n bytes (all buffered if n < 0); b"" at the end of the stream."""
        if not self.buf:
            await self._fill()
        if n < 0 or n >= len(self.buf):
            d = bytes(self.buf)
            self.buf[:] = b""
            return d
        d = bytes(self.buf[:n])
        self.buf[:n] = b""
        return d

    async def readexactly(self, n):
        out = b""
        while len(out) < n:
            d = await self.read(n - len(out))
            if not d:
                raise EOFError("socket %d closed after %d of %d bytes" % (self.cid, len(out), n))
            out += d
        return out

    def write(self, data):
        self.out.extend(data)

    async def drain(self):
        # Two tasks drain one socket (the MQTT client's publisher, and its reader
        # answering the receiver's QoS 1 acks with PUBACKs): without the lock the
        # second took the chunk the first was still sending and sent it again, and
        # the server saw the same TLS record twice ("bad record mac").
        async with self.wlock:
            while self.out:
                if self.closed or self.peer_closed:
                    raise OSError("socket %d is closed" % self.cid)
                chunk = bytes(self.out[:SEND])
                try:
                    await self.at.cmd(self.p["sock_send"](self.cid, len(chunk)), 10000, payload=chunk)
                except ATError as e:
                    raise OSError("send on socket %d: %s" % (self.cid, e))
                self.out[:len(chunk)] = b""
                self.tx += len(chunk)

    async def aclose(self):
        self.closed = True
        self.ev.set()
        # The cid is given back only once the modem was told (or said it has no such
        # socket): a close that failed on the way (a MemoryError in the engine) keeps it
        # out of use and is tried again by the next aclose (down() calls it for every
        # socket left). Given back at once, it was opened again while the modem still
        # held it open, and every later open of it was refused.
        if self.cell.sockets.get(self.cid) is self:
            try:
                await self.at.cmd(self.p["sock_close"](self.cid), 10000)
            except ATError:
                pass  # the modem closed it already
            if self.cell.sockets.get(self.cid) is self:
                del self.cell.sockets[self.cid]

    def close(self):
        # asyncio streams close synchronously; the modem is told in the background
        if not self.closed:
            asyncio.create_task(self.aclose())

    async def wait_closed(self):
        pass


async def open_socket(cell, host, port, timeout_ms=30000):
    """Open a TCP connection through the modem; returns a ModemSocket."""
    p = cell.profile
    cid = 0
    while cid in cell.sockets:
        cid += 1
    if cid >= p["sock_max"]:
        raise BearerError("no-socket", "all %d modem sockets are in use" % p["sock_max"])
    sock = ModemSocket(cell, cid)
    cell.sockets[cid] = sock
    at = cell.at
    try:
        at.urcs[:] = []
        r = await at.cmd(p["sock_open"](cid, host, port), timeout_ms)
        ln = r.line(p["sock_open_prefix"])
        while ln is None:  # BG96: the result comes later, as a URC
            u = await at.next_urc(timeout_ms)
            if u is None:
                raise BearerError("connect-failed", "no answer to opening %s:%d" % (host, port))
            if u.startswith(p["sock_open_prefix"]):
                ln = u
        err = ln.split(":", 1)[1].split(",")
        if int(err[0]) != cid or int(err[1]) != 0:
            raise BearerError("connect-failed", "%s:%d refused (%s)" % (host, port, ln))
    except ATError as e:
        if e.kind == "timeout":
            # The answer was lost (a reply dropped by a reader short of heap, a slow
            # network), not necessarily the open: the modem may hold the socket, and would
            # refuse every later open of this cid. Told to close it, whatever it holds.
            try:
                await at.cmd(p["sock_close"](cid), 10000)
            except ATError:
                pass
        cell.sockets.pop(cid, None)
        raise BearerError("connect-failed", str(e))
    except BearerError:
        cell.sockets.pop(cid, None)
        raise
    return sock
