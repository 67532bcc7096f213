# The technician's requests on the hub's console, answered while the hub runs.
#
# Why: a board's console is also its REPL, and reaching the REPL means a
# Ctrl-C that stops the application - a hub checked with `mpremote` or the
# raw REPL has stopped collecting until someone resets it. So the running
# application reads its own console: one line "?<command> [argument]" is a
# request, answered by one line - "STATUS {...}" for status (the same line
# the hub prints every few seconds), "OK <command> {...}" or
# "ERR <command> <reason>" for the others. Anything else typed is ignored and
# counted; Ctrl-C still reaches the REPL for deploy and provisioning.
#
# Reading: byte by byte from sys.stdin.buffer through asyncio's poller. Each
# read(1) happens only once the port's poll says a byte is waiting
# (mp_hal_stdio_poll in ports/esp32 and ports/rp2 mphalport.c; the unix port
# polls fd 0), so the loop never blocks on a half-sent line; the binary
# buffer, not text-mode sys.stdin, so a stray non-UTF-8 byte cannot make a
# read wait for continuation bytes (py/stream.c). Lines are bounded.

import sys

MAX_LINE = 96
COMMANDS = ("status", "pair", "blink", "help")


def parse(line):
    """A request line to (command, argument or None), or None if it is not a
    request. Pure: bytes or str in, no I/O."""
    if isinstance(line, bytes):
        try:
            line = line.decode()
        except UnicodeError:
            return None
    line = line.strip()
    if not line.startswith("?") or len(line) < 2:
        return None
    parts = line[1:].split(None, 1)
    return (parts[0], parts[1].strip() if len(parts) > 1 else None)


class Console:
    def __init__(self, hub, out=None):
        self.hub = hub
        self.out = out or (lambda s: print(s))
        self.requests = 0
        self.ignored = 0
        self.too_long = 0

    def answer(self, cmd, arg):
        """Do one request; returns the answer line (status prints its own)."""
        self.requests += 1
        try:
            if cmd == "status":
                self.hub.emit_status()
                return None
            if cmd == "pair":
                return self._pair(arg)
            if cmd == "blink":
                return self._blink(arg)
            if cmd == "help":
                return 'OK help {"commands": [%s]}' % ", ".join('"%s"' % c for c in COMMANDS)
            return "ERR %s unknown command; ?help lists them" % cmd
        except ValueError as e:
            return "ERR %s %s" % (cmd, e)

    def _number(self, arg, lo, hi, what):
        try:
            n = int(arg)
        except (TypeError, ValueError):
            raise ValueError("want %s as a whole number" % what)
        if not lo <= n <= hi:
            raise ValueError("%s must be %d..%d" % (what, lo, hi))
        return n

    def _pair(self, arg):
        c = self.hub.collector
        if c is None:
            return "ERR pair no BLE collector on this hub (see its problems in ?status)"
        s = self._number(arg, 1, 3600, "seconds")
        c.open_pairing(s)
        return 'OK pair {"seconds": %d}' % s

    def _blink(self, arg):
        import asyncio
        n = self._number(arg if arg is not None else "5", 1, 50, "times")
        asyncio.create_task(self._flash_led(n))
        return 'OK blink {"times": %d}' % n

    async def _flash_led(self, n):
        import asyncio
        port = self.hub.port
        led = getattr(self.hub, "led", None)
        if led is not None:
            led.busy = True  # the status pattern waits until the technician has seen this
        try:
            for _ in range(n):
                port.led(True)
                await asyncio.sleep_ms(200)
                port.led(False)
                await asyncio.sleep_ms(200)
        finally:
            if led is not None:
                led.busy = False
        self.hub.blinks = getattr(self.hub, "blinks", 0) + n

    def feed_line(self, raw):
        req = parse(raw)
        if req is None:
            if raw.strip():
                self.ignored += 1
            return
        line = self.answer(*req)
        if line is not None:
            self.out(line)

    async def run(self, stream=None):
        import asyncio
        if stream is None:
            stream = asyncio.StreamReader(sys.stdin.buffer)
        buf = bytearray()
        dropping = False
        while True:
            b = await stream.read(1)
            if not b:  # end of input (a virtual hub's host went away): nothing more will come
                await asyncio.sleep_ms(1000)
                continue
            if b in (b"\n", b"\r"):
                if not dropping and buf:
                    self.feed_line(bytes(buf))
                buf = bytearray()
                dropping = False
            elif dropping:
                continue
            elif len(buf) >= MAX_LINE:
                self.too_long += 1
                dropping = True
                buf = bytearray()
            else:
                buf.extend(b)
