"""Property tests of the hub's profile codecs (hub.profiles) on CPython:
hypothesis fuzzing (decode raises nothing but ProfileError, readings are
valid), every flag combination round-tripping with generated values,
SFLOAT/FLOAT against exact decimal arithmetic, ECG samples against an
independent packer, and encoders refusing out-of-range values."""

import struct
from decimal import Decimal

import cbor2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from profile_cases import CASES, DEV, roundtrip
from profile_seeds import SEEDS

from hub import profiles as P
from hub import reading as R
from hub.profiles import ProfileError
from hub.profiles import ieee11073 as F

UUIDS = sorted(P.supported(), key=str)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_decode(uuid, data, **opts):
    try:
        rs = P.decode(uuid, data, **opts)
    except ProfileError as e:
        assert e.uuid == P.norm(uuid)
        assert e.offset is None or 0 <= e.offset <= len(data)
        assert str(e).startswith(P.label(uuid))
        return None
    for r in rs:
        full = R.complete(r, 1, DEV, [1, 2])
        cbor2.loads(R.encode(full))   # the journal can carry it
    P.parse(uuid, data, **opts)      # whatever decodes also parses
    return rs


@FAST
@given(uuid=st.sampled_from(UUIDS), data=st.binary(max_size=96), crc=st.sampled_from([None, True, False]))
def test_fuzz_random_bytes(uuid, data, crc):
    check_decode(uuid, data, crc=crc)


@st.composite
def mutated(draw):
    uuid = draw(st.sampled_from(UUIDS))
    b = bytearray(bytes.fromhex(SEEDS[uuid].replace(" ", "")))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
        i = draw(st.integers(0, max(len(b) - 1, 0)))
        if op == "flip" and b:
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and b:
            b[i] = draw(st.integers(0, 255))
        elif op == "insert":
            b.insert(i, draw(st.integers(0, 255)))
        elif op == "delete" and b:
            del b[i]
        elif op == "truncate":
            del b[i:]
        else:
            b += draw(st.binary(min_size=1, max_size=6))
    return uuid, bytes(b)


@settings(max_examples=1500, deadline=None)
@given(mutated())
def test_fuzz_mutated_seeds(case):
    uuid, data = case
    check_decode(uuid, data)


class DrawRand:
    """profile_cases builders draw through .below(n): here hypothesis chooses."""

    def __init__(self, data):
        self.data = data

    def below(self, n):
        return self.data.draw(st.integers(0, n - 1))


@pytest.mark.parametrize("uuid, build, nflags", CASES, ids=[P.label(c[0]) for c in CASES])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_with_generated_values(uuid, build, nflags, data):
    flags = data.draw(st.integers(0, nflags - 1))
    roundtrip(uuid, build(flags, DrawRand(data)))


def int_slots(fields):
    """(dict, key) of every integer field, also inside CGM records and calibration records."""
    out = []
    for k, v in fields.items():
        if isinstance(v, int) and not isinstance(v, bool):
            out.append((fields, k))
        elif isinstance(v, dict):
            out += int_slots(v)
        elif k == "records":
            for rec in v:
                out += int_slots(rec)
        elif isinstance(v, list):
            out += [(v, i) for i, x in enumerate(v) if isinstance(x, int) and not isinstance(x, bool)]
    return out


WITH_INTS = [c for c in CASES if int_slots(c[1](c[2] - 1, __import__("fwtest").Rand(1)))]


@pytest.mark.parametrize("uuid, build, nflags", WITH_INTS, ids=[P.label(c[0]) for c in WITH_INTS])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_encoders_refuse_out_of_range_values(uuid, build, nflags, data):
    fields = build(data.draw(st.integers(0, nflags - 1)), DrawRand(data))
    slots = int_slots(fields)
    assume(slots)
    d, k = data.draw(st.sampled_from(slots))
    d[k] = data.draw(st.one_of(st.integers(-(2 ** 70), -1), st.integers(2 ** 8, 2 ** 70)))
    try:
        b = P.encode(uuid, fields)
    except ProfileError:
        return
    check_decode(uuid, b)   # still in range for that field: a valid payload


# (word bits, exponent bits, decode, encode, the five special words)
FLOATS = {"SFLOAT": (16, 4, F.sfloat, F.to_sfloat, (0x07FF, 0x0800, 0x07FE, 0x0802, 0x0801)),
          "FLOAT": (32, 8, F.float32, F.to_float32, (0x007FFFFF, 0x00800000, 0x007FFFFE, 0x00800002, 0x00800001))}


@pytest.mark.parametrize("kind", FLOATS)
@given(data=st.data())
def test_ieee11073_words_are_exact_decimals(kind, data):
    bits, ebits, decode, encode, specials = FLOATS[kind]
    raw = data.draw(st.integers(0, 2 ** bits - 1))
    v = decode(raw)
    if F.is_special(v):
        assert raw in specials
        return
    m, e = v
    mbits = bits - ebits
    exp = raw >> mbits
    exp = exp - (1 << ebits) if exp >= 1 << (ebits - 1) else exp
    man = raw & ((1 << mbits) - 1)
    man = man - (1 << mbits) if man >= 1 << (mbits - 1) else man
    assert Decimal(m).scaleb(e) == Decimal(man).scaleb(exp)
    assert Decimal(F.text(v)) == Decimal(m).scaleb(e)
    assert encode(v) == raw


@given(st.lists(st.integers(-(2 ** 23), 2 ** 23 - 1), min_size=1, max_size=120), st.integers(0, 2 ** 64 - 1))
def test_ecg_frame_against_independent_packing(samples, ts):
    frame = bytes([0]) + struct.pack("<Q", ts) + bytes([0]) + b"".join(struct.pack("<i", s)[:3] for s in samples)
    (r,) = P.decode(P.PMD_DATA, frame)
    assert r[R.VAL] == samples
    assert (r[R.DTS] - 946684800) * 10 ** 9 + r[R.CTX]["ns"] == ts
    assert P.encode(P.PMD_DATA, P.parse(P.PMD_DATA, frame)) == frame


@given(st.integers(0, 0xFFFF), st.sampled_from([0, 1]))
def test_glucose_units_shift_the_exponent_exactly(raw, molar):
    v = F.sfloat(raw)
    assume(not F.is_special(v))
    data = bytes([0x02 | (molar << 2), 1, 0, 0xE8, 0x07, 1, 1, 0, 0, 0]) + struct.pack("<H", raw) + b"\x11"
    (r,) = P.decode(0x2A18, data)
    m, e = v
    sent = Decimal(m).scaleb(e)                         # kg/L or mol/L
    got = Decimal(r[R.VAL]).scaleb(r.get(R.EXP, 0))     # mg/dL or mmol/L
    assert got == sent * (1000 if molar else 100000)
    assert r[R.UNIT] == ("mmol/L" if molar else "mg/dL")
