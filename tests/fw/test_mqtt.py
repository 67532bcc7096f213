# MQTT 3.1.1 codec (hub/mqtt.py) and the uplink's ack format (hub/uplink.py),
# on both runtimes.
from fwtest import raises

from hub import mqtt

MPY_HEAP = "200k"  # hub.uplink brings hub.seal and its crypto
from hub.uplink import decode_ack, encode_ack, topics


def read_length(data, i=1):
    """(remaining length, index after it) from a fixed header in data, or None if incomplete:
    the hub reads it from its stream in MQTT._read_packet; tests read it from bytes."""
    n = shift = 0
    while i < len(data):
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7
        if shift > 21:
            raise mqtt.MQTTError("remaining length longer than 4 bytes")
    return None


def _split(pkt):
    n, i = read_length(pkt)
    assert i + n == len(pkt)
    return pkt[0], pkt[i:]


def test_connect_bytes():
    p = mqtt.connect("hub-01", 30, "01", "pw")
    # 3.1.2: protocol name, level 4, flags user+password+clean, keepalive 30
    assert p[:2] == b"\x10\x1a"
    assert p[2:12] == b"\x00\x04MQTT\x04\xc2\x00\x1e"
    assert p[12:] == b"\x00\x06hub-01\x00\x0201\x00\x02pw"
    assert mqtt.connect("x")[9] == 0x02  # no login: clean session only


