# Continuous Glucose Monitoring (hub.profiles.cgm): the E2E-CRC check
# values, published payloads (Nordic Android-BLE-Common-Library, nRF
# Toolbox) with and without CRC, several records per notification, and
# the Specific Ops Control Point. Runs on both runtimes.

from fwtest import raises

from hub import profiles as P
from hub import reading as R
from hub.profiles import ProfileError
from hub.profiles import cgm
from hub.reading import CTX, DTS, EXP, FLAGS, MDC, REC, TZO, UNIT, VAL

DEV = b"\x00\x11\x22\x33\x44\x55\x66"


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


def test_crc_check_values():
    # reference 3.8: CRC-16/MCRF4XX
    assert cgm.crc16(b"123456789") == 0x6F91
    assert cgm.crc16(h("3E 01 02 03 04 05 06 07 08 09")) == 0x2F01   # CGMS 1.0.1 example, sent as 01 2F
    assert cgm.crc16(h("05 00 3F 3F FF")) == 0xE0A7


def test_measurement_full_with_crc():
    # Nordic: size 15, flags E3, 12.34 mg/dL, offset 5, Status 02 / Cal-Temp 14 / Warning FF,
    # trend 0.2, quality 99.7, E2E-CRC 0x3F8E
    data = h("0F E3 D2E4 0500 02 14 FF 02F0 E5F3 8E3F")
    (rec,) = P.parse(0x2AA7, data)["records"]
    assert rec == {"flags": 0xE3, "conc": (1234, -2), "toff": 5, "status": 0xFF1402, "trend": (2, -1),
                   "quality": (997, -1), "crc": True}
    assert rec["status"] & (1 << 1)      # device battery low (Status octet)
    assert rec["status"] & (1 << 12)     # sensor temperature too high (Cal/Temp octet)
    assert rec["status"] & (1 << 10)     # calibration recommended
    g, t = P.decode(0x2AA7, data)
    assert g == {MDC: 160212, VAL: 1234, EXP: -2, UNIT: "mg/dL", REC: 5, FLAGS: 0xFF1402, CTX: {"qual": [997, -1]}}
    assert t == {MDC: 8418008, VAL: 2, EXP: -1, UNIT: "mg/dL/min", REC: 5}
    for r in (g, t):
        R.complete(r, 1, DEV, [1, 1])
    # a flipped bit anywhere fails the CRC (or the layout)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x04
        raises(ProfileError, P.parse, 0x2AA7, bytes(bad))
    e = raises(ProfileError, P.parse, 0x2AA7, data[:-2] + b"\x8f\x3f")
    assert e.offset == 13 and "E2E-CRC" in str(e)


def test_measurement_small_double_and_crc_options():
    one = h("06 00 0C10 0600")   # 12e1 mg/dL at 6 minutes
    assert P.parse(0x2AA7, one)["records"] == [{"flags": 0, "conc": (12, 1), "toff": 6, "crc": False}]
    two = h("06 00 0C10 0500 06 00 0C10 0600")
    rs = P.decode(0x2AA7, two)
    assert [r[REC] for r in rs] == [5, 6] and rs[0][VAL] == 12 and rs[0][EXP] == 1
    raises(ProfileError, P.parse, 0x2AA7, one, crc=True)           # feature says CRC: missing
    with_crc = h("08 00 0C10 0600") + bytes([cgm.crc16(h("08 00 0C10 0600")) & 0xFF,
                                             cgm.crc16(h("08 00 0C10 0600")) >> 8])
    assert P.parse(0x2AA7, with_crc, crc=True)["records"][0]["crc"] is True
    raises(ProfileError, P.parse, 0x2AA7, with_crc, crc=False)     # a size that fits neither
    # Nordic's wrong CRC (0x6F58, the right one is 0x6F59)
    assert cgm.crc16(h("08 00 0C10 0600")) == 0x6F59
    raises(ProfileError, P.parse, 0x2AA7, h("08 00 0C10 0600 586F"))


def test_nrf_toolbox_measurements():
    data = bytearray(h("0F E3 7800 1E00 01 02 03 5000 6000 3412"))
    c = cgm.crc16(data, 0, 13)
    data[13], data[14] = c & 0xFF, c >> 8
    (rec,) = P.parse(0x2AA7, bytes(data))["records"]
    # Status 0x01 (session stopped), Cal/Temp 0x02 (calibration not allowed), Warning 0x03
    assert rec["status"] == 0x030201 and rec["conc"] == (120, 0) and rec["toff"] == 30
    assert rec["trend"] == (80, 0) and rec["quality"] == (96, 0)
    raises(ProfileError, P.parse, 0x2AA7, h("05 00 7800 1E"))       # size below 6
    raises(ProfileError, P.parse, 0x2AA7, h("08 00 7800 1E00 1234"))  # bad CRC
    raises(ProfileError, P.parse, 0x2AA7, b"")


def test_reserved_flag_bits_carried():
    (g,) = P.decode(0x2AA7, h("06 1C 7800 1E00"))
    assert g[CTX] == {"rfu": 0x1C} and P.parse(0x2AA7, h("06 1C 7800 1E00"))["records"][0]["flags"] == 0x1C


