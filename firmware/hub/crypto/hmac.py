# HMAC-SHA256 (RFC 2104) on hashlib.sha256, which MicroPython has on every
# port (in hardware on the ESP32). MicroPython's hash objects cannot be
# copied, so each digest() hashes the padded key again.

import hashlib

from hub.crypto import ct

DIGEST_BYTES = 32
_BLOCK = 64


def _pad(key, byte):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    out = bytearray(_BLOCK)
    for i in range(_BLOCK):
        out[i] = byte
    for i in range(len(key)):
        out[i] = key[i] ^ byte
    return out


class HMAC:
    """Incremental HMAC-SHA256: HMAC(key).update(data)... .digest()."""

    def __init__(self, key, data=None):
        self._outer = _pad(key, 0x5C)
        self._inner = hashlib.sha256(_pad(key, 0x36))
        if data is not None:
            self._inner.update(data)

    def update(self, data):
        self._inner.update(data)

    def digest(self):
        o = hashlib.sha256(self._outer)
        o.update(self._inner.digest())
        return o.digest()


def hmac_sha256(key, *parts):
    """HMAC-SHA256 of the concatenation of parts under key."""
    h = HMAC(key)
    for p in parts:
        h.update(p)
    return h.digest()


def verify(tag, key, *parts):
    """True iff tag (the full 32 bytes, or a truncation of them) is the HMAC of parts."""
    if not 16 <= len(tag) <= DIGEST_BYTES:
        return False
    return ct.eq(hmac_sha256(key, *parts)[:len(tag)], tag)
