# IEEE 11073-20601 SFLOAT / FLOAT (hub.profiles.ieee11073): the published
# examples, every special value, and every one of the 65536 SFLOAT words
# round-tripping. Runs on both runtimes.

from fwtest import raises

from hub.profiles import ProfileError
from hub.profiles import ieee11073 as F

INF = float("inf")


def test_sfloat_published_examples():
    # reference 1.1 (PHD IG table) and the precision examples
    assert F.sfloat(0x1002) == (2, 1)        # 20
    assert F.sfloat(0x2002) == (2, 2)        # 200
    assert F.sfloat(0x00C8) == (200, 0)      # 200
    assert F.sfloat(0x04D2) == (1234, 0)     # 1234
    assert F.sfloat(0x0B2E) == (-1234, 0)    # -1234
    assert F.sfloat(0xFFFF) == (-1, -1)      # -0.1, an ordinary number
    assert F.sfloat(0x0002) == (2, 0)        # 2
    assert F.sfloat(0xF014) == (20, -1)      # 2.0
    assert F.sfloat(0xE0C8) == (200, -2)     # 2.00
    # glucose 104 mg/dL sent as 104e-5 kg/L (wire 68 B0): exact, no float rounding
    m, e = F.sfloat(0xB068)
    assert (m, e) == (104, -5)
    assert F.value((m, e), 5) == (104, 0, None)


def test_sfloat_specials_compare_the_whole_word():
    assert F.sfloat(0x07FF) == F.NAN
    assert F.sfloat(0x0800) == F.NRES
    assert F.sfloat(0x07FE) == F.PINF
    assert F.sfloat(0x0802) == F.NINF
    assert F.sfloat(0x0801) == F.RESERVED
    # same mantissas with another exponent are ordinary numbers
    assert F.sfloat(0x17FF) == (2047, 1)
    assert F.sfloat(0x1800) == (-2048, 1)
    assert F.sfloat(0xF7FE) == (2046, -1)


def test_float_published_examples_and_specials():
    assert F.float32(0xFF000014) == (20, -1)
    assert F.float32(0xFE0000C8) == (200, -2)
    assert F.float32(0x00FFFB2E) == (-1234, 0)
    assert F.float32(0xFE000EB0) == (3760, -2)   # 37.60, wire B0 0E 00 FE
    assert F.float32(0x007FFFFF) == F.NAN
    assert F.float32(0x00800000) == F.NRES
    assert F.float32(0x007FFFFE) == F.PINF
    assert F.float32(0x00800002) == F.NINF
    assert F.float32(0x00800001) == F.RESERVED
    # 0x7FFFFFFF is a huge number with exponent 127, not +INF (reference 13.5)
    assert F.float32(0x7FFFFFFF) == (-1, 127)


def test_every_sfloat_word_round_trips():
    for raw in range(0x10000):
        assert F.to_sfloat(F.sfloat(raw)) == raw, hex(raw)


def test_float_words_round_trip():
    for e in (0, 1, 0x7F, 0x80, 0xFE, 0xFF):
        for m in (0, 1, 0x7FFFFD, 0x7FFFFE, 0x7FFFFF, 0x800000, 0x800001, 0x800002, 0x800003, 0xFFFFFF):
            raw = (e << 24) | m
            assert F.to_float32(F.float32(raw)) == raw, hex(raw)


def test_encoder_refuses_what_does_not_fit():
    for bad in ((2046, 0), (2047, 0), (-2048, 0), (-2046, 0), (2048, 1), (1, 8), (1, -9), (1.5, 0),
                ("x", 0), (1,), "nan", None, (True, 0)):
        raises(ProfileError, F.to_sfloat, bad)
    assert F.to_sfloat((2045, 0)) == 0x07FD
    assert F.to_sfloat((-2045, 0)) == 0x0803
    assert F.to_sfloat((2047, 7)) == 0x77FF
    raises(ProfileError, F.to_float32, (0x7FFFFE, 0))
    raises(ProfileError, F.to_float32, (1, 128))
    assert F.to_float32((0x7FFFFF, 1)) == 0x017FFFFF


def test_value_for_readings():
    assert F.value((367, -1)) == (367, -1, None)
    assert F.value((104, -5), 5) == (104, 0, None)
    v, e, s = F.value(F.NAN)
    assert v != v and e == 0 and s is None
    v, e, s = F.value(F.NRES)
    assert v != v and s == "NRes"
    v, e, s = F.value(F.RESERVED)
    assert v != v and s == "reserved"
    assert F.value(F.PINF) == (INF, 0, None)
    assert F.value(F.NINF) == (-INF, 0, None)


def test_text_keeps_precision():
    assert F.text((1234, -2)) == "12.34"
    assert F.text((20, -1)) == "2.0"
    assert F.text((2, 2)) == "200"
    assert F.text((-5, -3)) == "-0.005"
    assert F.text((0, -2)) == "0.00"
    assert F.text("NRes") == "NRes"
