# MQTT 3.1.1 (OASIS standard, 2014): a pure packet codec and a small
# asyncio client over the port's streams, with TLS (server verified).
#
# Only what the uplink needs: CONNECT/CONNACK, PUBLISH QoS 0/1 both ways,
# PUBACK, SUBSCRIBE/SUBACK, PINGREQ/PINGRESP, DISCONNECT. Link health is
# judged by traffic received (`last_rx`), never by interface flags.
#
# One module: the codec, the client and the failure causes share the packet
# constants and are always loaded together by the uplink; split, the board
# would pay a second module's tables for nothing.
import errno
import struct

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from hub.ticks import ticks_diff, ticks_ms
from hub.errors import HubError

CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
SUBSCRIBE = const(8)
SUBACK = const(9)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

MAX_PACKET = const(65536)  # what we accept from the broker (acks are small)


class MQTTError(HubError):
    pass


# ---------------------------------------------------------------- why a session ended

MEMORY = "memory"    # the heap had no room (on the unix port mbedTLS's buffers come from it too)
TLS = "tls"          # the handshake or a record failed: a certificate, a bad MAC, an alert
REFUSED = "refused"  # the broker's CONNACK said no, or the peer refused the TCP connection
TIMEOUT = "timeout"  # a deadline passed: connecting, an acknowledgement, a silent link
LOST = "lost"        # the link closed or was reset under the session
BEARER = "bearer"    # the bearer could not be brought up or give a stream
PROTOCOL = "protocol"  # the broker sent what MQTT does not allow
OTHER = "other"


def cause(e):
    """One word for why a session ended with exception e (the constants above), for
    counters and the status line: a technician tells a hub short of heap from a dead
    link by it. Decided by class and errno, never by the message: mbedTLS reports
    its own failures as OSError with its negative error code (and a certificate it
    cannot verify as a plain ValueError, extmod/modtls_mbedtls.c), the system's as
    OSError with a positive errno. A BearerError says by its reason; the broker's
    refusal is an MQTTError with `rc`."""
    if isinstance(e, MemoryError):
        return MEMORY
    try:
        import asyncio
    except ImportError:  # pragma: no cover
        import uasyncio as asyncio
    if isinstance(e, asyncio.TimeoutError):  # before OSError: CPython's is one
        return TIMEOUT
    if isinstance(e, EOFError):
        return LOST
    if isinstance(e, OSError):
        n = e.args[0] if e.args else None  # the errno (MicroPython's e.errno; CPython's is None for OSError(n))
        if not isinstance(n, int):
            return OTHER
        if n == errno.ENOMEM:
            return MEMORY  # mbedTLS's MBEDTLS_ERR_SSL_ALLOC_FAILED arrives as this
        if n < 0:
            return TLS
        if n == errno.ETIMEDOUT:
            return TIMEOUT
        if n == errno.ECONNREFUSED:
            return REFUSED
        if n in (errno.ECONNRESET, errno.ENOTCONN, errno.ECONNABORTED, 32):  # 32: EPIPE (no name on MicroPython)
            return LOST
        return OTHER
    if getattr(e, "rc", None) is not None:
        return REFUSED
    reason = getattr(e, "reason", None)  # a BearerError
    if reason is not None:
        return REFUSED if reason == "connect-failed" else BEARER
    if isinstance(e, MQTTError):
        return PROTOCOL
    if isinstance(e, ValueError) and not isinstance(e, HubError):
        return TLS
    return OTHER


def error_text(e, limit=80):
    """An exception as one short line for the status (type and message, cut to limit)."""
    if isinstance(e, OSError) and len(e.args) == 2:
        msg = "%s (%s)" % (e.args[1], e.args[0])  # MicroPython's str() would print the tuple
    else:
        msg = str(e)
    t = type(e).__name__
    return (t + ": " + msg if msg else t)[:limit]


# ---------------------------------------------------------------- codec (2.2, 3.x)

def _varlen(n):
    # 2.2.3 Remaining Length: 7 bits a byte, at most 4 bytes
    if n < 0 or n > 268435455:
        raise MQTTError("remaining length %d out of range" % n)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return out


def _str(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">H", len(s)) + s


def _packet(first, body):
    return bytes((first,)) + bytes(_varlen(len(body))) + body


def connect(client_id, keepalive=30, user=None, password=None, clean=True):
    """CONNECT (3.1): protocol level 4."""
    flags = 0x02 if clean else 0
    payload = _str(client_id)
    if user is not None:
        flags |= 0x80
        payload += _str(user)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
    return _packet(0x10, b"\x00\x04MQTT\x04" + bytes((flags,)) + struct.pack(">H", keepalive) + payload)


