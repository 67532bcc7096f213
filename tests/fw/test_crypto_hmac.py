# HMAC-SHA256 against RFC 4231, and the constant-time helpers.

from crypto_vectors import HMAC_VECTORS
from fwtest import Rand
from hub.crypto import ct, hmac


def test_rfc4231_vectors():
    for key, data, mac in HMAC_VECTORS:
        assert hmac.hmac_sha256(key, data) == mac
        assert hmac.hmac_sha256(key, data[:7], data[7:]) == mac
        h = hmac.HMAC(key)
        for i in range(0, len(data), 10):
            h.update(data[i:i + 10])
        assert h.digest() == mac


def test_verify_truncated_tags():
    key, data, mac = HMAC_VECTORS[1]
    assert hmac.verify(mac, key, data)
    assert hmac.verify(mac[:16], key, data)
    assert not hmac.verify(mac[:15], key, data)
    bad = bytearray(mac[:16])
    bad[15] ^= 0x80
    assert not hmac.verify(bytes(bad), key, data)


def test_constant_time_helpers():
    r = Rand(17)
    a = r.bytes(32)
    assert ct.eq(a, bytes(a)) and ct.eq(b"", b"")
    assert not ct.eq(a, a[:31])
    for i in range(32):
        b = bytearray(a)
        b[i] ^= 1
        assert not ct.eq(a, bytes(b))
    assert ct.is_zero(bytes(32)) and not ct.is_zero(b"\x00\x01")
    assert ct.select(1, b"ab", b"cd") == b"ab"
    assert ct.select(0, b"ab", b"cd") == b"cd"
