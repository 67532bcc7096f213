# SHA-512 (FIPS 180-4 examples, streaming in pieces, the viper kernel
# against its pure twin) and Ed25519 verification (RFC 8032 vectors, each
# refusal rule, the curve constants). libsodium's decisions on >1000
# random cases: tests/test_crypto_ed25519_crosscheck.py.

from fwtest import Rand, raises
from hub.crypto import CryptoError, ed25519, sha512

CPYTHON_ONLY = ("test_sha512_viper_kernel_with_32_bit_words",)

ABC = ("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
       "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
EMPTY = ("cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
         "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")
TWO_BLOCKS = ("8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
              "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909")
TWO_BLOCKS_MSG = (b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                  b"ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")
# RFC 8032 section 7.1 TEST 1..3: public key, message, signature
RFC8032 = (
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
)


def _vec(i):
    pk, m, sig = RFC8032[i]
    return bytes.fromhex(pk), bytes.fromhex(m), bytes.fromhex(sig)


def test_sha512_fips_examples():
    assert sha512.sha512(b"abc").hexdigest() == ABC
    assert sha512.sha512(b"").hexdigest() == EMPTY
    assert sha512.sha512(TWO_BLOCKS_MSG).hexdigest() == TWO_BLOCKS


def test_sha512_streamed_in_any_pieces():
    r = Rand(512)
    data = r.bytes(700)
    want = sha512.sha512(data).digest()
    for step in (1, 7, 111, 112, 127, 128, 129, 300):
        h = sha512.sha512()
        for i in range(0, len(data), step):
            h.update(memoryview(data)[i:i + step])
        assert h.digest() == want
        assert h.digest() == want  # digest() leaves the object usable
    h.update(b"x")
    assert h.digest() == sha512.sha512(data + b"x").digest()


def test_sha512_kernel_twins_agree():
    r = Rand(7)
    for n in (0, 1, 111, 112, 128, 255, 256, 1000):
        m = r.bytes(n)
        assert sha512.sha512(m).digest() == sha512.sha512(m, sha512._compress_py).digest()


def test_sha512_viper_kernel_with_32_bit_words():
    # the viper kernel's own source, run on CPython with words that wrap at
    # 32 bits as on ESP32/RP2 (the unix port runs it with 64-bit words)
    import hashlib
    import os

    from w32 import load_kernel
    kernel = load_kernel(os.path.join(os.path.dirname(sha512.__file__), "_vsha512.py"), "compress")
    r = Rand(32)
    for n in (0, 3, 111, 112, 200, 256):
        m = r.bytes(n)
        assert sha512.sha512(m, kernel).digest() == hashlib.sha512(m).digest()
    m = bytes([0xFF]) * 256  # every carry taken
    assert sha512.sha512(m, kernel).digest() == hashlib.sha512(m).digest()


def test_sha512_round_constants_are_cube_roots():
    # K[t]: the first 64 bits of the fractional part of the cube root of the t-th prime
    primes = []
    n = 2
    while len(primes) < 80:
        if all(n % p for p in primes):
            primes.append(n)
        n += 1
    for t in (0, 1, 40, 79):
        k = (sha512._K[2 * t] << 32) | sha512._K[2 * t + 1]
        c = (primes[t] << 192)
        root = (int(primes[t] ** (1 / 3)) << 64) | k  # integer part, then the fraction bits
        assert root ** 3 <= c < (root + 1) ** 3


def test_rfc8032_vectors():
    for i in range(3):
        pk, m, sig = _vec(i)
        assert ed25519.verify(pk, m, sig)
        assert not ed25519.verify(pk, m + b"\x00", sig)


def test_every_bit_of_a_signature_matters():
    pk, m, sig = _vec(1)
    for i in range(0, 512, 37):
        bad = bytearray(sig)
        bad[i >> 3] ^= 1 << (i & 7)
        assert not ed25519.verify(pk, m, bytes(bad))


def test_non_canonical_s_is_refused():
    pk, m, sig = _vec(0)
    s = int.from_bytes(sig[32:], "little") + ed25519.L  # the same equation, S + L
    assert not ed25519.verify(pk, m, sig[:32] + s.to_bytes(32, "little"))


def test_small_order_and_non_canonical_points_are_refused():
    pk, m, sig = _vec(0)
    for y in ed25519.SMALL_ORDER_Y:
        for sign in (0, 1):
            enc = (y | (sign << 255)).to_bytes(32, "little")
            assert not ed25519.verify(pk, m, enc + sig[32:])
            assert not ed25519.verify(enc, m, sig)
    p = ed25519.P
    for y in (p, p + 5, 2 ** 255 - 1):
        assert ed25519.decode_point(y.to_bytes(32, "little")) is None


def test_wrong_lengths_raise():
    pk, m, sig = _vec(0)
    raises(CryptoError, ed25519.verify, pk[:31], m, sig)
    raises(CryptoError, ed25519.verify, pk, m, sig + b"\x00")


def test_curve_constants():
    p = ed25519.P
    b = ed25519.decode_point(((4 * ed25519._pow(5, p - 2)) % p).to_bytes(32, "little"))
    assert b[0] == ed25519._BX and b[1] == ed25519._BY
    assert (ed25519._D * 121666 + 121665) % p == 0
    assert ed25519._SQRT_M1 * ed25519._SQRT_M1 % p == p - 1
    t = ed25519.decode_point(ed25519._Y8.to_bytes(32, "little"))  # order exactly 8
    q = t
    for _ in range(2):
        q = ed25519._double(q)
        assert (q[1] - q[2]) % p != 0  # [2]T, [4]T: not yet the identity
    q = ed25519._double(q)
    assert q[0] % p == 0 and (q[1] - q[2]) % p == 0
    # [L]B is the identity: the base point has prime order L
    ident = ed25519._joint_mult(ed25519.L, (0, 1, 1, 0), 0)
    assert ident[0] % p == 0 and (ident[1] - ident[2]) % p == 0