def publish_header(topic, n, qos=0, pid=0, dup=False, retain=False):
    """PUBLISH (3.3) up to its payload of n bytes, which the caller writes after
    it (no copy of a large payload); pid only for QoS 1."""
    if qos not in (0, 1):
        raise MQTTError("QoS %d not supported" % qos)
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    head = _str(topic)
    if qos:
        if not 0 < pid < 65536:
            raise MQTTError("packet id %d out of range" % pid)
        head += struct.pack(">H", pid)
    return bytes((first,)) + bytes(_varlen(len(head) + n)) + head


def publish(topic, payload, qos=0, pid=0, dup=False, retain=False):
    """A whole PUBLISH packet."""
    return publish_header(topic, len(payload), qos, pid, dup, retain) + bytes(payload)


def puback(pid):
    return struct.pack(">BBH", 0x40, 2, pid)


def subscribe(pid, topic, qos=1):
    """SUBSCRIBE (3.8) of one topic filter."""
    return _packet(0x82, struct.pack(">H", pid) + _str(topic) + bytes((qos,)))


def pingreq():
    return b"\xc0\x00"


def disconnect():
    return b"\xe0\x00"


def parse(first, body):
    """A received packet as a tuple: (CONNACK, session_present, rc), (PUBLISH,
    topic, payload, qos, pid, dup), (PUBACK, pid), (SUBACK, pid, codes),
    (PINGRESP,). Anything malformed raises MQTTError."""
    kind = first >> 4
    n = len(body)
    if kind == CONNACK:
        if n != 2:
            raise MQTTError("CONNACK of %d bytes" % n)
        return (CONNACK, body[0] & 1, body[1])
    if kind == PUBLISH:
        qos = (first >> 1) & 3
        if qos > 1:
            raise MQTTError("PUBLISH with QoS %d" % qos)
        if n < 2:
            raise MQTTError("PUBLISH too short")
        tl = (body[0] << 8) | body[1]
        i = 2 + tl
        if i > n:
            raise MQTTError("PUBLISH topic runs past the end")
        topic = bytes(body[2:i]).decode()
        pid = 0
        if qos:
            if i + 2 > n:
                raise MQTTError("PUBLISH without packet id")
            pid = (body[i] << 8) | body[i + 1]
            i += 2
        return (PUBLISH, topic, bytes(body[i:]), qos, pid, bool(first & 0x08))
    if kind == PUBACK:
        if n != 2:
            raise MQTTError("PUBACK of %d bytes" % n)
        return (PUBACK, (body[0] << 8) | body[1])
    if kind == SUBACK:
        if n < 3:
            raise MQTTError("SUBACK too short")
        return (SUBACK, (body[0] << 8) | body[1], bytes(body[2:]))
    if kind == PINGRESP:
        if n:
            raise MQTTError("PINGRESP with a body")
        return (PINGRESP,)
    raise MQTTError("unexpected packet type %d" % kind)


# ---------------------------------------------------------------- client

def wait_ms(asyncio, aw, ms):
    """aw with a timeout of ms milliseconds: wait_for_ms on MicroPython, wait_for on CPython
    (public: the uplink and the bearer manager wait the same way)."""
    f = getattr(asyncio, "wait_for_ms", None)
    return f(aw, ms) if f else asyncio.wait_for(aw, ms / 1000)


def tls_context(ca_der):
    """A client context that verifies the server against one DER CA certificate."""
    import tls
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    ctx.load_verify_locations(ca_der)  # the tls module takes the DER bytes, positional
    return ctx


def _quietly(obj, method):
    # obj.method() if there is an obj, whatever it raises: closing goes on past a task
    # already done or a socket already gone
    if obj is not None:
        try:
            getattr(obj, method)()
        except Exception:
            pass


