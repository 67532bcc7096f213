# Heart rate, blood pressure, pulse oximeter, thermometer, weight scale,
# battery and device information: published example payloads (Nordic
# Android-BLE-Common-Library and nRF Toolbox tests, StanfordSpezi
# SpeziBluetooth PLX tests, the reference's facts) decode to the right
# values and readings. Runs on both runtimes.

from fwtest import raises

from hub import profiles as P
from hub import reading as R
from hub.profiles import ProfileError
from hub.reading import COMP, CTX, DTS, EXP, FLAGS, MDC, UNIT, VAL

DEV = b"\x00\x11\x22\x33\x44\x55\x66"
NAN = float("nan")


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


def valid(rs):
    for r in rs:
        R.complete(r, 1, DEV, [1, 1])
    return rs


# ---------------------------------------------------------------- heart rate

def test_heart_rate_published():
    assert valid(P.decode(0x2A37, h("00 64"))) == [{MDC: 147842, VAL: 100, UNIT: "/min", FLAGS: 0}]
    f = P.parse(0x2A37, h("07 6400"))   # uint16, contact detected
    assert f == {"flags": 7, "hr": 100, "contact": 3}
    # flags 0x19 is uint16 HR (a test comment says uint8; reference 13.4), energy, RR
    f = P.parse(0x2A37, h("19 4B00 3804 0404 3804"))
    assert f == {"flags": 0x19, "hr": 75, "contact": 0, "energy": 1080, "rr": [1028, 1080]}
    hr, ee, rr = valid(P.decode(0x2A37, h("19 4B00 3804 0404 3804")))
    assert ee == {MDC: 8454263, VAL: 1080, UNIT: "kJ"}
    assert rr == {MDC: 147240, VAL: [1028, 1080], UNIT: "s/1024"}
    raises(ProfileError, P.decode, 0x2A37, h("00"))
    raises(ProfileError, P.decode, 0x2A37, h("FF 64"))   # uint16 HR announced, one octet


def test_heart_rate_rr_rules():
    # nine RR values fit the default MTU with a uint8 HR
    f = P.parse(0x2A37, h("10 48") + bytes(range(18)))
    assert len(f["rr"]) == 9
    e = raises(ProfileError, P.parse, 0x2A37, h("10 48"))          # bit 4 but no RR
    assert e.offset == 2
    e = raises(ProfileError, P.parse, 0x2A37, h("10 48 0004 01"))  # odd octet left over
    assert e.offset == 4
    assert P.parse(0x2A37, h("E0 48"))["flags"] == 0xE0             # reserved bits carried
    assert P.decode(0x2A37, h("E0 48"))[0][FLAGS] == 0xE0


def test_reserved_flag_bits_travel_as_ctx_rfu():
    (r,) = valid(P.decode(0x2A1C, h("F8 7101 00FF")))
    assert r[CTX] == {"rfu": 0xF8}
    (w,) = valid(P.decode(0x2A9D, h("F0 B036")))
    assert w[CTX] == {"rfu": 0xF0}
    bp, = valid(P.decode(0x2A35, h("E0 7800 5000 5D00")))
    assert bp[CTX] == {"rfu": 0xE0}
    assert all(r[CTX]["rfu"] == 0x80 for r in valid(P.decode(0x2A5F, h("80 E8F3 84F3"))))


# ---------------------------------------------------------------- blood pressure

def test_blood_pressure_full():
    data = h("1E 8A00 5800 7800 0000 04 11 14 29 3B 3C00 01 2700")
    f = P.parse(0x2A35, data)
    assert f == {"flags": 0x1E, "unit": "mmHg", "sys": (138, 0), "dia": (88, 0), "map": (120, 0),
                 "time": (0, 4, 17, 20, 41, 59), "pulse": (60, 0), "user": 1, "status": 0x27}
    bp, pulse = valid(P.decode(0x2A35, data))
    assert bp == {MDC: 150020, VAL: [138, 88, 120], COMP: [150021, 150022, 150023], UNIT: "mm[Hg]",
                  FLAGS: 0x27, CTX: {"user": 1}}   # year unknown: no DTS
    assert pulse == {MDC: 149546, VAL: 60, UNIT: "/min", FLAGS: 0x27, CTX: {"user": 1}}