def test_annunciation_octets_in_wire_order():
    # only the Cal/Temp octet (flag bit 6): it is bits 8-15, not bits 0-7 (reference 3.2)
    (rec,) = P.parse(0x2AA7, h("07 40 7800 1E00 10"))["records"]
    assert rec["status"] == 0x1000
    # Status and Warning octets present, Cal/Temp absent
    (rec,) = P.parse(0x2AA7, h("08 A0 7800 1E00 21 03"))["records"]
    assert rec["status"] == 0x030021


def test_session_start_time_and_readings_with_dts():
    f = P.parse(0x2AAA, h("E207 04 18 0D 08 18 08 04 E0C2"))
    assert f == {"time": (2018, 4, 24, 13, 8, 24), "tz": 8, "dst": 4, "crc": True}
    dts, tzo = cgm.start(f)
    assert tzo == 8 * 15 + 60   # time zone in 15-minute steps (not minutes), DST +1 h
    assert dts == 1524575304
    g, t = P.decode(0x2AA7, h("0F E3 D2E4 0500 02 14 FF 02F0 E5F3 8E3F"), start=dts, tzo=tzo)
    assert g[DTS] == dts + 300 and g[TZO] == 180 and t[DTS] == dts + 300
    raises(ProfileError, P.parse, 0x2AAA, h("E207 04 18 0D 08 18 08 04 E0C3"))   # CRC error
    raises(ProfileError, P.parse, 0x2AAA, h("E207 04 18 0D 08 18 08 04 E0"))     # truncated CRC
    f = P.parse(0x2AAA, h("0000 04 18 0D 08 18 08 02"))
    assert f["crc"] is False and cgm.start(f) == (None, 150)
    assert P.encode(0x2AAA, {"time": (2018, 4, 24, 13, 8, 24), "tz": 8, "dst": 4, "crc": True}) == \
        h("E207 04 18 0D 08 18 08 04 E0C2")


def test_feature_status_run_time():
    f = P.parse(0x2AA8, h("6E9E01 16 8AC1"))
    assert f == {"features": 0x019E6E, "type": 6, "loc": 1, "crc": True} and cgm.crc_supported(f)
    f = P.parse(0x2AA8, h("6E8E01 16 FFFF"))
    assert f == {"features": 0x018E6E, "type": 6, "loc": 1, "crc": False, "crc_field": 0xFFFF}
    raises(ProfileError, P.parse, 0x2AA8, h("6E9E01 16 AFBE"))   # CRC error
    raises(ProfileError, P.parse, 0x2AA8, h("6E9E01 16"))        # CRC missing
    assert P.parse(0x2AA9, h("0500 3F3FFF A7E0")) == {"toff": 5, "status": 0xFF3F3F, "crc": True}
    assert P.parse(0x2AA9, h("0600 010101")) == {"toff": 6, "status": 0x010101, "crc": False}
    raises(ProfileError, P.parse, 0x2AA9, h("0600 010101 A7E0"))
    raises(ProfileError, P.parse, 0x2AA9, h("0600 010101 01"))
    assert P.parse(0x2AAB, h("A800")) == {"hours": 168, "crc": False}
    assert P.decode(0x2AA9, h("0600 010101")) == []


def test_specific_ops_control_point():
    assert P.parse(0x2AAC, h("1C 02 01")) == {"op": 28, "request": 2, "code": 1, "crc": False}
    assert P.parse(0x2AAC, h("1C 02 01 3C3B")) == {"op": 28, "request": 2, "code": 1, "crc": True}
    assert P.parse(0x2AAC, h("1C 02 02 A709"))["code"] == 2
    raises(ProfileError, P.parse, 0x2AAC, h("1C 02 02 A701"))
    cal = P.parse(0x2AAC, h("06 0120 0A00 32 1400 0100 04 BFB2"))["cal"]
    assert cal == {"conc": (1, 2), "time": 10, "type": 2, "loc": 3, "next": 20, "record": 1, "status": 4}
    assert P.parse(0x2AAC, h("09 0CF0"))["level"] == (12, -1)          # patient high 1.2
    assert P.parse(0x2AAC, h("0C 0BC0 34BE"))["level"] == (11, -4)     # patient low, with CRC
    assert P.parse(0x2AAC, h("03 0A 8A75")) == {"op": 3, "interval": 10, "crc": True}
    raises(ProfileError, P.parse, 0x2AAC, h("06 0A 01"))                # calibration record truncated
    # requests the hub writes
    assert cgm.socp(cgm.START_SESSION) == h("1A")
    assert cgm.socp(cgm.STOP_SESSION, crc=True) == h("1B") + bytes([cgm.crc16(h("1B")) & 0xFF, cgm.crc16(h("1B")) >> 8])
    assert cgm.socp(cgm.SET_INTERVAL, interval=5) == h("01 05")
    assert cgm.socp(cgm.ALERTS["hypo"], level=(70, 0)) == h("0D 4600")
    assert cgm.socp(cgm.GET_CALIBRATION, record=0xFFFF) == h("05 FFFF")
    assert P.decode(0x2AAC, h("1C 02 01")) == []
