# X25519 against RFC 7748 (section 5.2 vectors, the iterated test, the
# Diffie-Hellman of section 6.1), libsodium's refusal of small-order
# points, the viper field kernel against its twin, and a CPython-only
# audit that no intermediate of the field arithmetic leaves 32 bits.

from array import array

from crypto_vectors import (ALICE_PK, ALICE_SK, BOB_PK, BOB_SK, SHARED, SMALL_ORDER, X25519_ITER_1,
                            X25519_ITER_1000, X25519_VECTORS)
from fwtest import IS_MPY, Rand, raises
from hub.crypto import CryptoError, x25519

CPYTHON_ONLY = ("test_32bit_audit_of_the_field_kernel",)
NINE = b"\x09" + bytes(31)


def test_rfc7748_vectors():
    for k, u, out in X25519_VECTORS:
        assert x25519.x25519(k, u) == out


def test_rfc7748_iterated():
    # 1 iteration on both runtimes; 1000 on the unix port (the pure-Python
    # kernel takes 0.2 s a multiplication on CPython)
    k = u = NINE
    n = 1000 if IS_MPY else 1
    for i in range(n):
        k, u = x25519.x25519(k, u), k
        if i == 0:
            assert k == X25519_ITER_1
    if IS_MPY:
        assert k == X25519_ITER_1000


def test_rfc7748_diffie_hellman():
    assert x25519.scalarmult_base(ALICE_SK) == ALICE_PK
    assert x25519.scalarmult_base(BOB_SK) == BOB_PK
    assert x25519.scalarmult(ALICE_SK, BOB_PK) == SHARED
    assert x25519.scalarmult(BOB_SK, ALICE_PK) == SHARED


def test_small_order_points_are_refused():
    for p in SMALL_ORDER:
        assert x25519.x25519(ALICE_SK, p) == bytes(32)
        raises(CryptoError, x25519.scalarmult, ALICE_SK, p)
    top = bytearray(SMALL_ORDER[2])
    top[31] |= 0x80
    raises(CryptoError, x25519.scalarmult, BOB_SK, bytes(top))


def test_small_order_check_without_multiplication():
    for p in SMALL_ORDER:
        assert x25519.is_small_order(p)
        top = bytearray(p)
        top[31] |= 0x80
        assert x25519.is_small_order(bytes(top))
    for p in (NINE, ALICE_PK, BOB_PK, b"\x02" + bytes(31), b"\xef" + b"\xff" * 30 + b"\x7f"):
        assert not x25519.is_small_order(p)


def test_top_bit_ignored_and_noncanonical_u_reduced():
    u = bytearray(BOB_PK)
    u[31] |= 0x80
    assert x25519.x25519(ALICE_SK, bytes(u)) == SHARED
    # p + 9 = 2**255 - 10 encodes the base point too
    p9 = b"\xf6" + b"\xff" * 30 + b"\x7f"
    assert x25519.x25519(ALICE_SK, p9) == ALICE_PK


def test_sizes_are_checked():
    raises(CryptoError, x25519.x25519, bytes(31), NINE)
    raises(CryptoError, x25519.scalarmult, ALICE_SK, NINE[:31])


def _fe(r, top):
    return [r.below(top) for _ in range(16)]


def _program():
    # every instruction, with aliasing, over registers 1..6
    return x25519._asm((
        (x25519._ADD, 3, 1, 2), (x25519._SUB, 4, 1, 2), (x25519._SUB, 5, 2, 1),
        (x25519._MUL, 6, 1, 2), (x25519._MUL, 1, 1, 1), (x25519._ADD, 2, 2, 2),
        (x25519._SUB, 3, 3, 3), (x25519._CSWAP, 0, 4, 5), (x25519._COPY, 2, 6),
        (x25519._SQN, 6, 0, 3), (x25519._MUL, 5, 5, 6),
    ))


def test_field_kernel_twins_agree():
    r = Rand(10)
    prog = _program()
    for i in range(30):
        top = 0x10000 if i % 3 else 0x10000 - r.below(2)  # some all-0xFFFF inputs
        vals = [0] * (x25519._WORDS)
        vals[0] = i & 1
        for reg in (1, 2):
            fe = _fe(r, 0x10000) if i % 3 else [top - 1] * 16
            for j in range(16):
                vals[reg * 16 + j] = fe[j]
        a = array("I", vals)
        b = array("I", vals)
        x25519._run(a, prog, 0, len(prog))
        x25519._run_py(b, prog, 0, len(prog))
        assert a[:7 * 16] == b[:7 * 16]
        for w in a[:7 * 16]:
            assert w < 0x10000


def test_viper_kernel_is_used_on_micropython():
    assert (x25519._run is not x25519._run_py) == IS_MPY


def test_32bit_audit_of_the_field_kernel():
    from u32audit import wrap
    r = Rand(11)
    prog = _program()
    for i in range(6):
        vals = [0] * x25519._WORDS
        vals[0] = i & 1
        for reg in (1, 2):
            fe = [0xFFFF] * 16 if i < 2 else _fe(r, 0x10000)
            vals[reg * 16:reg * 16 + 16] = fe
        buf = wrap(vals)
        x25519._run_py(buf, prog, 0, len(prog))
    # a whole ladder rung on a random point, all registers in use
    buf = wrap([0] * x25519._WORDS)
    for reg in range(1, 16):
        buf[reg * 16:reg * 16 + 16] = wrap(_fe(r, 0x10000))
    buf[x25519.A24 * 16] = 0xDB41
    buf[x25519.A24 * 16 + 1] = 1
    buf = wrap(buf)
    x25519._run_py(buf, x25519._STEP, 0, len(x25519._STEP))
    x25519._run_py(buf, x25519._INVERT, 0, len(x25519._INVERT))
