"""hub.crypto against libsodium (pynacl, and libsodium's own Poly1305,
HSalsa20 and Salsa20 from pynacl's bundled library), both directions:
the hub's boxes must be byte-identical to libsodium's and open with
pynacl, and the hub must open pynacl's boxes and refuse tampered ones.
More than 1000 random cases (keys, nonces, messages of 0..4096 bytes) on
the unix port, in one micropython process; a sample on CPython."""

import ctypes
import hashlib
import hmac
import io
import random

import crypto_check
import nacl._sodium
import pytest
from nacl import bindings as nb
from nacl.exceptions import CryptoError

_lib = ctypes.CDLL(nacl._sodium.__file__)


def or_refused(fn, *args):
    """libsodium's answer, or None where it refuses (a small-order point): the hub must refuse too."""
    try:
        return fn(*args)
    except CryptoError:
        return None


def sodium_poly1305(msg, key):
    out = ctypes.create_string_buffer(16)
    assert _lib.crypto_onetimeauth_poly1305(out, msg, ctypes.c_ulonglong(len(msg)), key) == 0
    return out.raw


def sodium_hsalsa20(key, in16):
    out = ctypes.create_string_buffer(32)
    assert _lib.crypto_core_hsalsa20(out, in16, key, None) == 0
    return out.raw


def sodium_xsalsa20_xor(key, nonce, msg):
    out = ctypes.create_string_buffer(len(msg) or 1)
    assert _lib.crypto_stream_xsalsa20_xor(out, msg, ctypes.c_ulonglong(len(msg)), nonce, key) == 0
    return out.raw[:len(msg)]


def sodium_salsa20_xor_ic(key, nonce8, ic, msg):
    out = ctypes.create_string_buffer(len(msg) or 1)
    assert _lib.crypto_stream_salsa20_xor_ic(out, msg, ctypes.c_ulonglong(len(msg)), nonce8,
                                             ctypes.c_uint64(ic), key) == 0
    return out.raw[:len(msg)]


