# An asyncio AT command engine over one byte stream (machine.UART on a
# board, a pty on the virtual hub; see hub/bearers/serial.py).
#
# Why it is shaped so: a modem answers one command at a time, so commands
# are serialised by a lock; each has its own deadline, because a network
# search (AT+COPS, AT+CGATT) legitimately takes 60-90 s while a plain AT
# answers in milliseconds; URCs arrive at any moment, inside replies too,
# so one reader task owns the stream and routes every line (atparse.Framer);
# a modem that reboots (brown-out, watchdog) says RDY and forgets its
# settings, so the command in flight fails at once with "rebooted" instead
# of waiting out its timeout, and the owner is told.
#
# The stream needs: async read(n) -> bytes (b"" = closed), write(b), async drain().

import asyncio

from hub.bearers import atparse
from hub.bearers.atparse import DATA, FINAL, LINE, PROMPT, STRAY, URC

from hub.ticks import sleep_ms, ticks_diff, ticks_ms
from hub.errors import HubError

DEFAULT_TIMEOUT_MS = 2000
URC_QUEUE = 16  # URCs kept for a poller; the oldest go first (counted)


def wait_ms(aw, ms):
    f = getattr(asyncio, "wait_for_ms", None)
    return f(aw, ms) if f else asyncio.wait_for(aw, ms / 1000)


class ATError(HubError):
    """A command that did not succeed. kind: 'error' (ERROR / NO CARRIER ...),
    'cme' / 'cms' (with code), 'timeout', 'rebooted', 'closed'."""

    def __init__(self, command, kind, code=None, line=None):
        self.command = command
        self.kind = kind
        self.code = code
        self.line = line
        if kind == "timeout":
            msg = "%s: no answer" % command
        elif kind in ("cme", "cms"):
            msg = "%s: +%s ERROR: %s" % (command, kind.upper(), code)
        else:
            msg = "%s: %s" % (command, line or kind)
        super().__init__(msg)


class Reply:
    __slots__ = ("lines", "final", "ok", "cme", "cms", "prompt", "data")

    def __init__(self):
        self.data = b""  # socket data of a read reply
        self.lines = []
        self.final = None
        self.ok = False
        self.cme = None
        self.cms = None
        self.prompt = False

    def line(self, prefix):
        """The first intermediate line that starts with prefix, or None."""
        for ln in self.lines:
            if ln.startswith(prefix):
                return ln
        return None


