# The profile registry (hub.profiles): UUID forms, lazy loading, the one
# error type, and hub.reading.complete(). Runs on both runtimes.

import sys

from fwtest import raises

from hub import profiles as P
from hub import reading as R
from hub.profiles import ProfileError

DEV = b"\x00\x11\x22\x33\x44\x55\x66"
BATTERY = b"\x5a"


def test_uuid_forms():
    for u in (0x2A19, "2a19", "2A19", "0x2A19", " 0x2a19 ", "00002a19-0000-1000-8000-00805f9b34fb",
              "00002A19-0000-1000-8000-00805F9B34FB", "00002a1900001000800000805f9b34fb", b"\x19\x2a",
              bytes(reversed(bytes.fromhex("00002a1900001000800000805f9b34fb")))):
        assert P.norm(u) == 0x2A19, u
        assert P.decode(u, BATTERY)[0][R.VAL] == 90
    pmd = "FB005C82-02E7-F387-1CAD-8ACD2D8DF0C8"
    for u in (pmd, pmd.lower(), pmd.replace("-", ""), "0x" + pmd.lower(),
              bytes(reversed(bytes.fromhex(pmd.replace("-", ""))))):
        assert P.norm(u) == P.PMD_DATA, u
    assert P.label(0x2A18) == "Glucose Measurement (0x2A18)"
    assert P.label(P.PMD_CP) == "Polar PMD Control Point (FB005C81-02E7-F387-1CAD-8ACD2D8DF0C8)"
    assert P.name("2a52") == "Record Access Control Point" and P.name(0x1234) is None


def test_bad_and_unsupported_uuids():
    for u in ("", "xyz", "0x", "2a18-0000", -1, 1.5, None, True, b"\x01", "G000", 0x100000000,
              "00002a19-0000-1000-8000-00805f9b34fg", "00002a19_0000-1000-8000-00805f9b34fb"):
        e = raises(ProfileError, P.decode, u, BATTERY)
        assert isinstance(e, ValueError) and "UUID" in str(e), u
    e = raises(ProfileError, P.decode, 0x1234, BATTERY)
    assert "not supported" in str(e) and e.uuid == 0x1234
    e = raises(ProfileError, P.decode, "12345678-1234-1234-1234-123456789ABC", BATTERY)
    assert "12345678-1234-1234-1234-123456789ABC" in str(e)
    raises(ProfileError, P.decode, 0x2A19, "5a")     # payload must be bytes
    raises(ProfileError, P.decode, 0x2A19, None)
    assert P.decode(0x2A19, bytearray(BATTERY)) == P.decode(0x2A19, memoryview(BATTERY))


def test_supported_characteristics():
    keys = P.supported()
    assert len(keys) == 44
    for k in (0x2A18, 0x2A34, 0x2A51, 0x2A52, 0x2AA7, 0x2AA8, 0x2AA9, 0x2AAA, 0x2AAB, 0x2AAC, 0x2A37, 0x2A35,
              0x2A36, 0x2A5E, 0x2A5F, 0x2A60, 0x2A1C, 0x2A1E, 0x2A9D, 0x2A9E, 0x2A19, 0x2A29, 0x2A24, 0x2A25,
              0x2A2B, 0x2A08, P.PMD_CP, P.PMD_DATA):
        assert k in keys, P.label(k)
        assert P.name(k)


def test_profile_modules_load_lazily():
    P.forget()
    assert P.loaded() == []
    P.decode(0x2A19, BATTERY)
    assert "battery" in P.loaded() and "glucose" not in P.loaded() and "polar_pmd" not in P.loaded()
    P.decode(0x2A18, bytes.fromhex("00 0100 E407 05 15 0A 1E 2D".replace(" ", "")))
    assert "glucose" in P.loaded() and "cgm" not in P.loaded()
    P.forget()
    assert "hub.profiles.glucose" not in sys.modules
    assert P.decode(0x2A19, BATTERY)[0][R.VAL] == 90   # loads again


def test_keep_unloads_the_codecs_no_characteristic_needs():
    P.forget()
    bp = P.encode(0x2A35, {"flags": 0, "sys": (121, 0), "dia": (79, 0), "map": (93, 0)})
    glucose = bytes.fromhex("00 0100 E407 05 15 0A 1E 2D".replace(" ", ""))
    P.decode(0x2A35, bp)
    P.decode(0x2A18, glucose)
    P.decode(0x2A19, BATTERY)
    assert "blood_pressure" in P.loaded() and "glucose" in P.loaded() and "wire" in P.loaded()
    dropped = P.keep([0x2A18, "2a52", 0x1234])  # an unsupported one is passed over
    assert sorted(dropped) == ["battery", "blood_pressure"]
    assert "hub.profiles.blood_pressure" not in sys.modules and "blood_pressure" not in P.loaded()
    assert "glucose" in P.loaded() and "racp" not in dropped
    assert "wire" in P.loaded() and "ieee11073" in P.loaded()  # shared helpers stay: others hold their names
    assert P.decode(0x2A35, bp)[0][R.MDC] == 150020  # loads again
    P.decode(P.PMD_CP, bytes.fromhex("f0010000"))
    assert sorted(P.keep([])) == ["blood_pressure", "glucose"]
    assert P.keep([]) == [] and "polar_pmd" in P.loaded()  # native code: loaded once a boot


def test_profile_error_names_characteristic_and_offset():
    e = raises(ProfileError, P.decode, 0x2A35, b"\x00\x01\x02\x03\x04\x05")
    assert isinstance(e, ValueError)
    assert e.uuid == 0x2A35 and e.offset == 5
    assert str(e).startswith("Blood Pressure Measurement (0x2A35): ") and str(e).endswith(" at byte 5")
    assert "mean arterial pressure" in str(e)


def test_options_only_reach_profiles_that_know_them():
    g = bytes.fromhex("02 0700 E807 0B 1D 08 00 00 68B0 11".replace(" ", ""))
    assert P.decode(0x2A18, g, crc=True, start=5, rate=130) == P.decode(0x2A18, g)


def test_complete_adds_the_hub_side_fields():
    (p,) = P.decode(0x2A19, BATTERY)
    r = R.complete(p, 7, DEV, [3, 1234], hts=1700000000000)
    assert r[R.SEQ] == 7 and r[R.DEV] == DEV and r[R.MONO] == [3, 1234] and r[R.HTS] == 1700000000000
    assert R.SEQ not in p and R.DEV not in p          # the partial reading is left alone
    assert R.HTS not in R.complete(p, 8, DEV, [3, 1235])
    assert R.decode(R.encode(r)) == r
    raises(R.ReadingError, R.complete, r, 9, DEV, [3, 1])            # already complete
    raises(R.ReadingError, R.complete, {R.MDC: 1}, 9, DEV, [3, 1])   # no value
    raises(R.ReadingError, R.complete, p, -1, DEV, [3, 1])
    raises(R.ReadingError, R.complete, p, 1, b"\x00", [3, 1])
    raises(R.ReadingError, R.complete, [p], 1, DEV, [3, 1])


def test_decoded_readings_are_fresh_objects():
    (a,) = P.decode(0x2A19, BATTERY)
    a[R.VAL] = 1
    (b,) = P.decode(0x2A19, BATTERY)
    assert b[R.VAL] == 90
