# TLS (MicroPython's `tls`, mbedTLS) over any asyncio-style stream, such as a
# socket on the modem's own IP stack (hub/bearers/sockets.py), so that the hub
# verifies the server against its own pinned CA on cellular as on Wi-Fi,
# instead of trusting a TLS stack in the modem.
#
# Why a pipe: mbedTLS wants a socket-like object it can read and write
# without blocking. _Pipe gives it the bytes received so far (None when there
# are none, which mbedTLS takes as "want read") and keeps what it writes; the
# async methods below move those bytes to and from the real stream and call
# mbedTLS again. The handshake runs inside the first write (or read), driven
# the same way: MicroPython's tls offers no separate handshake call that
# works without blocking (and cipher() before it crashes the interpreter).
# A server the hub cannot verify fails that first call with OSError("TLS: ...")
# and the modem socket is closed at once, not leaked.

import errno
import io

_VERIFY_FAILED = -0x2700  # mbedTLS's MBEDTLS_ERR_X509_CERT_VERIFY_FAILED


class _Pipe(io.IOBase):
    # mbedTLS calls readinto and write from inside its own C code (the socket
    # callbacks of extmod/modtls_mbedtls.c, through py/modio.c's iobase_read_write,
    # neither with an nlr handler of its own). An exception raised here would
    # unwind through mbedTLS mid-record with a longjmp: its own error paths never
    # run, and what it holds then (a record half flushed, the handshake's state)
    # is undefined. So neither raises: a failure (a MemoryError: both grow a
    # buffer from the heap mbedTLS's buffers come from) is kept in `err` and
    # mbedTLS is given an errno instead, which it unwinds from as from a socket
    # error; TlsStream then raises the kept exception itself.
    def __init__(self):
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.err = None  # set here, so that keeping an error needs no room in the heap

    def readinto(self, buf):
        try:
            n = min(len(buf), len(self.inbuf))
            if not n:
                return None  # EAGAIN for mbedTLS: we fetch more and call it again
            buf[:n] = self.inbuf[:n]
            self.inbuf[:n] = b""
            return n
        except Exception as e:
            return self._failed(e)

    def write(self, buf):
        try:
            self.outbuf.extend(buf)
            return len(buf)
        except Exception as e:
            return self._failed(e)

    def _failed(self, e):
        if self.err is None:
            self.err = e
        return -errno.ENOMEM if isinstance(e, MemoryError) else -errno.EIO

    def ioctl(self, req, arg):
        return 0


class TlsStream:
    """read/readexactly/write/drain/close over TLS on `stream`."""

    def __init__(self, stream, ctx, server_hostname):
        self.s = stream
        self.p = _Pipe()
        self.t = ctx.wrap_socket(self.p, server_side=False, do_handshake_on_connect=False,
                                 server_hostname=server_hostname)
        self.out = bytearray()
        self.eof = False
        self.failed = None

    async def _flush(self):
        if self.p.outbuf:
            d = bytes(self.p.outbuf)
            self.p.outbuf[:] = b""
            self.s.write(d)
            await self.s.drain()

    async def _more(self):
        d = await self.s.read(1024)
        if not d:
            self.eof = True
            return False
        self.p.inbuf.extend(d)
        return True

    async def _fail(self, e):
        # The session is over either way; what is raised keeps what the failure was, so
        # that the bearer manager counts it by cause (hub.mqtt.cause): what the pipe kept
        # is the real failure, raised as it was (mbedTLS saw only its errno), a MemoryError stays one (a hub
        # short of heap, not a broken link), an OSError keeps its errno (mbedTLS's codes
        # are negative, ENOMEM is its allocation failure), a certificate mbedTLS could not
        # verify (a ValueError) is X509_CERT_VERIFY_FAILED.
        kept = self.p.err
        if kept is not None:
            e = kept
        self.failed = "TLS: %s" % (str(e).strip() or type(e).__name__)
        try:
            await self.s.aclose()
        except Exception:
            pass
        if kept is not None or isinstance(e, MemoryError):
            raise e
        n = e.args[0] if isinstance(e, OSError) and e.args else None  # its errno
        raise OSError(n if isinstance(n, int) else _VERIFY_FAILED, self.failed)

    async def read(self, n=512):
        while True:
            if self.failed:
                raise OSError(self.failed)
            try:
                d = self.t.read(n)
            except Exception as e:  # mbedTLS: a bad certificate, a bad record
                await self._fail(e)
            await self._flush()  # alerts, renegotiation, TLS 1.3 tickets
            if d is not None:
                return d
            if self.eof or not await self._more():
                return b""

    async def readexactly(self, n):
        out = b""
        while len(out) < n:
            d = await self.read(n - len(out))
            if not d:
                raise EOFError("TLS stream closed after %d of %d bytes" % (len(out), n))
            out += d
        return out

    def write(self, data):
        self.out.extend(data)

    async def drain(self):
        # What mbedTLS took leaves `out` before the next await: a second task draining
        # meanwhile (the reader's PUBACK beside a publish) must not encrypt it again.
        while self.out:
            if self.failed:
                raise OSError(self.failed)
            try:
                n = self.t.write(self.out)
            except Exception as e:
                await self._fail(e)
            if n:
                self.out[:n] = b""
            await self._flush()
            if n is None and self.out:
                if not await self._more():
                    raise OSError("connection closed while sending over TLS")

    def close(self):
        try:
            self.t.close()
        except OSError:
            pass
        self.s.close()

    async def wait_closed(self):
        pass
