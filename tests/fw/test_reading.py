# The Reading record (docs/reading.md). Runs on both runtimes.

from fwtest import raises

from hub import reading as R

DEV = b"\x00\x11\x22\x33\x44\x55\x66"


def glucose():
    return R.make(seq=17, dev=DEV, mdc=160184, val=104, mono=[3, 123456], unit="mg/dL",
                  dts=1700000000, rec=42, flags=0x03, hts=1700000000123)


def test_glucose_round_trip_is_compact():
    r = glucose()
    data = R.encode(r)
    assert R.decode(data) == r
    assert len(data) <= 60, len(data)


def test_exponent_keeps_precision():
    r = R.make(seq=1, dev=DEV, mdc=150364, val=367, exp=-1, mono=[1, 5], unit="Cel")
    assert R.decode(R.encode(r))[R.VAL] == 367
    assert abs(R.value(r) - 36.7) < 1e-9
    assert R.value(glucose()) == 104


def test_compound_value():
    r = R.make(seq=2, dev=DEV, mdc=150020, val=[120, 80, 93], comp=[150021, 150022, 150023],
               mono=[1, 5], unit="mm[Hg]")
    assert R.decode(R.encode(r))[R.COMP] == [150021, 150022, 150023]
    assert R.value(r, 1) == 80


def test_special_values_only_as_floats():
    nan = float("nan")
    r = R.make(seq=3, dev=DEV, mdc=150456, val=nan, mono=[1, 1])
    v = R.decode(R.encode(r))[R.VAL]
    assert v != v
    raises(R.ReadingError, R.make, seq=3, dev=DEV, mdc=150456, val=1.5, mono=[1, 1])


def test_defects_are_reading_errors():
    base = glucose()
    bad = []
    for k in (R.SEQ, R.DEV, R.MDC, R.VAL, R.MONO):
        d = dict(base)
        del d[k]
        bad.append(d)
    for k, v in ((R.SEQ, -1), (R.SEQ, "1"), (R.DEV, b"\x00"), (R.VAL, "x"), (R.MONO, [1]),
                 (R.EXP, 1.0), (R.UNIT, 5), (R.PRIO, 9), (R.COMP, [1, 2]), (99, 1), (R.SEQ, True)):
        d = dict(base)
        d[k] = v
        bad.append(d)
    for d in bad:
        raises(R.ReadingError, R.validate, d)
    raises(ValueError, R.decode, b"\xa1\x00")
    raises(ValueError, R.decode, b"\x00")


def test_named_view():
    n = R.to_named(glucose())
    assert n["dev"] == "11:22:33:44:55:66"
    assert n["unit"] == "mg/dL" and n["rec"] == 42
