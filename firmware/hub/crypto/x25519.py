# X25519 (RFC 7748): Diffie-Hellman on Curve25519, the crypto_scalarmult
# of NaCl and libsodium.
#
# A field element mod p = 2**255 - 19 is 16 limbs of 16 bits (little-
# endian), so a limb product fits in 32 bits; every operation leaves
# its result fully carried (each limb < 2**16, value < 2**256, not
# necessarily < p) and only the final encoding reduces mod p.
#   MUL: 256 products, each split into its low and high 16 bits added to
#        two column sums (< 32 * 2**16 = 2**21), the upper 16 columns
#        folded in times 38 (2**256 = 38 mod p): < 2**27 before carrying.
#   ADD: a + b.  SUB: a + 4p - b, with 4p spelled in limbs >= 0x1FFB4 so
#        that no limb goes negative.
#   Then carry, fold the carry out of limb 15 back in times 38, twice
#   more: three passes always leave 16-bit limbs (the last carry is 0).
# The same instructions run for every scalar; the only secret-dependent
# step is the conditional swap, done with masks. The Montgomery ladder
# is a short program for a tiny register machine over a word array:
# one kernel call per scalar bit, and one for the inversion. The kernel
# is viper on MicroPython (_vfe.py) and _run_py below elsewhere.

from array import array

from hub.crypto import CryptoError, check_len, ct

_ADD = 0
_SUB = 1
_MUL = 2
_CSWAP = 3
_COPY = 4
_SQN = 5

# registers: 16 words each; register 0 word 0 is the swap condition,
# 17 and 18 are the kernel's product scratch
X1, X2, Z2, X3, Z3, A, AA, B, BB, E, C, D, DA, CB, T, A24 = range(1, 17)
_WORDS = 19 * 16
_P = (0xFFED,) + (0xFFFF,) * 14 + (0x7FFF,)


def _asm(ops):
    out = bytearray()
    for op in ops:
        out.extend(bytes(op + (0,) * (4 - len(op))))
    return bytes(out)


# One rung of the ladder (RFC 7748 section 5), after the conditional swap.
_STEP = _asm((
    (_CSWAP, 0, X2, X3), (_CSWAP, 0, Z2, Z3),
    (_ADD, A, X2, Z2), (_MUL, AA, A, A),
    (_SUB, B, X2, Z2), (_MUL, BB, B, B),
    (_SUB, E, AA, BB),
    (_ADD, C, X3, Z3), (_SUB, D, X3, Z3),
    (_MUL, DA, D, A), (_MUL, CB, C, B),
    (_ADD, T, DA, CB), (_MUL, X3, T, T),
    (_SUB, T, DA, CB), (_MUL, T, T, T), (_MUL, Z3, X1, T),
    (_MUL, X2, AA, BB),
    (_MUL, T, A24, E), (_ADD, T, AA, T), (_MUL, Z2, E, T),
))

# Z2 <- X2 / Z2 = X2 * Z2**(p - 2), p - 2 = 2**255 - 21: 254 squarings, 11 multiplications.
# Registers A..CB are free here: A = z**2, B = z**9, C = z**11, D = z**(2**5 - 1),
# E = z**(2**10 - 1), AA = z**(2**20 - 1), BB = z**(2**50 - 1), DA = z**(2**100 - 1).
_INVERT = _asm((
    (_MUL, A, Z2, Z2),
    (_COPY, T, A), (_SQN, T, 0, 2), (_MUL, B, T, Z2),
    (_MUL, C, B, A),
    (_MUL, T, C, C), (_MUL, D, T, B),
    (_COPY, T, D), (_SQN, T, 0, 5), (_MUL, E, T, D),
    (_COPY, T, E), (_SQN, T, 0, 10), (_MUL, AA, T, E),
    (_COPY, T, AA), (_SQN, T, 0, 20), (_MUL, T, T, AA),
    (_SQN, T, 0, 10), (_MUL, BB, T, E),
    (_COPY, T, BB), (_SQN, T, 0, 50), (_MUL, DA, T, BB),
    (_COPY, T, DA), (_SQN, T, 0, 100), (_MUL, T, T, DA),
    (_SQN, T, 0, 50), (_MUL, T, T, BB),
    (_SQN, T, 0, 5), (_MUL, T, T, C),
    (_MUL, Z2, X2, T),
))


def _pass(buf, d, c):
    for i in range(16):
        v = buf[d + i] + c
        buf[d + i] = v & 0xFFFF
        c = v >> 16
    return c