def test_blood_pressure_kpa_common_exponent():
    data = h("15 BDF0 0B00 9FF0 3C00 1200")   # 18.9 / 11 / 15.9 kPa, pulse 60, status
    bp, pulse = valid(P.decode(0x2A35, data))
    assert bp[VAL] == [189, 110, 159] and bp[EXP] == -1 and bp[UNIT] == "kPa"
    assert abs(R.value(R.complete(bp, 1, DEV, [1, 1]), 1) - 11.0) < 1e-9
    (bp,) = valid(P.decode(0x2A35, h("00 BDF0 0B00 9FF0")))
    assert bp[VAL] == [189, 110, 159] and FLAGS not in bp
    raises(ProfileError, P.decode, 0x2A35, bytes([1, 2, 3, 4, 5, 6]))
    raises(ProfileError, P.decode, 0x2A35, bytes([3, 2, 3, 4, 5, 6, 7]))   # time stamp announced


def test_blood_pressure_special_components():
    (bp,) = valid(P.decode(0x2A35, h("00 7800 0008 FF07")))   # 120 / NRes / NaN
    assert bp[VAL][0] == 120 and bp[VAL][1] != bp[VAL][1] and bp[VAL][2] != bp[VAL][2]
    assert bp[CTX]["special"] == [None, "NRes", None]


def test_intermediate_cuff_pressure():
    (icp,) = valid(P.decode(0x2A36, h("02 9600 FF07 FF07 E807 0B 1D 08 00 00")))
    assert icp == {MDC: 150300, VAL: 150, UNIT: "mm[Hg]", DTS: 1732867200, CTX: {"interim": True}}


# ---------------------------------------------------------------- pulse oximeter

def test_plx_continuous_published():
    rs = valid(P.decode(0x2A5F, bytes([0, 232, 243, 132, 243])))
    assert rs == [{MDC: 150456, VAL: 1000, EXP: -1, UNIT: "%"}, {MDC: 149530, VAL: 900, EXP: -1, UNIT: "/min"}]
    rs = valid(P.decode(0x2A5F, bytes([28, 95, 0, 90, 0, 32, 0, 0, 0, 0, 87, 240])))
    assert [r[MDC] for r in rs] == [150456, 149530, 150448]
    assert rs[2][VAL] == 87 and rs[2][EXP] == -1 and rs[0][FLAGS] == 0x20 and rs[0][CTX] == {"dss": 0}
    data = bytes([31, 222, 243, 202, 243, 202, 243, 90, 245, 212, 243, 178, 242, 32, 1, 0, 0, 0, 122, 227])
    f = P.parse(0x2A5F, data)
    assert f == {"flags": 31, "spo2": (990, -1), "pr": (970, -1), "fast": [(970, -1), (1370, -1)],
                 "slow": [(980, -1), (690, -1)], "mstatus": 0x0120, "dss": 0, "pai": (890, -2)}
    rs = valid(P.decode(0x2A5F, data))
    mods = [r.get(CTX, {}).get("mod") for r in rs]
    assert mods == [None, None, 150580, 150580, 150584, 150584, None]


def test_plx_spot_check_published():
    data = bytes([15, 172, 243, 190, 245, 232, 7, 11, 29, 23, 8, 57, 32, 64, 34, 0, 0, 102, 227])
    f = P.parse(0x2A5E, data)
    assert f == {"flags": 15, "spo2": (940, -1), "pr": (1470, -1), "time": (2024, 11, 29, 23, 8, 57),
                 "mstatus": 0x4020, "dss": 0x22, "pai": (870, -2)}
    spo2, pr, pai = valid(P.decode(0x2A5E, data))
    assert spo2 == {MDC: 150456, VAL: 940, EXP: -1, UNIT: "%", DTS: 1732921737, FLAGS: 0x4020,
                    CTX: {"mod": 150588, "dss": 0x22}}
    assert pr[VAL] == 1470 and pai[MDC] == 150448 and pai[CTX]["mod"] == 150588
    (spo2, pr) = valid(P.decode(0x2A5E, bytes([0x11, 172, 243, 190, 245, 232, 7, 11, 29, 23, 8, 57])))
    assert spo2[CTX] == {"mod": 150588, "noclock": True} and spo2[DTS] == 1732921737


def test_plx_features_published():
    f = P.parse(0x2A60, bytes([163, 0, 64, 16, 128, 1, 0]))
    assert f == {"features": 0xA3, "mstatus": 0x1040, "dss": 0x0180}
    raises(ProfileError, P.parse, 0x2A60, bytes([163, 0, 64, 16, 128, 1]))


# ---------------------------------------------------------------- thermometer

