# Salsa20/20, HSalsa20 and XSalsa20 as NaCl and libsodium define them
# (Bernstein, "Salsa20 specification" and "Extending the Salsa20 nonce").
#
# The state is a bytearray of 33 little-endian 32-bit words:
#   0..15   the input block: constants, key, nonce, 64-bit block counter
#   16..31  the last output block (keystream)
#   32      1: Salsa20 (add the input block), 0: the bare core (HSalsa20)
# One kernel call turns n bytes of src into dst (src XOR keystream) and
# advances the counter; the viper twin in _vsalsa.py does it on
# MicroPython, _xor_py below everywhere else (and in tests).

import struct
import sys

from hub.crypto import check_len

_ZERO64 = bytes(64)


def _xor_py(st, src, dst, n):
    w = list(struct.unpack_from("<16I", st, 0))
    feed = st[128]
    pos = 0
    while pos < n:
        x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15 = w
        for _ in range(10):
            t = (x0 + x12) & 0xFFFFFFFF
            x4 ^= ((t << 7) & 0xFFFFFFFF) | (t >> 25)
            t = (x4 + x0) & 0xFFFFFFFF
            x8 ^= ((t << 9) & 0xFFFFFFFF) | (t >> 23)
            t = (x8 + x4) & 0xFFFFFFFF
            x12 ^= ((t << 13) & 0xFFFFFFFF) | (t >> 19)
            t = (x12 + x8) & 0xFFFFFFFF
            x0 ^= ((t << 18) & 0xFFFFFFFF) | (t >> 14)
            t = (x5 + x1) & 0xFFFFFFFF
            x9 ^= ((t << 7) & 0xFFFFFFFF) | (t >> 25)
            t = (x9 + x5) & 0xFFFFFFFF
            x13 ^= ((t << 9) & 0xFFFFFFFF) | (t >> 23)
            t = (x13 + x9) & 0xFFFFFFFF
            x1 ^= ((t << 13) & 0xFFFFFFFF) | (t >> 19)
            t = (x1 + x13) & 0xFFFFFFFF
            x5 ^= ((t << 18) & 0xFFFFFFFF) | (t >> 14)
            t = (x10 + x6) & 0xFFFFFFFF
            x14 ^= ((t << 7) & 0xFFFFFFFF) | (t >> 25)
            t = (x14 + x10) & 0xFFFFFFFF
            x2 ^= ((t << 9) & 0xFFFFFFFF) | (t >> 23)
            t = (x2 + x14) & 0xFFFFFFFF
            x6 ^= ((t << 13) & 0xFFFFFFFF) | (t >> 19)
            t = (x6 + x2) & 0xFFFFFFFF
            x10 ^= ((t << 18) & 0xFFFFFFFF) | (t >> 14)
            t = (x15 + x11) & 0xFFFFFFFF
            x3 ^= ((t << 7) & 0xFFFFFFFF) | (t >> 25)
            t = (x3 + x15) & 0xFFFFFFFF
            x7 ^= ((t << 9) & 0xFFFFFFFF) | (t >> 23)
            t = (x7 + x3) & 0xFFFFFFFF
            x11 ^= ((t << 13) & 0xFFFFFFFF) | (t >> 19)
            t = (x11 + x7) & 0xFFFFFFFF
            x15 ^= ((t << 18) & 0xFFFFFFFF) | (t >> 14)
            t = (x0 + x3) & 0xFFFFFFFF
            x1 ^= ((t << 7) & 0xFFFFFFFF) | (t >> 25)
            t = (x1 + x0) & 0xFFFFFFFF
            x2 ^= ((t << 9) & 0xFFFFFFFF) | (t >> 23)
            t = (x2 + x1) & 0xFFFFFFFF
            x3 ^= ((t << 13) & 0xFFFFFFFF) | (t >> 19)
            t = (x3 + x2) & 0xFFFFFFFF
            x0 ^= ((t << 18) & 0xFFFFFFFF) | (t >> 14)
            t = (x5 + x4) & 0xFFFFFFFF
            x6 ^= ((t << 7) & 0xFFFFFFFF) | (t >> 25)
            t = (x6 + x5) & 0xFFFFFFFF
            x7 ^= ((t << 9) & 0xFFFFFFFF) | (t >> 23)
            t = (x7 + x6) & 0xFFFFFFFF
            x4 ^= ((t << 13) & 0xFFFFFFFF) | (t >> 19)
            t = (x4 + x7) & 0xFFFFFFFF
            x5 ^= ((t << 18) & 0xFFFFFFFF) | (t >> 14)
            t = (x10 + x9) & 0xFFFFFFFF
            x11 ^= ((t << 7) & 0xFFFFFFFF) | (t >> 25)
            t = (x11 + x10) & 0xFFFFFFFF
            x8 ^= ((t << 9) & 0xFFFFFFFF) | (t >> 23)
            t = (x8 + x11) & 0xFFFFFFFF
            x9 ^= ((t << 13) & 0xFFFFFFFF) | (t >> 19)
            t = (x9 + x8) & 0xFFFFFFFF
            x10 ^= ((t << 18) & 0xFFFFFFFF) | (t >> 14)
            t = (x15 + x14) & 0xFFFFFFFF
            x12 ^= ((t << 7) & 0xFFFFFFFF) | (t >> 25)
            t = (x12 + x15) & 0xFFFFFFFF
            x13 ^= ((t << 9) & 0xFFFFFFFF) | (t >> 23)
            t = (x13 + x12) & 0xFFFFFFFF
            x14 ^= ((t << 13) & 0xFFFFFFFF) | (t >> 19)
            t = (x14 + x13) & 0xFFFFFFFF
            x15 ^= ((t << 18) & 0xFFFFFFFF) | (t >> 14)
        out = [x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15]
        if feed:
            for i in range(16):
                out[i] = (out[i] + w[i]) & 0xFFFFFFFF
        struct.pack_into("<16I", st, 64, *out)
        m = min(64, n - pos)
        for j in range(m):
            dst[pos + j] = src[pos + j] ^ st[64 + j]
        pos += 64
        w[8] = (w[8] + 1) & 0xFFFFFFFF
        if w[8] == 0:
            w[9] = (w[9] + 1) & 0xFFFFFFFF
    struct.pack_into("<II", st, 32, w[8], w[9])


