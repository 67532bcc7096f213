# crypto_secretbox (XSalsa20-Poly1305) and crypto_box (X25519 +
# XSalsa20-Poly1305) of NaCl, byte-identical to libsodium.
#
# Boxes are in the combined ("easy") layout: the 16-byte Poly1305 tag,
# then the ciphertext, as libsodium's crypto_secretbox_easy and
# crypto_box_easy and pynacl's SecretBox/Box (which put the nonce first).
# The keystream's first 32 bytes are the one-time Poly1305 key; the
# message is XORed with the rest, so a box is the message length + 16.
#
# seal_into() seals in place in a caller's buffer, so that a sealed record
# (hub.seal) costs one allocation of its own size and no copy.

import os

from hub.crypto import CryptoError, check_len, ct, salsa20, x25519
from hub.crypto.poly1305 import Poly1305

KEY_BYTES = 32
NONCE_BYTES = 24
TAG_BYTES = 16
_ZERO16 = bytes(16)


def _xor_after_first_32(st, mv, n):
    # XOR mv[0:n] with the keystream from byte 32 on; returns keystream block 0,
    # whose first 32 bytes are the one-time Poly1305 key
    blk = bytearray(64)
    salsa20.stream_xor_into(st, blk, 64)
    for i in range(min(32, n)):
        mv[i] ^= blk[32 + i]
    if n > 32:
        salsa20.stream_xor_into(st, mv[32:], n - 32)
    return blk


def seal_into(buf, off, mlen, nonce, key):
    """Seal in place: the message is at buf[off+16:off+16+mlen]; afterwards
    buf[off:off+16] is the tag and the ciphertext has replaced the message."""
    mv = memoryview(buf)[off:off + 16 + mlen]
    msg = mv[16:]
    blk = _xor_after_first_32(salsa20.xsalsa20_state(key, nonce), msg, mlen)
    p = Poly1305(blk[0:32])
    p.update(msg)
    mv[0:16] = p.digest()
    for i in range(64):
        blk[i] = 0


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
    cv = memoryview(c)
    n = len(c) - TAG_BYTES
    buf = bytearray(cv[TAG_BYTES:])
    blk = _xor_after_first_32(salsa20.xsalsa20_state(key, nonce), memoryview(buf), n)
    p = Poly1305(blk[0:32])
    p.update(cv[TAG_BYTES:])
    ok = ct.eq(p.digest(), cv[0:TAG_BYTES])
    for i in range(64):
        blk[i] = 0
    if not ok:
        for i in range(n):
            buf[i] = 0
        raise CryptoError("box does not verify (forged, tampered or wrong key)")
    return bytes(buf)


def keypair(rng=os.urandom):
    """crypto_box_keypair: (public key, secret key), 32 bytes each."""
    sk = rng(32)
    return x25519.scalarmult_base(sk), sk


def public_key(sk):
    """The public key of a secret key (crypto_scalarmult_base)."""
    return x25519.scalarmult_base(sk)


def beforenm(pk, sk):
    """crypto_box_beforenm: the shared key of a public and a secret key, HSalsa20 of their X25519."""
    check_len("public key", pk, 32)
    check_len("secret key", sk, 32)
    return salsa20.hsalsa20(x25519.scalarmult(sk, pk), _ZERO16)


def box(m, nonce, pk, sk):
    """crypto_box_easy: m sealed from the owner of sk to the owner of pk."""
    return secretbox(m, nonce, beforenm(pk, sk))


def box_open(c, nonce, pk, sk):
    """crypto_box_open_easy: the message, or CryptoError."""
    return secretbox_open(c, nonce, beforenm(pk, sk))


box_afternm = secretbox  # crypto_box_easy_afternm: with a beforenm() key
box_open_afternm = secretbox_open  # crypto_box_open_easy_afternm