class Engine:
    """AT commands over a stream. on_urc(line) is called for every URC (it
    must not block); the last URC_QUEUE URCs are also kept in `urcs`."""

    def __init__(self, stream, on_urc=None, on_reboot=None):
        self.s = stream
        self.on_urc = on_urc
        self.on_reboot = on_reboot
        self.framer = atparse.Framer()
        self.urcs = []
        self.lock = asyncio.Lock()
        self._reply = None
        self._ev = asyncio.Event()
        self._urc_ev = asyncio.Event()
        self._task = None
        self.closed = None  # the exception that ended the reader, if it ended
        self.data_mode = False
        self.data = bytearray()  # bytes received in data mode (bounded)
        self.data_max = 4096
        # counters (telemetry and the bench)
        self.tx = 0
        self.rx = 0
        self.commands = 0
        self.timeouts = 0
        self.reboots = 0
        self.stray = 0
        self.urc_dropped = 0
        self.data_dropped = 0
        self.memory_errors = 0  # chunks the reader had no heap for (dropped; the engine goes on)

    def start(self):
        if self._task is None:
            self._task = asyncio.create_task(self._reader())

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None

    @property
    def garbage(self):
        return self.framer.garbage + self.framer.overlong

    async def _reader(self):
        try:
            while True:
                try:
                    data = await self.s.read(256)
                    if not data:
                        raise OSError("modem stream closed")
                    self.rx += len(data)
                    if self.data_mode:
                        self._data(data)
                        continue
                    for kind, text in self.framer.feed(data):
                        self._event(kind, text)
                except MemoryError:
                    # The heap, not the stream: a chunk lost (a reply with it, which its
                    # command's deadline covers, as it covers line noise), never the engine.
                    # Taken for a closed stream, it left the bearer "up" with every command
                    # failing at once, for good (found by a stress of two TLS sessions on a
                    # small heap: every modem socket open failed until the hub restarted).
                    self.memory_errors += 1
                    await sleep_ms(20)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the stream is gone: every waiter learns it now
            self.closed = e
            self._ev.set()
            self._urc_ev.set()

    def _data(self, data):
        room = self.data_max - len(self.data)
        if len(data) > room:
            self.data_dropped += len(data) - room
            data = data[:room]
        self.data.extend(data)

    def _event(self, kind, text):
        r = self._reply
        if kind == URC or (kind == STRAY and atparse.is_boot(text)):
            self._urc(text)
        elif r is None or kind == STRAY:
            self.stray += 1
        elif kind == LINE:
            if len(r.lines) < 16:
                r.lines.append(text)
        elif kind == DATA:
            r.data = text
        elif kind == PROMPT:
            r.prompt = True
            self._ev.set()
        elif kind == FINAL:
            ok, cme, cms = atparse.final(text)
            r.final, r.ok, r.cme, r.cms = text, ok, cme, cms
            self._ev.set()

    def _urc(self, text):
        if atparse.is_boot(text):
            self.reboots += 1
            self.data_mode = False
            if self._reply is not None and self._reply.final is None:
                self._reply.final = "rebooted"
                self._ev.set()
            if self.on_reboot:
                self.on_reboot()
        if len(self.urcs) >= URC_QUEUE:
            self.urcs.pop(0)
            self.urc_dropped += 1
        self.urcs.append(text)
        self._urc_ev.set()
        if self.on_urc:
            self.on_urc(text)

    async def _send(self, data):
        self.tx += len(data)
        self.s.write(data)
        await self.s.drain()

    async def cmd(self, command, timeout_ms=DEFAULT_TIMEOUT_MS, check=True, payload=None):
        """Send one command and wait for its final result; returns a Reply.
        With check (the default) anything but success raises ATError. With
        payload, wait for the '> ' prompt, then send the payload (AT+CASEND)."""
        async with self.lock:
            if self.closed is not None:
                raise ATError(command, "closed", line=str(self.closed))
            if self.data_mode:
                raise ATError(command, "data-mode")
            r = Reply()
            self._reply = r
            self.framer.expect(command)
            self._ev.clear()
            self.commands += 1
            t0 = ticks_ms()
            try:
                await self._send(command.encode() + b"\r")
                while r.final is None:
                    left = timeout_ms - ticks_diff(ticks_ms(), t0)
                    if left <= 0:
                        raise asyncio.TimeoutError
                    await wait_ms(self._ev.wait(), left)
                    self._ev.clear()
                    if self.closed is not None and r.final is None:
                        raise ATError(command, "closed", line=str(self.closed))
                    if r.prompt and payload is not None:
                        r.prompt = False
                        await self._send(payload)
                        payload = None
            except asyncio.TimeoutError:
                self.timeouts += 1
                raise ATError(command, "timeout")
            finally:
                self._reply = None
                self.framer.expect(None)
        if r.final == "rebooted":
            raise ATError(command, "rebooted")
        if r.final.startswith("CONNECT"):
            self.data_mode = True
        if check and not r.ok:
            if r.cme is not None:
                raise ATError(command, "cme", r.cme, r.final)
            if r.cms is not None:
                raise ATError(command, "cms", r.cms, r.final)
            raise ATError(command, "error", line=r.final)
        return r

    async def query(self, command, timeout_ms=DEFAULT_TIMEOUT_MS):
        """The information line of a query ('AT+CSQ' -> '+CSQ: 20,99'); ATError if none."""
        r = await self.cmd(command, timeout_ms)
        p = atparse.prefix_of(command)
        ln = r.line(p) if p else (r.lines[0] if r.lines else None)
        if ln is None:
            raise ATError(command, "error", line="no %s line in the reply" % p)
        return ln

    async def sync(self, tries=5, timeout_ms=500):
        """AT until the modem answers OK (it may still be booting, or be in
        data mode after our own reboot); True if it did."""
        for _ in range(tries):
            try:
                await self.cmd("AT", timeout_ms)
                return True
            except ATError as e:
                if e.kind == "closed":
                    raise
        return False

    async def escape(self, guard_ms=1000, timeout_ms=2000):
        """Back from data mode to command mode: silence for the guard time,
        '+++' with no line end, silence again (V.250 6.3.1; S12 = 1 s by default),
        then the modem says OK. Data already received stays in `data`."""
        async with self.lock:
            await sleep_ms(guard_ms)
            self.data_mode = False
            r = Reply()
            self._reply = r
            self.framer.expect("+++")
            self._ev.clear()
            try:
                self.tx += 3
                self.s.write(b"+++")
                await self.s.drain()
                await sleep_ms(guard_ms)
                t0 = ticks_ms()
                while r.final is None:
                    left = timeout_ms - ticks_diff(ticks_ms(), t0)
                    if left <= 0:
                        self.timeouts += 1
                        raise ATError("+++", "timeout")
                    try:
                        await wait_ms(self._ev.wait(), left)
                    except asyncio.TimeoutError:
                        pass
                    self._ev.clear()
            finally:
                self._reply = None
                self.framer.expect(None)
            if r.final == "rebooted":
                raise ATError("+++", "rebooted")
            return r.final

    def take_data(self):
        d = bytes(self.data)
        self.data[:] = b""
        return d

    async def next_urc(self, timeout_ms):
        """Wait for the next URC (or one already queued); returns it or None on timeout."""
        if not self.urcs:
            self._urc_ev.clear()
            try:
                await wait_ms(self._urc_ev.wait(), timeout_ms)
            except asyncio.TimeoutError:
                return None
        if self.urcs:
            return self.urcs.pop(0)
        return None