def _run_py(buf, prog, start, end):
    for pc in range(start, end, 4):
        op = prog[pc]
        d = prog[pc + 1] << 4
        a = prog[pc + 2] << 4
        b = prog[pc + 3] << 4
        if op == _CSWAP:
            mask = -buf[0]
            for i in range(16):
                x = buf[a + i]
                y = buf[b + i]
                t = (x ^ y) & mask
                buf[a + i] = x ^ t
                buf[b + i] = y ^ t
            continue
        if op == _COPY:
            buf[d:d + 16] = buf[a:a + 16]
            continue
        reps = 1
        if op == _SQN:
            reps = prog[pc + 3]
            a = b = d
            op = _MUL
        for _ in range(reps):
            c = 0
            if op == _MUL:
                t = [0] * 32
                for i in range(16):
                    ai = buf[a + i]
                    k = i
                    for j in range(16):
                        p = ai * buf[b + j]
                        t[k] += p & 0xFFFF
                        t[k + 1] += p >> 16
                        k += 1
                for i in range(16):
                    v = t[i] + t[16 + i] * 38 + c
                    buf[d + i] = v & 0xFFFF
                    c = v >> 16
            elif op == _ADD:
                for i in range(16):
                    v = buf[a + i] + buf[b + i] + c
                    buf[d + i] = v & 0xFFFF
                    c = v >> 16
            else:
                for i in range(16):
                    v = buf[a + i] + (0x1FFB4 if i == 0 else 0x1FFFE) - buf[b + i] + c
                    buf[d + i] = v & 0xFFFF
                    c = v >> 16
            c = _pass(buf, d, c * 38)
            _pass(buf, d, c * 38)


try:
    from hub.crypto._vfe import run as _run
except ImportError:  # CPython, or no native emitter
    _run = _run_py


def _load(buf, reg, b32):
    o = reg << 4
    for i in range(16):
        buf[o + i] = b32[2 * i] | (b32[2 * i + 1] << 8)
    buf[o + 15] &= 0x7FFF  # RFC 7748: the top bit of u is ignored


def _store(buf, reg):
    # fully reduce (value < 2**256 < 3p: subtract p at most twice, by masks)
    o = reg << 4
    v = [buf[o + i] for i in range(16)]
    for _ in range(2):
        m = []
        borrow = 0
        for i in range(16):
            x = v[i] - _P[i] - borrow
            m.append(x & 0xFFFF)
            borrow = (x >> 16) & 1
        keep = -borrow  # -1: v < p, keep v; 0: take v - p
        v = [(v[i] & keep) | (m[i] & ~keep) for i in range(16)]
    out = bytearray(32)
    for i in range(16):
        out[2 * i] = v[i] & 0xFF
        out[2 * i + 1] = v[i] >> 8
    return bytes(out)


def x25519(k, u, run=None):
    """The X25519 function of RFC 7748: scalar k (clamped here) times the point u, 32 bytes each."""
    check_len("scalar", k, 32)
    check_len("point", u, 32)
    run = run or _run
    k = bytearray(k)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    buf = array("I", bytes(4 * _WORDS))
    _load(buf, X1, u)
    _load(buf, X3, u)
    buf[X2 << 4] = 1
    buf[Z3 << 4] = 1
    buf[A24 << 4] = 0xDB41  # 121665 = (486662 - 2) / 4
    buf[(A24 << 4) + 1] = 1
    swap = 0
    n = len(_STEP)
    for t in range(254, -1, -1):
        bit = (k[t >> 3] >> (t & 7)) & 1
        buf[0] = swap ^ bit
        run(buf, _STEP, 0, n)
        swap = bit
    buf[0] = swap
    run(buf, _STEP, 0, 8)  # the final conditional swap
    run(buf, _INVERT, 0, len(_INVERT))
    out = _store(buf, Z2)
    for i in range(32):  # best effort: do not leave the scalar's traces behind
        k[i] = 0
    for i in range(len(buf)):
        buf[i] = 0
    return out


_BASE = b"\x09" + bytes(31)

# The public keys of small order (and their non-canonical encodings, top bit
# ignored) that libsodium refuses: with them the shared secret is all zeros.
_SMALL_ORDER = (
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    b"\xec" + b"\xff" * 30 + b"\x7f",
    b"\xed" + b"\xff" * 30 + b"\x7f",
    b"\xee" + b"\xff" * 30 + b"\x7f",
)


def is_small_order(u):
    """True iff the 32-byte point u is one of the small-order points (no scalar multiplication needed)."""
    check_len("point", u, 32)
    found = 0
    for bad in _SMALL_ORDER:
        d = (u[31] & 0x7F) ^ bad[31]
        for i in range(31):
            d |= u[i] ^ bad[i]
        found |= d == 0
    return bool(found)


def scalarmult(n, p):
    """crypto_scalarmult: X25519, refusing a result of all zeros (a public key of small order)."""
    q = x25519(n, p)
    if ct.is_zero(q):
        raise CryptoError("the public key has small order (shared secret is zero)")
    return q


def scalarmult_base(n):
    """crypto_scalarmult_base: the public key of secret key n."""
    return x25519(n, _BASE)
