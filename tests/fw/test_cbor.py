# The hub's CBOR codec: RFC 8949 Appendix A examples, deterministic
# encoding (section 4.2.1) and malformed input. Runs on both runtimes.

from fwtest import Rand, raises

from hub import cbor
from hub.cbor import CBORError, Tag

INF = float("inf")

# (value, hex) from RFC 8949 Appendix A that deterministic encoding keeps.
VECTORS = [
    (0, "00"), (1, "01"), (10, "0a"), (23, "17"), (24, "1818"), (25, "1819"),
    (100, "1864"), (1000, "1903e8"), (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"), (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"), (-1, "20"), (-10, "29"), (-100, "3863"),
    (-1000, "3903e7"), (0.0, "f90000"), (-0.0, "f98000"), (1.0, "f93c00"), (1.1, "fb3ff199999999999a"),
    (1.5, "f93e00"), (65504.0, "f97bff"), (100000.0, "fa47c35000"), (3.4028234663852886e38, "fa7f7fffff"),
    (1.0e300, "fb7e37e43c8800759c"), (5.960464477539063e-8, "f90001"), (0.00006103515625, "f90400"),
    (-4.0, "f9c400"), (-4.1, "fbc010666666666666"), (INF, "f97c00"), (-INF, "f9fc00"),
    (False, "f4"), (True, "f5"), (None, "f6"), (b"", "40"), (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"), ("a", "6161"), ("IETF", "6449455446"), ("\"\\", "62225c"), ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"), ([], "80"), ([1, 2, 3], "83010203"), ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"), ({1: 2, 3: 4}, "a201020304"), ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    ({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}, "a56161614161626142616361436164614461656145"),
    (Tag(1, 1363896240), "c11a514b67b0"), (Tag(23, b"\x01\x02\x03\x04"), "d74401020304"),
]

# Non-deterministic but valid encodings the decoder must accept.
ACCEPT = [
    ("5f42010243030405ff", b"\x01\x02\x03\x04\x05"),
    ("7f657374726561646d696e67ff", "streaming"),
    ("9fff", []), ("9f018202039f0405ffff", [1, [2, 3], [4, 5]]),
    ("bf61610161629f0203ffff", {"a": 1, "b": [2, 3]}),
    ("1800", 0), ("190001", 1), ("fb3ff0000000000000", 1.0), ("fa3f800000", 1.0),
    ("a2030401 02".replace(" ", ""), {3: 4, 1: 2}),
]

MALFORMED = [
    "", "18", "19 00", "1a 0000", "1b 00000000000000", "42 01", "62 61", "83 0102", "a1 01",
    "1c", "1d", "1e", "3c", "5c", "7c", "9c", "bc", "dc", "fc", "f8 18", "f0", "e0", "f7",
    "ff", "5f 01 ff", "5f 61 61 ff", "7f 41 61 ff", "5f 5f 40 ff ff", "9f 01", "bf 01 ff", "bf 01",
    "1f", "3f", "df 01", "62 c3 28", "a2 01 02 01 03", "00 00", "c1", "9b 00000000ffffffff",
]


def unhex(s):
    return bytes.fromhex(s.replace(" ", ""))


def same(a, b):
    """Equality that tells -0.0 from 0.0 and treats NaN as equal to NaN."""
    if isinstance(a, float) and isinstance(b, float):
        if a != a:
            return b != b
        return a == b and str(a) == str(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(k in b and same(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return type(a) is type(b) and a == b if not isinstance(a, Tag) else a == b


def test_rfc8949_vectors_encode():
    for value, h in VECTORS:
        got = cbor.dumps(value)
        assert got == unhex(h), "%r encoded to %s, want %s" % (value, got.hex(), h)


def test_rfc8949_vectors_decode():
    for value, h in VECTORS:
        got = cbor.loads(unhex(h))
        assert same(got, value), "%s decoded to %r, want %r" % (h, got, value)


def test_nan_is_canonical():
    assert cbor.dumps(float("nan")) == unhex("f97e00")
    for h in ("f97e00", "fa7fc00000", "fb7ff8000000000000"):
        v = cbor.loads(unhex(h))
        assert v != v


def test_accepts_valid_non_deterministic_input():
    for h, value in ACCEPT:
        assert same(cbor.loads(unhex(h)), value), h


def test_map_keys_sorted_bytewise():
    # Shorter encodings first, then bytewise: 10 < 100 < -1 < "z" < "aa"
    d = {"aa": 1, "z": 2, -1: 3, 100: 4, 10: 5}
    assert cbor.dumps(d) == unhex("a5 0a05 186404 2003 617a02 62616101")


def test_integer_limits():
    assert cbor.loads(cbor.dumps(2 ** 64 - 1)) == 2 ** 64 - 1
    assert cbor.loads(cbor.dumps(-(2 ** 64))) == -(2 ** 64)
    raises(CBORError, cbor.dumps, 2 ** 64)
    raises(CBORError, cbor.dumps, -(2 ** 64) - 1)
    for n in (23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32):
        assert cbor.loads(cbor.dumps(n)) == n
        assert cbor.loads(cbor.dumps(-n - 1)) == -n - 1


def test_unsupported_types_are_clear_errors():
    e = raises(CBORError, cbor.dumps, {1: set()})
    assert "set" in str(e)
    raises(CBORError, cbor.dumps, object())
    raises(CBORError, cbor.dumps, {1: 2}.keys())


def test_malformed_input_raises_cbor_error_only():
    for h in MALFORMED:
        raises(CBORError, cbor.loads, unhex(h))


def test_error_is_value_error_and_names_offset():
    e = raises(ValueError, cbor.loads, unhex("83 01 02"))
    assert isinstance(e, CBORError)
    assert "byte" in str(e)


def test_nesting_limit():
    deep = unhex("81" * 40 + "00")
    raises(CBORError, cbor.loads, deep)
    v = 0
    for _ in range(40):
        v = [v]
    raises(CBORError, cbor.dumps, v)


def test_random_bytes_never_crash():
    r = Rand(7)
    for _n in range(3000):
        data = r.bytes(r.below(12))
        try:
            cbor.loads(data)
        except CBORError:
            pass


def test_truncations_of_valid_items():
    data = cbor.dumps({"a": [1, 2.5, b"xyz", "t\u00fc", {3: None}], 7: -300000, "n": 2 ** 40})
    for k in range(len(data)):
        raises(CBORError, cbor.loads, data[:k])
