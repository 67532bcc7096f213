# Salsa20, HSalsa20 and XSalsa20 against the NaCl test vectors; the viper
# kernel against its pure-Python twin. (tests/test_crypto_crosscheck.py
# compares with libsodium on random keys, nonces and counters.)

import hashlib

from crypto_vectors import (C131, CORE4_IN, CORE4_KEY, CORE4_OUT, FIRSTKEY, M131, NONCE, SECONDKEY, SHARED,
                            STREAM5_SHA256, STREAM7)
from crypto_extra import salsa20_xor, xsalsa20_xor
from fwtest import IS_MPY, Rand, raises
from hub.crypto import CryptoError, salsa20


def _le(b):
    n = 0
    for i in range(len(b) - 1, -1, -1):
        n = (n << 8) | b[i]
    return n


def test_core1_hsalsa20_of_the_shared_secret():
    assert salsa20.hsalsa20(SHARED, bytes(16)) == FIRSTKEY


def test_core2_hsalsa20_of_the_nonce_prefix():
    assert salsa20.hsalsa20(FIRSTKEY, NONCE[:16]) == SECONDKEY


def test_core4_salsa20_block_with_a_large_counter():
    out = salsa20_xor(CORE4_KEY, CORE4_IN[:8], bytes(64), _le(CORE4_IN[8:]))
    assert out == CORE4_OUT


def test_stream7_xsalsa20_keystream():
    assert xsalsa20_xor(FIRSTKEY, NONCE, bytes(32)) == STREAM7


def test_stream8_xsalsa20_xor():
    assert xsalsa20_xor(FIRSTKEY, NONCE, bytes(32) + M131)[32:] == C131


def test_stream5_4mb_of_keystream():
    # 4 MiB of XSalsa20 keystream, hashed. The pure-Python kernel needs
    # seconds for it, so CPython checks the first 64 KiB against stream6
    # (plain Salsa20 under the second key) instead.
    st = salsa20.xsalsa20_state(FIRSTKEY, NONCE)
    zero = bytes(4096)
    buf = bytearray(4096)
    if IS_MPY:
        h = hashlib.sha256()
        for _ in range(1024):
            salsa20._xor(st, zero, buf, 4096)
            h.update(buf)
        assert h.digest() == STREAM5_SHA256
    else:
        st6 = salsa20.state(SECONDKEY, NONCE[16:24] + bytes(8))
        other = bytearray(4096)
        for _ in range(16):
            salsa20._xor(st, zero, buf, 4096)
            salsa20._xor(st6, zero, other, 4096)
            assert buf == other


def test_counter_carries_into_the_high_word():
    r = Rand(3)
    key, n8 = r.bytes(32), r.bytes(8)
    two = salsa20_xor(key, n8, bytes(128), 0xFFFFFFFF)
    assert two[:64] == salsa20_xor(key, n8, bytes(64), 0xFFFFFFFF)
    assert two[64:] == salsa20_xor(key, n8, bytes(64), 0x100000000)


def test_chunked_and_in_place_stream_equals_one_shot():
    r = Rand(4)
    key, nonce = r.bytes(32), r.bytes(24)
    msg = r.bytes(700)
    whole = xsalsa20_xor(key, nonce, msg)
    st = salsa20.xsalsa20_state(key, nonce)
    buf = bytearray(msg)
    mv = memoryview(buf)
    pos = 0
    for n in (64, 128, 0, 192, 316):
        salsa20.stream_xor_into(st, mv[pos:pos + n], n)
        pos += n
    assert bytes(buf) == whole


def test_every_length_up_to_three_blocks():
    r = Rand(5)
    key, nonce = r.bytes(32), r.bytes(24)
    full = xsalsa20_xor(key, nonce, bytes(200))
    for n in range(200):
        assert xsalsa20_xor(key, nonce, bytes(n)) == full[:n]


def test_kernel_twins_agree():
    r = Rand(6)
    for i in range(20):
        n = r.below(300)
        st = salsa20.state(r.bytes(32), r.bytes(16), i & 1)
        st2 = bytearray(st)
        src = r.bytes(n)
        a, b = bytearray(n), bytearray(n)
        salsa20._xor(st, src, a, n)
        salsa20._xor_py(st2, src, b, n)
        assert a == b and st[:64] == st2[:64]


def test_viper_kernel_is_used_on_micropython():
    if IS_MPY:
        assert salsa20._xor is not salsa20._xor_py
    else:
        assert salsa20._xor is salsa20._xor_py


def test_sizes_are_checked():
    raises(CryptoError, salsa20.hsalsa20, bytes(31), bytes(16))
    raises(CryptoError, xsalsa20_xor, bytes(32), bytes(23), b"x")
    raises(CryptoError, salsa20_xor, bytes(32), bytes(9), b"x")
