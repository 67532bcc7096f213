"""The host's typed reading (samband.reading.Reading) against the firmware's
Reading model: every reading the hub's profile codecs make, completed as the
hub completes it, survives map -> Reading -> map unchanged, and the typed
fields say what the integer keys say."""

import pytest
from fwtest import Rand
from profile_cases import CASES, DEV

from hub import profiles as P
from hub import reading as R
from samband.reading import Reading


def all_readings():
    rnd = Rand(7)
    seq = 0
    for uuid, build, flags in CASES:
        for f in range(flags):
            try:
                payload = P.encode(uuid, build(f, rnd))
            except P.ProfileError:
                continue  # a flag combination the builder cannot fill: covered by the profile tests
            for partial in P.decode(uuid, payload):
                seq += 1
                yield R.complete(partial, seq, DEV, [2, seq * 10], hts=1_700_000_000_000 + seq)


def test_every_profile_reading_round_trips():
    n = 0
    for m in all_readings():
        r = Reading.from_map(m)
        assert r.to_map() == m
        assert r.seq == m[R.SEQ] and r.mdc == m[R.MDC] and r.hts == m[R.HTS] and r.mono == tuple(m[R.MONO])
        assert r.unit == m.get(R.UNIT) and r.rec == m.get(R.REC) and r.prio == m.get(R.PRIO, 0)
        assert r.named() == R.to_named(m)
        n += 1
    assert n > 1000, n


def test_value_address_and_priority():
    m = R.make(seq=1, dev=b"\x01" + bytes.fromhex("C05A4B000004"), mdc=150020, val=[120, 80, 93], exp=-1,
               comp=[150021, 150022, 150023], mono=[1, 5], unit="mm[Hg]", prio=R.PRIO_ALARM)
    r = Reading.from_map(m)
    assert r.addr == "C0:5A:4B:00:00:04/r"
    assert r.value(1) == pytest.approx(8.0) and r.is_alarm and not r.is_telemetry
    assert r.val == (120, 80, 93) and r.comp == (150021, 150022, 150023)
    with pytest.raises(AttributeError):
        r.seq = 2  # frozen: a stored reading does not change under the code that reads it


def test_invalid_maps_are_refused_by_the_firmwares_rules():
    good = R.make(seq=1, dev=DEV, mdc=1, val=1, mono=[1, 1])
    for bad in ({**good, R.DEV: b"\x00"}, {k: v for k, v in good.items() if k != R.MDC}, {**good, 99: 1}):
        with pytest.raises(R.ReadingError):
            Reading.from_map(bad)


def test_named_is_the_text_the_receiver_stored_before_readings_were_typed():
    # the receiver decodes the hub's canonical CBOR, whose map keys come in key order;
    # the JSON it stores (and the devkey hashed from it) must not change by typing
    import json
    n = 0
    for m in all_readings():
        d = R.decode(R.encode(m))
        typed = Reading.from_valid(d)
        assert typed == Reading.from_map(d)
        assert json.dumps(typed.named()) == json.dumps(R.to_named(d))
        n += 1
    assert n > 1000, n


def test_an_empty_context_survives():
    m = R.make(seq=1, dev=DEV, mdc=1, val=1, mono=[1, 1], ctx={})
    assert Reading.from_map(m).to_map() == m and Reading.from_map(m).named()["ctx"] == {}


def test_samband_receive_prints_the_typed_reading_it_is_given(capsys):
    # Ingest hands its on_reading callback a Reading; `samband receive` prints each one
    from samband.cli.receiver import _print_reading
    m = R.make(seq=5, dev=b"\x01" + bytes.fromhex("C05A4B000001"), mdc=160184, val=104, mono=[1, 5],
               unit="mg/dL", prio=R.PRIO_ALARM)
    _print_reading("00005a4d0001", 5, Reading.from_map(m))
    out = capsys.readouterr().out
    assert "hub 00005a4d0001 #5" in out and "C0:5A:4B:00:00:01/r" in out and "104 mg/dL" in out and "ALARM" in out
