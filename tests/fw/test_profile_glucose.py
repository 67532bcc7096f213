# Glucose Service and RACP (hub.profiles.glucose, hub.profiles.racp):
# published example payloads (Nordic Android-BLE-Common-Library and
# nRF Toolbox tests, the reference's RACP examples) decode to the right
# values and readings. Runs on both runtimes.

from fwtest import raises

from hub import profiles as P
from hub import reading as R
from hub.profiles import ProfileError
from hub.profiles import racp
from hub.reading import CTX, DTS, EXP, FLAGS, MDC, REC, UNIT, VAL

DEV = b"\x01\xc0\xff\xee\x00\x00\x01"


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


def test_nordic_measurement_with_everything():
    data = h("1B 0100 E307 02 1B 0B 0A 1E FBFF 1E00 12 0501")
    f = P.parse(0x2A18, data)
    assert f == {"flags": 0x1B, "seq": 1, "time": (2019, 2, 27, 11, 10, 30), "offset": -5, "conc": (30, 0),
                 "unit": "kg/L", "type": 2, "loc": 1, "status": 0x0105}
    (r,) = P.decode(0x2A18, data)
    # 30 kg/L is 30e5 mg/dL; capillary plasma; user-facing time 11:05:30
    assert r == {MDC: 160188, VAL: 30, EXP: 5, UNIT: "mg/dL", REC: 1, DTS: 1551265530, FLAGS: 0x0105,
                 CTX: {"loc": 1, "toff": -5}}
    full = R.complete(r, 9, DEV, [2, 1000], hts=1700000000000)
    assert R.decode(R.encode(full)) == full


def test_nordic_measurement_missing_a_field_is_rejected():
    # flags announce time offset, concentration and status, but 2 octets are missing
    e = raises(ProfileError, P.decode, 0x2A18, h("1B 0000 E207 04 1A 0B 09 1E 1E00 1205 01"))
    assert e.offset == 15 and "Glucose Measurement (0x2A18)" in str(e) and "byte 15" in str(e)


def test_nrf_toolbox_measurements():
    f = P.parse(0x2A18, h("00 0100 E407 05 15 0A 1E 2D"))
    assert f == {"flags": 0, "seq": 1, "time": (2020, 5, 21, 10, 30, 45)}
    assert P.decode(0x2A18, h("00 0100 E407 05 15 0A 1E 2D")) == []  # no concentration, no status
    data = h("1F 0200 E407 05 15 0A 1E 2D 0000 5100 14 0600")
    f = P.parse(0x2A18, data)
    assert f["conc"] == (81, 0) and f["unit"] == "mol/L" and f["type"] == 4 and f["loc"] == 1
    assert f["status"] == 6 and f["flags"] & 0x10  # context follows
    (r,) = P.decode(0x2A18, data)
    assert r[MDC] == 160196 and r[UNIT] == "mmol/L" and (r[VAL], r[EXP]) == (81, 3) and r[REC] == 2
    e = raises(ProfileError, P.decode, 0x2A18, h("0F 0300 E407 05 15 0A 1E 2D 0500 CDCC"))
    assert e.offset == 14
    raises(ProfileError, P.decode, 0x2A18, bytes(9))


def test_104_mg_dl_stays_104():
    # 68 B0 = 104e-5 kg/L (reference 2.2)
    (r,) = P.decode(0x2A18, h("02 0700 E807 0B 1D 08 00 00 68B0 11"))
    assert r[MDC] == 160184 and r[VAL] == 104 and EXP not in r and r[UNIT] == "mg/dL"
    assert R.value(R.complete(r, 1, DEV, [1, 1])) == 104
    assert r[DTS] == 1732867200 and r[CTX] == {"loc": 1}


def test_special_values_and_unknown_type():
    (r,) = P.decode(0x2A18, h("02 0700 E807 0B 1D 08 00 00 FF07 0F"))  # NaN, type 15 (reserved)
    assert r[VAL] != r[VAL] and r[MDC] == 160020 and r[CTX] == {"loc": 0, "type": 15}
    (r,) = P.decode(0x2A18, h("02 0700 E807 0B 1D 08 00 00 0008 11"))  # NRes
    assert r[VAL] != r[VAL] and r[CTX]["special"] == "NRes"
    (r,) = P.decode(0x2A18, h("02 0700 E807 0B 1D 08 00 00 FE07 11"))  # +INF
    assert r[VAL] == float("inf")
    R.complete(r, 1, DEV, [1, 1])


def test_status_without_concentration_and_reserved_flags():
    (r,) = P.decode(0x2A18, h("E8 0900 0000 00 00 00 00 00 0400"))  # reserved flag bits 5-7 set
    assert r == {MDC: 8417752, VAL: 4, REC: 9, FLAGS: 4, CTX: {"rfu": 0xE0}}  # date unknown: no DTS
    assert P.parse(0x2A18, h("E8 0900 0000 00 00 00 00 00 0400"))["flags"] == 0xE8


