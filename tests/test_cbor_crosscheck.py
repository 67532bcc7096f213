"""The hub's CBOR codec against cbor2, both directions, on the unix port
(compiled .mpy under the heap limit) and on CPython."""

import io
import math
import random
import struct

import cbor2
import cbor_check
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub import cbor

N = 3000
NS = {"F": cbor_check.F, "T": cbor.Tag}


def rand_float(r):
    k = r.random()
    if k < 0.2:
        return r.choice([0.0, -0.0, 1.0, -2.5, 65504.0, 1e-300, 5.960464477539063e-8, math.inf, -math.inf,
                         3.4028234663852886e38, 1.1, 100000.0])
    if k < 0.5:
        return struct.unpack(">e", struct.pack(">H", r.getrandbits(16) & 0x7BFF))[0]
    if k < 0.7:
        return struct.unpack(">f", struct.pack(">I", r.getrandbits(32) & 0x7F7FFFFF))[0]
    return struct.unpack(">d", struct.pack(">Q", r.getrandbits(64) & 0x7FEFFFFFFFFFFFFF))[0] * r.choice([1, -1])


def rand_int(r):
    bits = r.choice([3, 5, 8, 9, 16, 17, 32, 33, 63, 64])
    n = r.getrandbits(bits)
    return n if r.random() < 0.5 else -1 - n


def rand_text(r):
    alphabet = "abcXYZ019 _-\u00fc\u00e6\u00f8\u00e5\u6c34\u03bb\U0001f600\"\\'\n\t"
    return "".join(r.choice(alphabet) for _ in range(r.randint(0, 24)))


def rand_value(r, depth=0):
    k = r.randint(0, 9 if depth < 3 else 6)
    if k == 0:
        return rand_int(r)
    if k == 1:
        return rand_float(r)
    if k == 2:
        return r.randbytes(r.randint(0, 40))
    if k == 3:
        return rand_text(r)
    if k == 4:
        return r.choice([True, False, None])
    if k in (5, 6):
        return rand_int(r) if k == 5 else r.randint(0, 30)
    if k in (7, 8):
        return [rand_value(r, depth + 1) for _ in range(r.randint(0, 6))]
    keys = [r.choice([rand_int, rand_text, lambda r: r.randbytes(r.randint(0, 6))])(r) for _ in range(r.randint(0, 6))]
    return {key: rand_value(r, depth + 1) for key in keys}


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def cases():
    r = random.Random(20261129)
    values = [rand_value(r) for _ in range(N)]
    lines = []
    for v in values:
        lines.append("E " + cbor_check.lit(v))
        lines.append("D " + cbor2.dumps(v, canonical=True).hex())  # deterministic
        lines.append("D " + cbor2.dumps(v).hex())  # cbor2's default: 64-bit floats, unsorted maps
    return values, lines


def _head(major, n):
    h = bytearray(cbor2.dumps(n))  # cbor2's shortest unsigned head, then our major type
    h[0] |= major << 5
    return bytes(h)


def ref_dumps(v):
    """RFC 8949 section 4.2.1 with cbor2 as the authority for every item.

    cbor2's canonical=True orders map keys length-first (RFC 7049); the core
    deterministic encoding orders them bytewise, so maps are put together here."""
    if isinstance(v, dict):
        items = sorted((cbor2.dumps(k, canonical=True), ref_dumps(x)) for k, x in v.items())
        return _head(5, len(items)) + b"".join(k + x for k, x in items)
    if isinstance(v, list):
        return _head(4, len(v)) + b"".join(ref_dumps(x) for x in v)
    return cbor2.dumps(v, canonical=True)


def check(values, answers):
    assert len(answers) == 3 * len(values)
    ns = {"F": cbor_check.F}
    for i, v in enumerate(values):
        enc, dec_canon, dec_plain = answers[3 * i: 3 * i + 3]
        want = ref_dumps(v)
        assert enc == want.hex(), f"encode {v!r}: ours {enc}, cbor2 {want.hex()}"
        assert same(cbor2.loads(bytes.fromhex(enc)), v)
        for dec in (dec_canon, dec_plain):
            assert not dec.startswith("ERR"), f"decode of {v!r} failed: {dec}"
            assert same(eval(dec, ns), v), f"decode {v!r}: got {dec}"


def test_crosscheck_cpython():
    values, lines = cases()
    out = io.StringIO()
    cbor_check.main(io.StringIO("\n".join(lines) + "\n"), out)
    check(values, out.getvalue().splitlines())


def test_crosscheck_unix_port(mpy):
    values, lines = cases()
    p = mpy(["cbor_check.py"], input=("\n".join(lines) + "\n").encode())
    assert p.returncode == 0, p.stderr.decode()[-2000:] + p.stdout.decode()[-2000:]
    check(values, p.stdout.decode().splitlines())


def test_unix_port_errors_match_cpython_on_garbage(mpy):
    r = random.Random(5)
    blobs = [r.randbytes(r.randint(0, 10)) for _ in range(2000)]
    lines = ["D " + b.hex() for b in blobs]
    p = mpy(["cbor_check.py"], input=("\n".join(lines) + "\n").encode())
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    out = io.StringIO()
    cbor_check.main(io.StringIO("\n".join(lines) + "\n"), out)
    mp_lines, cp_lines = p.stdout.decode().splitlines(), out.getvalue().splitlines()
    assert len(mp_lines) == len(cp_lines) == len(blobs)
    for blob, a, b in zip(blobs, mp_lines, cp_lines):
        assert a.startswith("ERR") == b.startswith("ERR"), blob.hex()
        if not a.startswith("ERR"):
            assert same(eval(a, NS), eval(b, NS))


plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 64), 2 ** 64 - 1) | st.floats() | st.binary(max_size=30)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.integers(-1000, 1000) | st.text(max_size=5), inner, max_size=5),
    max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(plain)
def test_hypothesis_roundtrip_against_cbor2(v):
    ours = cbor.dumps(v)
    assert ours == ref_dumps(v)
    assert same(cbor.loads(ours), v)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=40))
def test_hypothesis_garbage_only_cbor_errors(data):
    try:
        cbor.loads(data)
    except cbor.CBORError:
        pass


@pytest.mark.parametrize("tagged", [cbor2.CBORTag(1000, [1, "x"]), cbor2.CBORTag(55799, {1: 2})])
def test_tags_pass_through(tagged):
    v = cbor.loads(cbor2.dumps(tagged))
    assert v == cbor.Tag(tagged.tag, tagged.value)
    assert cbor.dumps(v) == cbor2.dumps(tagged, canonical=True)
