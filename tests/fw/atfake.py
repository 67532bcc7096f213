# A scripted modem as an in-memory asyncio stream, for the AT engine's
# tests on both runtimes (the real tty and simulator are in tests/test_modem.py).
# answers: {command: bytes to send back, or None for silence}.

import asyncio

try:
    from time import ticks_ms
except ImportError:
    import time as _time

    def ticks_ms():
        return int(_time.monotonic() * 1000)


class FakeModem:
    def __init__(self, answers, echo=False, on=True):
        self.answers = answers
        self.on = on  # a modem that is off hears nothing
        self.echo = echo
        self.inbox = bytearray()
        self.ev = asyncio.Event()
        self.line = bytearray()
        self.commands = []
        self.writes = []  # (ticks_ms, bytes)
        self.closed = False
        self.data_mode = False

    async def read(self, n):
        while not self.inbox:
            if self.closed:
                return b""
            self.ev.clear()
            await self.ev.wait()
        d = bytes(self.inbox[:n])
        self.inbox[:n] = b""
        return d

    def write(self, data):
        self.writes.append((ticks_ms(), bytes(data)))
        if not self.on:
            return
        if data == b"+++":
            self.data_mode = False
            return  # the escape is not a command line
        if self.data_mode:
            return  # data to the network, not commands
        for b in data:
            if b == 13:
                cmd = bytes(self.line).decode()
                self.line[:] = b""
                self.commands.append(cmd)
                if self.echo:
                    self.push(cmd.encode() + b"\r")
                a = self.answers.get(cmd, b"\r\nERROR\r\n")
                if callable(a):
                    a = a(self)
                if a is not None:
                    self.push(a)
                    self.data_mode = a.startswith(b"\r\nCONNECT")
            else:
                self.line.append(b)

    async def drain(self):
        pass

    def push(self, data):
        self.inbox.extend(data)
        self.ev.set()

    def close(self):
        self.closed = True
        self.ev.set()