try:
    if sys.byteorder != "little":
        raise ImportError("the viper kernel reads words in little-endian order")
    from hub.crypto._vsalsa import xor as _xor
except ImportError:  # CPython, or no native emitter
    _xor = _xor_py


def state(key, in16, feed=1):
    """The 33-word state for a 32-byte key and 16 bytes of nonce (+ counter)."""
    st = bytearray(132)
    st[0:4] = b"expa"
    st[4:20] = key[0:16]
    st[20:24] = b"nd 3"
    st[24:40] = in16
    st[40:44] = b"2-by"
    st[44:60] = key[16:32]
    st[60:64] = b"te k"
    st[128] = feed
    return st


def hsalsa20(key, in16):
    """HSalsa20: a 32-byte subkey from a 32-byte key and 16 bytes of input (crypto_core_hsalsa20)."""
    check_len("key", key, 32)
    check_len("HSalsa20 input", in16, 16)
    st = state(key, in16, 0)
    out = bytearray(64)
    _xor(st, _ZERO64, out, 64)
    # words 0, 5, 10, 15, 6, 7, 8, 9 of the core's output
    return bytes(out[0:4] + out[20:24] + out[40:44] + out[60:64] + out[24:40])


def stream_xor_into(st, buf, n):
    """XOR n bytes of buf (bytearray or memoryview) in place with the keystream of state st."""
    _xor(st, buf, buf, n)


def xsalsa20_state(key, nonce):
    """The Salsa20 state of XSalsa20 for a 32-byte key and 24-byte nonce, at block 0."""
    check_len("key", key, 32)
    check_len("nonce", nonce, 24)
    return state(hsalsa20(key, nonce[0:16]), nonce[16:24] + bytes(8))