SMALL_ORDER = [bytes(32), b"\x01" + bytes(31),
               bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
               bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
               bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")]


def h(b):
    return b.hex() or "-"


def msg_len(r):
    k = r.random()
    if k < 0.35:
        return r.randint(0, 64)
    if k < 0.7:
        return r.randint(65, 600)
    if k < 0.9:
        return r.randint(601, 4096)
    return r.choice([0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 4095, 4096])


def flip(r, b):
    b = bytearray(b)
    i = r.randrange(8 * len(b))
    b[i >> 3] ^= 1 << (i & 7)
    return bytes(b)


def cases(seed=20261130):
    """(line, expected answer, what) triples; expected None means "must be refused"."""
    r = random.Random(seed)
    out = []
    for _ in range(300):  # hub seals, libsodium must agree and pynacl must open
        key, nonce, m = r.randbytes(32), r.randbytes(24), r.randbytes(msg_len(r))
        c = nb.crypto_secretbox_easy(m, nonce, key)
        assert nb.crypto_secretbox_open_easy(c, nonce, key) == m
        out.append((f"S {h(key)} {h(nonce)} {h(m)}", c, "secretbox"))
    for i in range(300):  # pynacl seals, the hub opens (a third tampered)
        key, nonce, m = r.randbytes(32), r.randbytes(24), r.randbytes(msg_len(r))
        c = nb.crypto_secretbox_easy(m, nonce, key)
        if i % 3 == 0:
            out.append((f"O {h(key)} {h(nonce)} {h(flip(r, c))}", None, "secretbox_open tampered"))
        else:
            out.append((f"O {h(key)} {h(nonce)} {h(c)}", m, "secretbox_open"))
    for i in range(80):  # one box both ways: the hub seals a's message to b as libsodium does, b opens it
        pk_a, sk_a = nb.crypto_box_keypair()
        pk_b, sk_b = nb.crypto_box_keypair()
        nonce, m = r.randbytes(24), r.randbytes(msg_len(r))
        c = nb.crypto_box_easy(m, nonce, pk_b, sk_a)
        out.append((f"B {h(pk_b)} {h(sk_a)} {h(nonce)} {h(m)}", c, "box"))
        if i % 4 == 0:
            out.append((f"U {h(pk_a)} {h(sk_b)} {h(nonce)} {h(flip(r, c))}", None, "box_open tampered"))
        else:
            out.append((f"U {h(pk_a)} {h(sk_b)} {h(nonce)} {h(c)}", m, "box_open"))
    for i in range(60):
        sk = r.randbytes(32)
        pk = SMALL_ORDER[i % len(SMALL_ORDER)] if i % 12 == 0 else nb.crypto_box_keypair()[0]
        out.append((f"K {h(pk)} {h(sk)}", or_refused(nb.crypto_box_beforenm, pk, sk), "beforenm"))
    for i in range(60):
        n = r.randbytes(32)
        if i % 6 == 0:
            p = SMALL_ORDER[(i // 6) % len(SMALL_ORDER)]
        elif i % 6 == 1:  # non-canonical: p .. 2**255 - 1, and the top bit set
            p = (2 ** 255 - 19 + r.randrange(19)).to_bytes(32, "little")
        else:
            p = r.randbytes(32)
        out.append((f"X {h(n)} {h(p)}", or_refused(nb.crypto_scalarmult, n, p), "scalarmult"))
    for _ in range(20):
        n = r.randbytes(32)
        out.append((f"G {h(n)}", nb.crypto_scalarmult_base(n), "scalarmult_base"))
    edge_keys = [b"\xff" * 32, bytes(16) + b"\xff" * 16, b"\xff" * 16 + bytes(16)]
    for i in range(150):
        key = edge_keys[i % 3] if i < 30 else r.randbytes(32)
        m = b"\xff" * msg_len(r) if i < 30 else r.randbytes(msg_len(r))
        out.append((f"P {h(key)} {h(m)}", sodium_poly1305(m, key), "poly1305"))
    for _ in range(60):
        key, n16 = r.randbytes(32), r.randbytes(16)
        out.append((f"H {h(key)} {h(n16)}", sodium_hsalsa20(key, n16), "hsalsa20"))
    for _ in range(80):
        key, nonce, m = r.randbytes(32), r.randbytes(24), r.randbytes(msg_len(r))
        out.append((f"Z {h(key)} {h(nonce)} {h(m)}", sodium_xsalsa20_xor(key, nonce, m), "xsalsa20"))
    for _ in range(40):
        key, n8, m = r.randbytes(32), r.randbytes(8), r.randbytes(r.randint(0, 300))
        ic = r.choice([0, 1, 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFFFFFFFFFF - 2, r.getrandbits(64)])
        out.append((f"C {h(key)} {h(n8)} {ic} {h(m)}", sodium_salsa20_xor_ic(key, n8, ic, m), "salsa20_ic"))
    for _ in range(100):
        key, m = r.randbytes(r.randint(0, 150)), r.randbytes(msg_len(r))
        out.append((f"M {h(key)} {h(m)}", hmac.new(key, m, hashlib.sha256).digest(), "hmac"))
    return out


def check(cs, answers):
    """The hub's answer to each case is libsodium's (refusals included); test_crypto_ed25519_crosscheck's too."""
    assert len(answers) == len(cs)
    for (line, want, what), got in zip(cs, answers):
        if want is None:
            assert got.startswith("ERR"), f"{what}: accepted, should be refused: {line[:120]}"
            continue
        assert not got.startswith("ERR"), f"{what}: {got}: {line[:120]}"
        assert got == h(want), f"{what} differs from libsodium: {line[:120]}"
        if what == "secretbox":  # and pynacl opens what the hub sealed
            _, key, nonce, m = line.split(" ")
            assert nb.crypto_secretbox_open_easy(bytes.fromhex(got), bytes.fromhex(nonce),
                                                 bytes.fromhex(key)) == (b"" if m == "-" else bytes.fromhex(m))


def test_more_than_1000_cases():
    assert len(cases()) >= 1000


def answers_unix_port(mpy, cs):
    """crypto_check.py's answer lines to the cases' lines, in one unix-port process
    (test_crypto_ed25519_crosscheck streams its cases the same way)."""
    p = mpy(["crypto_check.py"], input=("\n".join(c[0] for c in cs) + "\n").encode())
    assert p.returncode == 0, p.stderr.decode()[-2000:] + p.stdout.decode()[-2000:]
    return p.stdout.decode().splitlines()


def answers_cpython(cs):
    """The same answers from the firmware's pure-Python kernels under CPython."""
    out = io.StringIO()
    crypto_check.main(io.StringIO("\n".join(c[0] for c in cs) + "\n"), out)
    return out.getvalue().splitlines()


def crosscheck_tests(cases, check, every):
    """The two cross-checks of a case list (here and in test_crypto_ed25519_crosscheck): every case
    on the unix port in one process, and two samples (every n-th case) on CPython's pure kernels."""
    def test_crosscheck_unix_port(mpy):
        cs = cases()
        check(cs, answers_unix_port(mpy, cs))

    @pytest.mark.parametrize("part", range(2))
    def test_crosscheck_cpython_sample(part):
        cs = cases()[part::every]
        check(cs, answers_cpython(cs))

    return test_crosscheck_unix_port, test_crosscheck_cpython_sample


# every 25th case on CPython: X25519 takes 0.2 s there
test_crosscheck_unix_port, test_crosscheck_cpython_sample = crosscheck_tests(cases, check, 25)