def test_temperature_published():
    data = h("06 B00E00FE DC07 0C 05 0B 32 1B 04")
    f = P.parse(0x2A1C, data)
    assert f == {"flags": 6, "temp": (3760, -2), "unit": "Cel", "time": (2012, 12, 5, 11, 50, 27), "type": 4}
    assert valid(P.decode(0x2A1C, data)) == [{MDC: 188432, VAL: 3760, EXP: -2, UNIT: "Cel", DTS: 1354708227}]
    e = raises(ProfileError, P.decode, 0x2A1C, data[:-1])   # type announced, missing
    assert e.offset == 12


def test_temperature_units_types_specials():
    (r,) = valid(P.decode(0x2A1C, h("01 DA0300FF")))   # 98.6 degF, no type
    assert r == {MDC: 150364, VAL: 986, EXP: -1, UNIT: "[degF]"}
    (r,) = valid(P.decode(0x2A1C, h("04 7101 00FF 09")))
    assert r[MDC] == 150392   # tympanum
    (r,) = valid(P.decode(0x2A1C, h("04 7101 00FF 2A")))
    assert r[MDC] == 150364 and r[CTX] == {"type": 42}   # unknown type carried raw
    (r,) = valid(P.decode(0x2A1C, h("00 FEFF7F00")))
    assert r[VAL] == float("inf")
    (r,) = valid(P.decode(0x2A1E, h("00 7101 00FF")))
    assert r[CTX] == {"interim": True}
    assert P.parse(0x2A1D, h("02")) == {"type": 2} and P.parse(0x2A21, h("2C01")) == {"interval": 300}


# ---------------------------------------------------------------- weight scale

def test_weight_fixed_scaling():
    # 0.005 kg steps: 14000 * 0.005 = 70.000 kg; BMI 22.5; height 1.765 m
    data = h("0E B036 E807 0B 1D 08 00 00 01 E100 E506")
    w, bmi, ht = valid(P.decode(0x2A9D, data))
    assert w == {MDC: 188736, VAL: 70000, EXP: -3, UNIT: "kg", DTS: 1732867200, CTX: {"user": 1}}
    assert bmi == {MDC: 188752, VAL: 225, EXP: -1, UNIT: "kg/m2", DTS: 1732867200, CTX: {"user": 1}}
    assert ht == {MDC: 188740, VAL: 1765, EXP: -3, UNIT: "m", DTS: 1732867200, CTX: {"user": 1}}
    w, bmi, ht = valid(P.decode(0x2A9D, h("09 AC3D E100 BC02")))   # imperial: 158.20 lb, 70.0 in
    assert (w[VAL], w[EXP], w[UNIT]) == (15788, -2, "[lb_av]")
    assert (ht[VAL], ht[EXP], ht[UNIT]) == (700, -1, "[in_i]")
    (w,) = valid(P.decode(0x2A9D, h("00 FFFF")))   # measurement unsuccessful
    assert w[VAL] != w[VAL]
    f = P.parse(0x2A9E, h("3B030000"))
    assert f["weight_res"] == 7 and f["height_res"] == 6 and f["features"] == 0x33B


# ---------------------------------------------------------------- battery, device information

def test_battery_level():
    assert valid(P.decode(0x2A19, h("64"))) == [{MDC: 67996, VAL: 100, UNIT: "%"}]
    assert P.decode(0x2A19, h("00"))[0][VAL] == 0
    e = raises(ProfileError, P.decode, 0x2A19, h("65"))
    assert "Battery Level (0x2A19)" in str(e) and e.offset == 0
    raises(ProfileError, P.decode, 0x2A19, b"")
    raises(ProfileError, P.encode, 0x2A19, {"level": 101})


def test_device_information():
    assert P.parse(0x2A29, b"Polar Electro Oy\x00\x00") == {"text": "Polar Electro Oy"}
    assert P.parse(0x2A24, "\u00c5r".encode()) == {"text": "\u00c5r"}
    assert P.decode(0x2A25, b"C7A1B2") == []
    e = raises(ProfileError, P.parse, 0x2A26, b"\xff\xfe")
    assert "Firmware Revision String (0x2A26)" in str(e)
    f = P.parse(0x2A23, h("C3 77 AD DE EE AB ED FE"))
    assert f == {"manufacturer": 0xEEDEAD77C3, "oui": 0xFEEDAB, "eui64": "FE-ED-AB-EE-DE-AD-77-C3"}
    assert P.parse(0x2A50, h("01 6B00 0200 0100")) == {"source": 1, "vendor": 0x6B, "product": 2, "version": 1}
    raises(ProfileError, P.parse, 0x2A23, h("C3 77 AD DE EE AB ED"))
