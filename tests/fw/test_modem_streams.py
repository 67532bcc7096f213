# Two tasks writing one stream, on both runtimes: the MQTT client's publisher
# and its reader (which answers the receiver's QoS 1 acks with PUBACKs) both
# drain the same TLS stream over the same modem socket. Each byte must leave
# once and in order: a chunk taken twice broke the TLS record MAC at the
# broker ("bad record mac", seen on a 1.2 KB batch over a modem socket).

import asyncio

from atfake import FakeModem
from test_cellular import OK, sim7080g_answers

from hub.bearers import BearerError
from hub.bearers.cellular import Cellular
from hub.bearers.tlsstream import TlsStream

# The scaffolding (test_cellular's scripted answers, the fake modem's buffers, the 1.5 KB
# payloads compared whole) shares the unix port's heap with the bearer: at 100k a 1.5 KB
# block was once not to be had in a CI run on a loaded machine. The bearer's own heap is
# measured in tests/bench (bench_modem), not here.
MPY_HEAP = "160k"


class SendModem(FakeModem):
    """AT+CASEND=<cid>,<n>: the '> ' prompt, then n bytes of payload, then OK."""

    def __init__(self, answers):
        FakeModem.__init__(self, answers)
        self.collect = 0
        self.sent = bytearray()

    def write(self, data):
        data = bytes(data)
        if self.collect:
            take = data[:self.collect]
            self.sent.extend(take)
            self.collect -= len(take)
            if not self.collect:
                self.push(OK)
            data = data[len(take):]
            if not data:
                return
        if data.startswith(b"AT+CASEND=0,"):
            self.commands.append(data.decode().strip())
            self.collect = int(data[12:].strip())
            self.push(b"\r\n> ")
            return
        FakeModem.write(self, data)


def test_two_drains_on_one_modem_socket_send_each_byte_once():
    a = sim7080g_answers()
    a['AT+CAOPEN=0,0,"TCP","10.0.0.1",8883'] = b"\r\n+CAOPEN: 0,0\r\n" + OK
    a["AT+CACLOSE=0"] = OK
    m = SendModem(a)
    first = bytes(i % 251 for i in range(1500))  # two send commands (1024 + 476)
    second = b"\x40\x02\x00\x05"  # a PUBACK

    async def main():
        c = Cellular("cell0", m, {"apn": "internet"}, "sim7080g")
        await c.up()
        s = await c.open("10.0.0.1", 8883)
        s.write(first)
        t = asyncio.create_task(s.drain())
        await asyncio.sleep(0)  # the first drain is sending its first chunk
        s.write(second)
        await s.drain()
        await t
        await s.aclose()
        c.at.stop()
        return s

    s = asyncio.run(main())
    assert bytes(m.sent) == first + second
    assert s.tx == len(first) + len(second)
    assert [c for c in m.commands if c.startswith("AT+CASEND")] == ["AT+CASEND=0,1024", "AT+CASEND=0,480"]


class FakeTls:
    """What ctx.wrap_socket returns: each write becomes one 'record' in the pipe
    (a marker byte, the length, the plaintext), as mbedTLS writes a record per call."""

    def __init__(self, pipe):
        self.pipe = pipe

    def write(self, buf):
        n = len(buf)
        self.pipe.write(bytes([0x17, n >> 8, n & 0xFF]) + bytes(buf))
        return n

    def read(self, n):
        return None

    def close(self):
        pass


class FakeCtx:
    def wrap_socket(self, pipe, server_side=False, do_handshake_on_connect=True, server_hostname=None):
        return FakeTls(pipe)


class SlowStream:
    """The socket under TLS: drain() takes its time, as a modem's send commands do."""

    def __init__(self):
        self.got = bytearray()
        self.pending = bytearray()

    def write(self, data):
        self.pending.extend(data)

    async def drain(self):
        await asyncio.sleep(0.02)
        self.got.extend(self.pending)
        self.pending[:] = b""


def plaintext(records):
    out = b""
    i = 0
    while i < len(records):
        assert records[i] == 0x17
        n = (records[i + 1] << 8) | records[i + 2]
        out += bytes(records[i + 3:i + 3 + n])
        i += 3 + n
    return out


