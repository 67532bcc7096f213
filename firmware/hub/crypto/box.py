# crypto_secretbox (XSalsa20-Poly1305) and crypto_box (X25519 +
# XSalsa20-Poly1305) of NaCl, byte-identical to libsodium.
#
# Boxes are in the combined ("easy") layout: the 16-byte Poly1305 tag,
# then the ciphertext, as libsodium's crypto_secretbox_easy and
# crypto_box_easy and pynacl's SecretBox/Box (which put the nonce first).
# The keystream's first 32 bytes are the one-time Poly1305 key; the
# message is XORed with the rest, so a box is the message length + 16.
#
# Boxer seals many boxes under one key whose nonces share their first 16
# bytes (HSalsa20's input): one HSalsa20 for all of them, and in place in
# the caller's buffer with working memory kept in the object, so that a
# sealed record (hub.seal) allocates nothing of its own size.

from hub.crypto import CryptoError, check_len, ct, salsa20
from hub.crypto.poly1305 import Poly1305

KEY_BYTES = 32
NONCE_BYTES = 24
TAG_BYTES = 16
_ZERO8 = bytes(8)
_ZERO16 = bytes(16)


def _xor_after_first_32(st, blk, mv, n):
    # XOR mv[0:n] with the keystream from byte 32 on; blk gets keystream
    # block 0, whose first 32 bytes are the one-time Poly1305 key
    for i in range(64):
        blk[i] = 0
    salsa20.stream_xor_into(st, blk, 64)
    for i in range(min(32, n)):
        mv[i] ^= blk[32 + i]
    if n > 32:
        salsa20.stream_xor_into(st, mv[32:], n - 32)


class Boxer:
    """crypto_secretbox under one key for nonces that all begin with the same 16 bytes."""

    def __init__(self, key, prefix16):
        check_len("key", key, KEY_BYTES)
        check_len("nonce prefix", prefix16, 16)
        self._st = salsa20.state(salsa20.hsalsa20(key, prefix16), bytes(16))
        self._blk = bytearray(64)
        self._poly = Poly1305()

    def seal_into(self, buf, off, mlen, suffix8):
        """Seal in place: the message is at buf[off+16:off+16+mlen]; afterwards
        buf[off:off+16] is the tag and the ciphertext has replaced the message.
        The nonce is prefix16 + suffix8."""
        st = self._st
        st[24:32] = suffix8
        st[32:40] = _ZERO8  # block counter
        mv = memoryview(buf)[off:off + 16 + mlen]
        msg = mv[16:]
        blk = self._blk
        _xor_after_first_32(st, blk, msg, mlen)
        p = self._poly
        p.init(blk)
        p.update(msg)
        p.digest_into(mv, 0)
        for i in range(64):
            blk[i] = 0

    def open_into(self, buf, off, clen, suffix8):
        """Open in place a box (tag + ciphertext) at buf[off:off+clen]: True and the
        message at buf[off+16:off+clen], or False and the box wiped."""
        st = self._st
        st[24:32] = suffix8
        st[32:40] = _ZERO8
        mv = memoryview(buf)[off:off + clen]
        n = clen - TAG_BYTES
        blk = self._blk
        for i in range(64):
            blk[i] = 0
        salsa20.stream_xor_into(st, blk, 64)
        p = self._poly
        p.init(blk)
        p.update(mv[16:])
        tag = bytearray(16)
        p.digest_into(tag)
        ok = ct.eq(tag, mv[0:16])
        if ok:
            msg = mv[16:]
            for i in range(min(32, n)):
                msg[i] ^= blk[32 + i]
            if n > 32:
                salsa20.stream_xor_into(st, msg[32:], n - 32)
        else:
            for i in range(clen):
                mv[i] = 0
        for i in range(64):
            blk[i] = 0
        return ok


def seal_into(buf, off, mlen, nonce, key):
    """Seal in place: the message is at buf[off+16:off+16+mlen]; afterwards
    buf[off:off+16] is the tag and the ciphertext has replaced the message."""
    check_len("nonce", nonce, NONCE_BYTES)
    Boxer(key, nonce[0:16]).seal_into(buf, off, mlen, nonce[16:24])


def secretbox(m, nonce, key):
    """crypto_secretbox_easy: tag + ciphertext of m under a 32-byte key and 24-byte nonce."""
    check_len("key", key, KEY_BYTES)
    check_len("nonce", nonce, NONCE_BYTES)
    n = len(m)
    buf = bytearray(16 + n)
    buf[16:] = m
    seal_into(buf, 0, n, nonce, key)
    return bytes(buf)


def secretbox_open(c, nonce, key):
    """crypto_secretbox_open_easy: the message, or CryptoError if the box does not verify."""
    check_len("key", key, KEY_BYTES)
    check_len("nonce", nonce, NONCE_BYTES)
    if len(c) < TAG_BYTES:
        raise CryptoError("box of %d bytes is shorter than its tag" % len(c))
    buf = bytearray(c)
    if not Boxer(key, nonce[0:16]).open_into(buf, 0, len(buf), nonce[16:24]):
        raise CryptoError("box does not verify (forged, tampered or wrong key)")
    return bytes(memoryview(buf)[TAG_BYTES:])


def _x25519():
    # Imported when a key is made, not with the box: a hub seals every record
    # with a Boxer but needs X25519 once an epoch (hub.seal drops it after).
    # Its viper kernel (_vfe) stays loaded: each load of native code takes new
    # executable RAM that is given back only at a reset (ports/esp32/main.c,
    # esp_native_code_commit), so dropping it would leak it once an epoch
    # (and the unix port under test ran out of heap when it was dropped).
    from hub.crypto import x25519
    return x25519


def public_key(sk):
    """The public key of a secret key (crypto_scalarmult_base)."""
    return _x25519().scalarmult_base(sk)


def beforenm(pk, sk):
    """crypto_box_beforenm: the shared key of a public and a secret key, HSalsa20 of their X25519."""
    check_len("public key", pk, 32)
    check_len("secret key", sk, 32)
    return salsa20.hsalsa20(_x25519().scalarmult(sk, pk), _ZERO16)


def box(m, nonce, pk, sk):
    """crypto_box_easy: m sealed from the owner of sk to the owner of pk."""
    return secretbox(m, nonce, beforenm(pk, sk))


box_afternm = secretbox  # crypto_box_easy_afternm: with a beforenm() key
box_open_afternm = secretbox_open  # crypto_box_open_easy_afternm