class Client:
    """One MQTT session over asyncio streams. connect() opens it, then a reader
    task dispatches: PUBLISH to on_message(topic, payload), PUBACK to the
    waiting publish(). A dead link shows as OSError/MQTTError from the calls,
    or as `alive(timeout_ms)` turning false; the caller reconnects.
    on_lost(), when set, is called as the reader finds the link gone (a reset,
    an EOF), so that a caller waiting on its own event hears of it at once."""

    on_lost = None  # a class default: no slot in every client's dict

    def __init__(self, host, port, client_id, user=None, password=None, keepalive=30,
                 ssl=None, server_hostname=None, on_message=None, opener=None):
        self.host = host
        # opener(host, port, ssl, server_hostname) -> stream or (reader, writer):
        # a bearer's own path (hub/bearers), never the default route; None: asyncio's
        self.opener = opener
        self.port = port
        self.client_id = client_id
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.on_message = on_message
        self._r = self._w = None
        self._pid = 0
        self._acked = {}
        self._task = None
        self._ev = None
        self.last_rx = ticks_ms()
        self.last_tx = ticks_ms()
        self.connected = False
        self.error = None

    def _next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    async def _read_packet(self):
        r = self._r
        h = await r.readexactly(1)
        n = 0
        shift = 0
        while True:
            b = (await r.readexactly(1))[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MQTTError("remaining length longer than 4 bytes")
        if n > MAX_PACKET:
            raise MQTTError("packet of %d bytes from the broker" % n)
        body = await r.readexactly(n) if n else b""
        self.last_rx = ticks_ms()
        return parse(h[0], body)

    async def _send(self, data):
        # A link that takes nothing for 1.5 keepalive periods is as dead as one
        # that says nothing: without a bound, a full send buffer on a silent
        # link would hold the hub here forever.
        import asyncio
        self._w.write(data)
        try:
            await wait_ms(asyncio, self._w.drain(), self._dead_ms())
        except asyncio.TimeoutError:
            raise OSError(errno.ETIMEDOUT, "the link took nothing for %d ms" % self._dead_ms())
        self.last_tx = ticks_ms()

    def _dead_ms(self):
        return self.keepalive * 1500 if self.keepalive else 60000

    async def connect(self, timeout_ms=10000):
        import asyncio
        self.close()
        self.error = None  # a previous session's, not this one's
        self._ev = asyncio.Event()
        self._acked = {}
        if self.opener is not None:
            coro = self.opener(self.host, self.port, self.ssl, self.server_hostname)
        elif self.ssl is not None:
            coro = asyncio.open_connection(self.host, self.port, ssl=self.ssl,
                                           server_hostname=self.server_hostname or self.host)
        else:
            coro = asyncio.open_connection(self.host, self.port)
        rw = await wait_ms(asyncio, coro, timeout_ms)
        self._r, self._w = rw if isinstance(rw, tuple) else (rw, rw)
        await self._send(connect(self.client_id, self.keepalive, self.user, self.password))
        p = await wait_ms(asyncio, self._read_packet(), timeout_ms)
        if p[0] != CONNACK:
            raise MQTTError("expected CONNACK")
        if p[2]:
            e = MQTTError("broker refused the connection (return code %d)" % p[2])
            e.rc = p[2]  # 3.2.2.3: 4 bad user name or password, 5 not authorised
            raise e
        self.connected = True
        self.error = None
        self._task = asyncio.create_task(self._reader())

    async def _reader(self):
        try:
            while True:
                p = await self._read_packet()
                if p[0] == PUBLISH:
                    if p[3]:
                        await self._send(puback(p[4]))
                    if self.on_message:
                        self.on_message(p[1], p[2])
                elif p[0] in (PUBACK, SUBACK):
                    self._acked[p[1]] = p
                    self._ev.set()
        except Exception as e:  # the link is gone; the caller sees connected False
            self.error = e
            self.connected = False
            self._ev.set()
            if self.on_lost is not None:
                self.on_lost()

    async def _wait_ack(self, pid, timeout_ms):
        import asyncio
        t0 = ticks_ms()
        half = self.keepalive * 500 or timeout_ms
        while pid not in self._acked:
            if not self.connected:
                raise OSError(errno.ECONNRESET, "link lost while waiting for %d" % pid)
            if not self.alive():
                # judged by what is heard, even in the middle of a publish
                raise OSError(errno.ETIMEDOUT, "nothing heard from the broker for %d ms" % self.idle_ms())
            left = timeout_ms - ticks_diff(ticks_ms(), t0)
            if left <= 0:
                raise OSError(errno.ETIMEDOUT, "no acknowledgement of packet %d" % pid)
            if self.idle_ms() >= half and ticks_diff(ticks_ms(), self.last_tx) >= half:
                await self.ping()  # a slow broker proves it is there; a dead link stays silent
            self._ev.clear()
            try:
                await wait_ms(asyncio, self._ev.wait(), min(left, half // 2 + 1))
            except asyncio.TimeoutError:
                pass
        return self._acked.pop(pid)

    async def subscribe(self, topic, qos=1, timeout_ms=10000):
        pid = self._next_pid()
        await self._send(subscribe(pid, topic, qos))
        p = await self._wait_ack(pid, timeout_ms)
        if not p[2] or p[2][0] == 0x80:
            raise MQTTError("subscription to %s refused" % topic)

    async def publish(self, topic, payload, qos=1, timeout_ms=10000):
        """Publish; with QoS 1 return once the broker has taken it (PUBACK)."""
        if not self.connected:
            raise OSError(errno.ENOTCONN, "not connected")
        pid = self._next_pid() if qos else 0
        self._w.write(publish_header(topic, len(payload), qos, pid))
        await self._send(payload)
        if not qos:
            return
        await self._wait_ack(pid, timeout_ms)

    async def ping(self):
        await self._send(pingreq())

    def idle_ms(self):
        return ticks_diff(ticks_ms(), self.last_rx)

    def alive(self):
        """Heard from the broker within 1.5 keepalive periods (3.1.2.10)."""
        return self.connected and (not self.keepalive or self.idle_ms() < self.keepalive * 1500)

    async def disconnect(self):
        if self.connected:
            try:
                await self._send(disconnect())
            except Exception:
                pass
        self.close()

    def close(self):
        self.connected = False
        _quietly(self._task, "cancel")
        _quietly(self._w, "close")
        self._task = self._r = self._w = None
