# The pipe under mbedTLS (hub/bearers/tlsstream.py) on both runtimes: mbedTLS
# calls its readinto and write from inside C (extmod/modtls_mbedtls.c's socket
# callbacks), where a Python exception would unwind through mbedTLS with a
# longjmp, mid-record. So the pipe never raises there: a failure (a MemoryError
# when its buffer cannot grow, the heap mbedTLS's own buffers come from) becomes
# an errno for mbedTLS, and the stream raises the kept exception itself, so the
# bearer manager counts a hub short of heap as "memory", not a dead link.
import asyncio
import errno

from fwtest import IS_MPY

from hub import mqtt
from hub.bearers import tlsstream


class Raised(AssertionError):
    pass


def _callback(fn, *args):
    # What modtls_mbedtls.c's _mbedtls_ssl_send/_recv do with the pipe's answer, through
    # py/modio.c: None is "want read", n >= 0 bytes, a negative errno an error mbedTLS
    # passes up (OSError(errno) out of the TLS socket's read or write). Anything raised
    # would have crossed mbedTLS's C frames: here it fails the test instead.
    try:
        return fn(*args)
    except BaseException as e:  # noqa - exactly what must not happen
        raise Raised("raised into mbedTLS: %r" % (e,)) from None


class FakeMbedTls:
    """ctx.wrap_socket's object: a write is one record (marker, length, plaintext) handed
    to the pipe's write; a read takes what the pipe has."""

    def __init__(self, pipe):
        self.pipe = pipe

    def write(self, buf):
        n = len(buf)
        r = _callback(self.pipe.write, bytes([0x17, n >> 8, n & 0xFF]) + bytes(buf))
        if r is not None and r < 0:
            raise OSError(-r)
        return n

    def read(self, n):
        b = bytearray(n)
        r = _callback(self.pipe.readinto, b)
        if r is None:
            return None
        if r < 0:
            raise OSError(-r)
        return bytes(b[:r])

    def close(self):
        pass


class FakeCtx:
    def wrap_socket(self, pipe, server_side=False, do_handshake_on_connect=True, server_hostname=None):
        return FakeMbedTls(pipe)


class Under:
    """The modem socket under TLS: has data to give, records what it was sent, closes."""

    def __init__(self, data=b""):
        self.data = data
        self.sent = bytearray()
        self.closed = False

    def write(self, d):
        self.sent.extend(d)

    async def drain(self):
        pass

    async def read(self, n):
        d, self.data = self.data[:n], self.data[n:]
        return d

    async def aclose(self):
        self.closed = True

    def close(self):
        self.closed = True


class NoRoom:
    """A buffer that cannot grow or be copied: what a full heap does to a bytearray."""

    def __len__(self):
        return 64

    def extend(self, b):
        raise MemoryError("memory allocation failed, allocating %d bytes" % len(b))

    def __getitem__(self, i):
        raise MemoryError("memory allocation failed")


def _session_error(coro):
    try:
        asyncio.run(coro)
    except Exception as e:  # noqa - the error is what is checked
        return e
    raise AssertionError("no error")


def test_a_pipe_that_cannot_grow_tells_mbedtls_an_errno_and_the_stream_raises_memory():
    under = Under()
    ts = tlsstream.TlsStream(under, FakeCtx(), "broker")
    ts.p.outbuf = NoRoom()

    async def publish():
        ts.write(b"P" * 1500)  # a batch: its record cannot be kept for the socket
        await ts.drain()

    e = _session_error(publish())
    assert isinstance(e, MemoryError) and isinstance(ts.p.err, MemoryError), repr(e)
    assert mqtt.cause(e) == mqtt.MEMORY
    assert under.closed and ts.failed.startswith("TLS: ")
    e = _session_error(ts.drain() if ts.out else ts.read(1))  # the stream stays failed
    assert isinstance(e, OSError) and "TLS: " in str(e)


def test_a_pipe_that_cannot_copy_what_came_in_does_not_raise_into_mbedtls():
    under = Under(b"\x17\x00\x02hi")
    ts = tlsstream.TlsStream(under, FakeCtx(), "broker")

    async def receive():
        await ts._more()          # the socket's bytes are in the pipe
        ts.p.inbuf = NoRoom()     # and cannot be handed over
        return await ts.read(16)

    e = _session_error(receive())
    assert isinstance(e, MemoryError), repr(e)
    assert mqtt.cause(e) == mqtt.MEMORY and under.closed


def test_the_pipe_answers_an_errno_for_any_failure_and_keeps_the_first():
    p = tlsstream._Pipe()
    p.outbuf = None   # a bug, not the heap: still never raised into mbedTLS
    assert p.write(b"x") == -errno.EIO and isinstance(p.err, AttributeError)
    p.outbuf = NoRoom()
    assert p.write(b"x") == -errno.ENOMEM and isinstance(p.err, AttributeError)  # the first is kept
    p.err = None
    p.inbuf = bytearray(b"abc")
    b = bytearray(2)
    assert p.readinto(b) == 2 and b == bytearray(b"ab") and p.inbuf == bytearray(b"c")
    assert p.readinto(bytearray(0)) is None and p.err is None


def test_the_real_heap_locked_under_the_pipe():
    # On the unix port, with the heap itself full (locked): the pipe's buffer cannot grow
    # and mbedTLS gets ENOMEM back, never the MemoryError.
    if not IS_MPY:
        return
    import micropython
    p = tlsstream._Pipe()
    rec = bytes(1500)
    micropython.heap_lock()
    try:
        r = p.write(rec)
    finally:
        micropython.heap_unlock()
    assert r == -errno.ENOMEM and isinstance(p.err, MemoryError), (r, p.err)
    p.err = None
    p.inbuf.extend(b"0123456789")
    b = bytearray(4)
    micropython.heap_lock()
    try:
        r = p.readinto(b)  # the copy of the slice needs the heap
    finally:
        micropython.heap_unlock()
    assert r == -errno.ENOMEM and isinstance(p.err, MemoryError), (r, p.err)
