# Poly1305 against NaCl and RFC 8439 vectors (including the edge cases of
# the final reduction); incremental use; the viper kernel against its
# twin; and a CPython-only audit that no intermediate leaves 32 bits.

from crypto_vectors import POLY1305_VECTORS
from fwtest import IS_MPY, Rand, raises
from hub.crypto import CryptoError, poly1305

CPYTHON_ONLY = ("test_32bit_audit_of_the_block_kernel",)


def test_vectors():
    for key, msg, tag in POLY1305_VECTORS:
        assert poly1305.poly1305(msg, key) == tag, tag
        assert poly1305.verify(tag, msg, key)


def test_incremental_updates_in_odd_pieces():
    r = Rand(7)
    key = r.bytes(32)
    msg = r.bytes(333)
    whole = poly1305.poly1305(msg, key)
    for step in (1, 3, 15, 16, 17, 40):
        p = poly1305.Poly1305(key)
        for i in range(0, len(msg), step):
            p.update(msg[i:i + step])
        assert p.digest() == whole


def test_flipped_tag_bits_are_rejected():
    key, msg, tag = POLY1305_VECTORS[1]
    for i in range(128):
        bad = bytearray(tag)
        bad[i >> 3] ^= 1 << (i & 7)
        assert not poly1305.verify(bytes(bad), msg, key)
    raises(CryptoError, poly1305.verify, tag[:15], msg, key)
    raises(CryptoError, poly1305.Poly1305, bytes(31))


def test_worst_case_limbs_agree_with_the_twin():
    # all-ones keys and messages drive every limb to its bound
    for key in (b"\xff" * 32, bytes(16) + b"\xff" * 16, b"\xff" * 16 + bytes(16)):
        for n in (0, 1, 16, 17, 160, 1000):
            msg = b"\xff" * n
            assert poly1305.poly1305(msg, key) == _digest_with(poly1305._blocks_py, key, msg)


def _digest_with(kernel, key, msg):
    saved = poly1305._blocks
    poly1305._blocks = kernel
    try:
        return poly1305.poly1305(msg, key)
    finally:
        poly1305._blocks = saved


def test_kernel_twins_agree():
    r = Rand(8)
    for _ in range(40):
        key = r.bytes(32)
        msg = r.bytes(r.below(200))
        assert _digest_with(poly1305._blocks_py, key, msg) == poly1305.poly1305(msg, key)


def test_viper_kernel_is_used_on_micropython():
    assert (poly1305._blocks is not poly1305._blocks_py) == IS_MPY


def test_32bit_audit_of_the_block_kernel():
    from u32audit import wrap
    r = Rand(9)
    keys = [b"\xff" * 32, r.bytes(32), r.bytes(32)]
    for key in keys:
        p = poly1305.Poly1305(key)
        st = wrap(p._st)
        for msg in (b"\xff" * 64, r.bytes(64), b"\xff" * 48):
            for hibit in (1, 0):
                poly1305._blocks_py(st, msg, len(msg), hibit)
        for i in range(10):
            assert 0 <= st[i] <= (1 << 13) + (1 << 10)
