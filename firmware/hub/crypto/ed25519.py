# Ed25519 signature verification (RFC 8032 section 5.1.7) for the hub,
# with exactly the accept/refuse decisions of libsodium's
# crypto_sign_verify_detached (tests/test_crypto_crosscheck.py checks
# them against pynacl). The hub only verifies (release manifests signed
# on the host with pynacl); it never holds an Ed25519 secret, so nothing
# here needs to be constant-time: every input is public.
#
# Refused, in this order (libsodium's rules, stricter than RFC 8032's
# minimum in the second and third):
#   1. S >= L (a non-canonical scalar: malleable signatures);
#   2. R whose y is that of a point of small order (order 1, 2, 4 or 8),
#      the sign bit ignored, including the non-canonical y = p and p + 1;
#   3. A public key A with y >= p (non-canonical), or whose y is that of
#      a small-order point (same list), or that is not on the curve;
#   4. unless encode([S]B - [k]A) is byte for byte R, where
#      k = SHA-512(R || A || M) mod L. That comparison also refuses any R
#      that is not the canonical encoding of a curve point. No cofactor
#      (the "cofactorless" equation, as libsodium).
#
# Arithmetic: Python integers mod p (big ints on every port; MicroPython's
# are arbitrary precision), points in extended coordinates (X:Y:Z:T) with
# the a = -1 formulas of RFC 8032 section 5.1.4, and one joint double-and-
# add over the bits of S and k (Straus-Shamir). About 4000 multiplications
# mod p a verification; the figures are in docs/ota.md.

from hub.crypto import check_len
from hub.crypto.sha512 import sha512

P = 2 ** 255 - 19
L = 2 ** 252 + 27742317777372353535851937790883648493
_D = 37095705934669439343138083508754565189542113879843219016388785533085940283555  # -121665/121666
_D2 = 2 * _D % P
_SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752  # 2**((p-1)/4)
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960  # 4/5
_Y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022  # a point of order 8
# y-coordinates whose points have small order: 0 (order 4), 1 (1), p - 1 (2),
# +-_Y8 (8), and the non-canonical p and p + 1 (= 0 and 1)
SMALL_ORDER_Y = (0, 1, P - 1, _Y8, P - _Y8, P, P + 1)
_MASK255 = (1 << 255) - 1


def _pow(a, e):
    """a ** e mod p by square-and-multiply (three-argument pow is optional in MicroPython builds)."""
    r = 1
    a %= P
    while e:
        if e & 1:
            r = r * a % P
        a = a * a % P
        e >>= 1
    return r


def _add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * _D2 * t2 % P
    d = 2 * z1 * z2 % P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _double(p):
    x1, y1, z1, _ = p
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    s = x1 + y1
    e = h - s * s % P
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def decode_point(b):
    """The point (x, y, 1, xy) that the 32-byte encoding b names, or None when
    y >= p, when no x satisfies the curve equation, or when x = 0 has sign bit 1
    (RFC 8032 section 5.1.3)."""
    check_len("point", b, 32)
    n = int.from_bytes(b, "little")
    sign = n >> 255
    y = n & _MASK255
    if y >= P:
        return None
    yy = y * y % P
    u = (yy - 1) % P
    v = (_D * yy + 1) % P
    v3 = v * v % P * v % P
    x = u * v3 % P * _pow(u * v3 % P * v3 % P * v % P, (P - 5) // 8) % P
    vxx = v * x % P * x % P
    if vxx != u:
        if vxx != P - u:
            return None
        x = x * _SQRT_M1 % P
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def encode_point(p):
    """The 32-byte canonical encoding of a point in extended coordinates."""
    x, y, z, _ = p
    zi = _pow(z, P - 2)
    x = x * zi % P
    y = y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _small_order_y(b):
    return (int.from_bytes(b, "little") & _MASK255) in SMALL_ORDER_Y


def _joint_mult(s, a, k):
    """[s]B + [k]a, one doubling per bit and at most one addition (B, a or B + a)."""
    b = (_BX, _BY, 1, _BX * _BY % P)
    both = _add(b, a)
    q = None  # the identity, until the first addition
    for i in range(252, -1, -1):  # s, k < L < 2**253
        if q is not None:
            q = _double(q)
        bits = ((s >> i) & 1) | (((k >> i) & 1) << 1)
        if bits:
            t = b if bits == 1 else a if bits == 2 else both
            q = t if q is None else _add(q, t)
    return q or (0, 1, 1, 0)


def verify(public_key, message, signature):
    """True iff signature (64 bytes) is a valid Ed25519 signature of message
    (bytes-like) by public_key (32 bytes), by libsodium's rules (see the top of
    this file). Keys or signatures of the wrong length raise CryptoError."""
    h = start(public_key, signature)
    h.update(message)
    return verify_prehashed_parts(public_key, signature, h)


def verify_prehashed_parts(public_key, signature, h):
    """The checks of verify() with k taken from h, a sha512 object that has
    already been fed R || A || message (so a caller can stream a long message
    into it without holding the message)."""
    check_len("public key", public_key, 32)
    check_len("signature", signature, 64)
    r = signature[:32]
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    if _small_order_y(r):
        return False
    if _small_order_y(public_key):  # also refuses y = p, p + 1; decode_point refuses y >= p
        return False
    a = decode_point(public_key)
    if a is None:
        return False
    k = int.from_bytes(h.digest(), "little") % L
    neg_a = ((P - a[0]) % P, a[1], a[2], (P - a[3]) % P)
    return encode_point(_joint_mult(s, neg_a, k)) == bytes(r)


def start(public_key, signature):
    """A sha512 object fed with R || A, ready for the message (see verify_prehashed_parts)."""
    check_len("public key", public_key, 32)
    check_len("signature", signature, 64)
    h = sha512()
    h.update(signature[:32])
    h.update(public_key)
    return h
