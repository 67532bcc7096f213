# Every flag combination of every characteristic round-trips: fields ->
# encode -> parse gives the same fields, re-encoding gives the same bytes,
# and decode gives readings that hub.reading accepts. Runs on both runtimes.

from fwtest import Rand

# profile_cases (the field generators) is test scaffolding of ~30 KB; the
# codecs themselves decode within the 100 KB heap (test_profile_fuzz).
MPY_HEAP = "200k"

from hub import profiles as P
from profile_cases import CASES, roundtrip


def _walk(lo, hi):
    for uuid, build, nflags in CASES[lo:hi]:
        rnd = Rand(uuid if isinstance(uuid, int) else 7)
        for f in range(nflags):
            for _ in range(3):
                roundtrip(uuid, build(f, rnd))
    P.forget()


def test_glucose_and_racp():
    _walk(0, 4)


def test_cgm():
    _walk(4, 10)


def test_heart_rate_blood_pressure():
    _walk(10, 16)


def test_pulse_oximeter_thermometer_weight():
    _walk(16, 25)


def test_battery_time_device_information():
    _walk(25, 38)


def test_polar_pmd():
    _walk(38, 40)


def test_every_case_is_walked():
    assert len(CASES) == 40
    keys = [P.norm(c[0]) for c in CASES]
    for k in P.supported():
        assert k in keys or k in (0x2A25, 0x2A26, 0x2A27, 0x2A28), P.label(k)