def test_two_drains_on_one_tls_stream_encrypt_each_byte_once():
    first = b"P" * 1200
    second = b"\x40\x02\x00\x05"

    async def main():
        under = SlowStream()
        ts = TlsStream(under, FakeCtx(), "broker")
        ts.write(first)
        t = asyncio.create_task(ts.drain())
        await asyncio.sleep(0)  # the first drain waits on the socket
        ts.write(second)
        await ts.drain()
        await t
        return under

    under = asyncio.run(main())
    assert plaintext(under.got) == first + second


class NoRoomCtx:
    """wrap_socket as modtls_mbedtls.c does it when mbedtls_ssl_setup finds no room for its
    buffers: OSError(ENOMEM)."""

    def wrap_socket(self, pipe, server_side=False, do_handshake_on_connect=True, server_hostname=None):
        import errno
        raise OSError(errno.ENOMEM)


def _one_socket_modem(open_answer):
    """A SIM7080G whose open of cid 0 to 10.0.0.1:8883 answers open_answer (None: never)."""
    a = sim7080g_answers()
    a['AT+CAOPEN=0,0,"TCP","10.0.0.1",8883'] = open_answer
    a["AT+CACLOSE=0"] = OK
    return SendModem(a)


async def _cell0(m):
    c = Cellular("cell0", m, {"apn": "internet"}, "sim7080g")
    await c.up()
    return c


def test_a_tls_stream_that_finds_no_room_closes_its_modem_socket():
    # Each such failure kept one of the modem's sockets open: after a few (a stress on a
    # small heap reached cid 4) every open was refused, the bearer dead though its link was fine.
    m = _one_socket_modem(b"\r\n+CAOPEN: 0,0\r\n" + OK)

    async def main():
        c = await _cell0(m)
        try:
            await c.open("10.0.0.1", 8883, ssl=NoRoomCtx())
            raise AssertionError("opened")
        except OSError as e:
            assert e.args[0] == 12, e
        left = dict(c.sockets)
        c.at.stop()
        return left

    assert asyncio.run(main()) == {}
    assert "AT+CACLOSE=0" in m.commands


def test_a_close_that_fails_on_the_way_keeps_its_socket_out_of_use_until_it_is_done():
    # A MemoryError while closing (the engine's command): the cid was given back at once and
    # opened again while the modem still held it open, and every later open was refused (a
    # stress of two TLS sessions on a 160k heap: cellular publishing stopped for good).
    a = sim7080g_answers()
    for cid in (0, 1):
        a['AT+CAOPEN=%d,0,"TCP","10.0.0.1",8883' % cid] = b"\r\n+CAOPEN: %d,0\r\n" % cid + OK
        a["AT+CACLOSE=%d" % cid] = OK
    m = SendModem(a)

    async def main():
        c = await _cell0(m)
        s = await c.open("10.0.0.1", 8883)
        cmd = c.at.cmd

        async def no_room(command, *args, **kw):
            c.at.cmd = cmd
            raise MemoryError("memory allocation failed, allocating 192 bytes")

        c.at.cmd = no_room
        try:
            await s.aclose()
            raise AssertionError("closed")
        except MemoryError:
            pass
        assert list(c.sockets) == [0] and s.closed   # not told: not given back
        t = await c.open("10.0.0.1", 8883)
        assert t.cid == 1
        await s.aclose()                              # tried again: told, given back
        assert list(c.sockets) == [1]
        await t.aclose()
        c.at.stop()
        return c

    c = asyncio.run(main())
    assert c.sockets == {} and [x for x in m.commands if x.startswith("AT+CACLOSE")] == ["AT+CACLOSE=0", "AT+CACLOSE=1"]


def test_an_open_whose_answer_was_lost_is_closed_at_the_modem():
    # The modem may have opened it: left so, every later open of that cid was refused.
    from hub.bearers.sockets import open_socket
    m = _one_socket_modem(None)  # the answer to the open never comes

    async def main():
        c = await _cell0(m)
        try:
            await open_socket(c, "10.0.0.1", 8883, timeout_ms=200)
            raise AssertionError("opened")
        except BearerError as e:
            assert e.reason == "connect-failed", e
        c.at.stop()
        return c

    c = asyncio.run(main())
    assert c.sockets == {} and m.commands[-1] == "AT+CACLOSE=0", m.commands[-3:]