def test_remaining_length_boundaries():
    for n, enc in ((0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
                   (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"), (268435455, b"\xff\xff\xff\x7f")):
        assert bytes(mqtt._varlen(n)) == enc
        assert read_length(b"\x30" + enc) == (n, 1 + len(enc))
    assert read_length(b"\x30\x80") is None  # incomplete
    raises(mqtt.MQTTError, read_length, b"\x30\x80\x80\x80\x80\x01")
    raises(mqtt.MQTTError, mqtt._varlen, 268435456)


def test_publish_roundtrip():
    for qos, pid, payload in ((0, 0, b""), (1, 1, b"abc"), (1, 65535, bytes(300)), (0, 0, bytes(2000))):
        p = mqtt.publish("samband/0102/up", payload, qos, pid, dup=qos == 1)
        first, body = _split(p)
        k, topic, got, q, i, dup = mqtt.parse(first, body)
        assert (k, topic, got, q, i, dup) == (mqtt.PUBLISH, "samband/0102/up", payload, qos, pid, qos == 1)
    raises(mqtt.MQTTError, mqtt.publish, "t", b"", 2, 1)
    raises(mqtt.MQTTError, mqtt.publish, "t", b"", 1, 0)


def test_small_packets():
    assert mqtt.puback(258) == b"\x40\x02\x01\x02"
    assert mqtt.parse(0x40, b"\x01\x02") == (mqtt.PUBACK, 258)
    assert mqtt.subscribe(7, "a/b", 1) == b"\x82\x08\x00\x07\x00\x03a/b\x01"
    assert mqtt.parse(0x90, b"\x00\x07\x01") == (mqtt.SUBACK, 7, b"\x01")
    assert mqtt.parse(0x20, b"\x00\x05") == (mqtt.CONNACK, 0, 5)
    assert mqtt.parse(0xD0, b"") == (mqtt.PINGRESP,)
    assert mqtt.pingreq() == b"\xc0\x00" and mqtt.disconnect() == b"\xe0\x00"


def test_malformed_packets():
    for first, body in ((0x20, b"\x00"), (0x40, b"\x01"), (0x90, b"\x00"), (0xD0, b"\x00"),
                        (0x32, b"\x00\x05ab"), (0x32, b"\x00\x01a\x00"), (0x34, b"\x00\x01a\x00\x01"),
                        (0x30, b"\x00"), (0xA0, b"")):
        raises(mqtt.MQTTError, mqtt.parse, first, body)


def test_ack_ranges():
    seqs = [5, 1, 2, 3, 9, 10, 7, 3]
    data = encode_ack(seqs)
    assert decode_ack(data) == [1, 2, 3, 5, 7, 9, 10]
    from hub import cbor
    assert cbor.loads(data) == [[1, 3], [5, 5], [7, 7], [9, 10]]
    assert decode_ack(encode_ack([])) == []
    for bad in ({1: 2}, [[3, 1]], [[1]], [["a", 2]], [[-1, 2]], [[0, 70000]]):
        raises(ValueError, decode_ack, cbor.dumps(bad))


def test_topics():
    assert topics("00005a4d00c7") == ("samband/00005a4d00c7/up", "samband/00005a4d00c7/ack",
                                      "samband/00005a4d00c7/status")


def test_session_failures_have_a_cause():
    # hub.mqtt.cause: the word the bearer manager counts a failed session under, by class
    # and errno (never the message): the forms each layer raises them in.
    import errno
    try:
        import asyncio
    except ImportError:  # pragma: no cover
        import uasyncio as asyncio
    from hub.bearers import BearerError
    refused = mqtt.MQTTError("broker refused the connection (return code 5)")
    refused.rc = 5
    cases = [
        (MemoryError(), mqtt.MEMORY),                                # the heap, anywhere in the session
        (OSError(errno.ENOMEM), mqtt.MEMORY),                        # mbedTLS's MBEDTLS_ERR_SSL_ALLOC_FAILED
        (OSError(-0x2700, "TLS: certificate"), mqtt.TLS),            # an mbedTLS code (hub.bearers.tlsstream)
        (OSError(-0x7780, "SSL - A fatal alert"), mqtt.TLS),
        (ValueError("The certificate is not correctly signed"), mqtt.TLS),  # modtls_mbedtls.c's verify text
        (refused, mqtt.REFUSED),
        (OSError(errno.ECONNREFUSED), mqtt.REFUSED),
        (BearerError("connect-failed", "127.0.0.1:1 refused"), mqtt.REFUSED),  # the modem's socket
        (BearerError("no-sim"), mqtt.BEARER),
        (asyncio.TimeoutError(), mqtt.TIMEOUT),                      # connect's deadline
        (OSError(errno.ETIMEDOUT, "no acknowledgement of packet 3"), mqtt.TIMEOUT),
        (OSError(errno.ECONNRESET, "link lost"), mqtt.LOST),
        (OSError(errno.ENOTCONN, "not connected"), mqtt.LOST),
        (EOFError("TLS stream closed after 0 of 1 bytes"), mqtt.LOST),
        (mqtt.MQTTError("expected CONNACK"), mqtt.PROTOCOL),
        (OSError("no errno, a message"), mqtt.OTHER),
        (KeyError("x"), mqtt.OTHER),
    ]
    for e, want in cases:
        assert mqtt.cause(e) == want, (e, mqtt.cause(e), want)
    # the status line's text: type and message, an OSError's errno after it, cut short
    assert mqtt.error_text(OSError(-0x2700, "TLS: bad")) == "OSError: TLS: bad (-9984)"
    assert mqtt.error_text(MemoryError()) == "MemoryError"
    assert len(mqtt.error_text(ValueError("x" * 200))) == 80


def test_client_timeouts_and_refusals_carry_their_cause():
    # the client's own failures say what they are: a refused CONNECT is REFUSED,
    # a publish on a closed session LOST (both raised before any I/O here)
    try:
        import asyncio
    except ImportError:  # pragma: no cover
        import uasyncio as asyncio

    class Stream:
        def __init__(self, replies):
            self.rx = replies

        async def readexactly(self, n):
            d, self.rx = self.rx[:n], self.rx[n:]
            return d

        def write(self, b):
            pass

        async def drain(self):
            pass

        def close(self):
            pass

    async def opener(host, port, ssl, name):
        return Stream(b"\x20\x02\x00\x05")  # CONNACK, return code 5: not authorised

    c = mqtt.Client("h", 1, "id", opener=opener)
    try:
        asyncio.run(c.connect(1000))
        raise AssertionError("connected")
    except mqtt.MQTTError as e:
        assert e.rc == 5 and mqtt.cause(e) == mqtt.REFUSED
    try:
        asyncio.run(c.publish("t", b"x"))
        raise AssertionError("published")
    except OSError as e:
        assert mqtt.cause(e) == mqtt.LOST