def test_context_everything():
    data = h("FF 0000 B3 03 6400 04 12 3C00 32 04 D2F4 59F1")
    f = P.parse(0x2A34, data)
    assert f == {"flags": 0xFF, "seq": 0, "ext": 0xB3, "carb_id": 3, "carb": (100, 0), "meal": 4,
                 "tester": 2, "health": 1, "exercise": 60, "intensity": 50, "med_id": 4,
                 "med": (1234, -1), "hba1c": (345, -1)}
    rs = P.decode(0x2A34, data)
    by = {}
    for r in rs:
        by[r[MDC]] = r
        assert r[REC] == 0
        R.complete(r, 1, DEV, [1, 1])
    assert by[8417776] == {MDC: 8417776, VAL: 100, EXP: 3, UNIT: "g", REC: 0, CTX: {"rfu": 0xB3}}  # dinner
    assert by[8417864][VAL] == 4       # meal: casual
    assert by[8417884][VAL] == 2       # tester: health-care professional
    assert by[8417820][VAL] == 1       # health: minor issues
    assert by[8417760] == {MDC: 8417760, VAL: 60, UNIT: "s", CTX: {"int": 50, "rfu": 0xB3}, REC: 0}
    assert by[8417812] == {MDC: 8417812, VAL: 1234, EXP: 2, UNIT: "mL", REC: 0, CTX: {"rfu": 0xB3}}  # long-acting
    assert by[160220] == {MDC: 160220, VAL: 345, EXP: -1, UNIT: "%", REC: 0, CTX: {"rfu": 0xB3}}
    assert P.parse(0x2A34, h("00 0100")) == {"flags": 0, "seq": 1}
    e = raises(ProfileError, P.parse, 0x2A34, h("FF 0000 B3 03 6400 04 12 3C00 32 04 D2F4"))
    assert e.offset == 15


def test_context_unknown_ids_and_medication_in_kg():
    rs = P.decode(0x2A34, h("11 0500 09 0500 07 0CD0"))  # carb ID 9 (unknown), med ID 7 (unknown), kg
    assert rs[0] == {MDC: 8417764, VAL: 5, EXP: 3, UNIT: "g", REC: 5, CTX: {"id": 9}}
    assert rs[1] == {MDC: 8417796, VAL: 12, EXP: 3, UNIT: "mg", REC: 5, CTX: {"id": 7}}  # 12e-3 kg = 12 g


def test_feature():
    assert P.parse(0x2A51, h("FF07")) == {"features": 0x07FF}
    assert P.decode(0x2A51, h("FF07")) == []
    raises(ProfileError, P.decode, 0x2A51, h("FF"))


def test_racp_requests_the_hub_sends():
    assert racp.report_all() == h("01 01")
    assert racp.request(racp.COUNT, racp.ALL) == h("04 01")
    assert racp.report_from(10) == h("01 03 01 0A 00")
    assert racp.request(racp.REPORT, racp.RANGE, racp.FILTER_SEQ, lo=5, hi=10) == h("01 04 01 05 00 0A 00")
    assert racp.abort() == h("03 00")
    assert racp.delete_all() == h("02 01")
    assert racp.request(racp.REPORT, racp.LAST) == h("01 06")
    t = racp.request(racp.COUNT, racp.GE, racp.FILTER_TIME, (2024, 11, 29, 8, 0, 0))
    assert t == h("04 03 02 E807 0B 1D 08 00 00")
    assert P.parse(0x2A52, t) == {"op": 4, "operator": 3, "filter": 2, "value": (2024, 11, 29, 8, 0, 0)}
    assert P.parse(0x2A52, h("01 04 01 05 00 0A 00")) == {"op": 1, "operator": 4, "filter": 1, "min": 5, "max": 10}


def test_racp_responses():
    assert P.parse(0x2A52, h("06 00 01 01")) == {"op": 6, "operator": 0, "request": 1, "code": 1}
    assert racp.result(P.parse(0x2A52, h("06 00 01 06"))) == (racp.REPORT, racp.NO_RECORDS)
    assert racp.result(P.parse(0x2A52, h("06 00 0C 02"))) == (12, racp.OP_NOT_SUPPORTED)
    assert racp.result(P.parse(0x2A52, h("06 00 01 0A"))) == (1, 10)   # unknown code carried raw
    assert racp.result(P.parse(0x2A52, h("05 00 02 01"))) == (racp.COUNT, 258)
    assert P.parse(0x2A52, h("05 00 04 03 02 01"))["count"] == 16909060
    assert P.decode(0x2A52, h("05 00 02 01")) == []
    for bad in ("06 01 01", "05 00 01", "06", "", "01 03 01 0A", "01 04 01 05 00 0A", "01 03 09", "01 04 09 01 02 03"):
        raises(ProfileError, P.parse, 0x2A52, h(bad))
    # unknown filter type: operand carried raw (a range split in half)
    assert P.parse(0x2A52, h("01 04 09 01 02 03 04")) == {"op": 1, "operator": 4, "filter": 9,
                                                          "min": b"\x01\x02", "max": b"\x03\x04"}
