# Glucose Service (reference section 2): Glucose Measurement 0x2A18,
# Glucose Measurement Context 0x2A34, Glucose Feature 0x2A51. The Record
# Access Control Point 0x2A52 is in racp.py.
#
# Fields (parse_*/encode_*): numbers from SFLOATs are (mantissa, exponent)
# pairs or special names (ieee11073.py); a Date Time is a 6-tuple
# (timefmt.py); optional fields are absent from the dict when the flags
# say so; "flags" is the raw octet (reserved bits kept).
#
# Readings (decode_*), all with REC = the meter's sequence number:
#   measurement -> concentration: MDC by the Type nibble (160184 capillary
#     whole blood ... 160212 ISF, 160208 control solution; 160020
#     MDC_CONC_GLU_GEN when the type is reserved, with CTX type = raw),
#     VAL/EXP in mg/dL (kg/L, exponent + 5) or mmol/L (mol/L, exponent + 3),
#     DTS = base time + time offset (the user-facing time), FLAGS = Sensor
#     Status Annunciation, CTX loc = sample location nibble (raw), CTX
#     toff = time offset in minutes. A record with a status but no
#     concentration gives one reading MDC_GLU_METER_DEV_STATUS 8417752
#     with VAL = the status bits.
#   context -> carbohydrate (8417768.. by Carbohydrate ID, g), meal
#     8417864, tester 8417884 and health 8417820 (VAL = the raw enum),
#     exercise 8417760 (s, CTX int = intensity %), medication (8417800..
#     by Medication ID, mg or mL), HbA1c 160220 (%). Unknown IDs give the
#     generic code (8417764, 8417796) with CTX id = the raw ID.
#   feature -> none (parse only).

from hub.profiles.wire import Reader, Writer, flags_writer, need, num, read_fields, rfu, write_fields
from hub.profiles import timefmt as T
from hub.reading import CTX, DTS, FLAGS, MDC, REC, UNIT, VAL

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

U_MEAS = const(0x2A18)
U_CTX = const(0x2A34)
U_FEAT = const(0x2A51)

MDC_CONC_GLU_GEN = const(160020)
MDC_GLU_METER_DEV_STATUS = const(8417752)
MDC_CONC_HBA1C = const(160220)
MDC_CTXT_GLU_EXERCISE = const(8417760)
MDC_CTXT_GLU_CARB = const(8417764)
MDC_CTXT_MEDICATION = const(8417796)
MDC_CTXT_GLU_HEALTH = const(8417820)
MDC_CTXT_GLU_MEAL = const(8417864)
MDC_CTXT_GLU_TESTER = const(8417884)

# Type nibble -> MDC concentration code (reference section 11)
TYPE_MDC = {1: 160184, 2: 160188, 3: 160192, 4: 160196, 5: 160200, 6: 160204,
            7: 160364, 8: 160368, 9: 160212, 10: 160208}
# Carbohydrate ID 1..7 -> MDC_CTXT_GLU_CARB_BREAKFAST .. _BRUNCH
CARB_MDC = {1: 8417768, 2: 8417772, 3: 8417776, 4: 8417780, 5: 8417784, 6: 8417788, 7: 8417792}
# Medication ID 1..5 -> MDC_CTXT_MEDICATION_RAPIDACTING .. _PREMIX
MED_MDC = {1: 8417800, 2: 8417804, 3: 8417808, 4: 8417812, 5: 8417816}


# ---------------------------------------------------------------- measurement

def parse_measurement(data):
    r = Reader(U_MEAS, data)
    f = r.u8("flags")
    out = {"flags": f, "seq": r.u16("sequence number"), "time": r.date_time("base time")}
    if f & 0x01:
        out["offset"] = r.s16("time offset")
    if f & 0x02:
        out["conc"] = r.sfloat("glucose concentration")
        out["unit"] = "mol/L" if f & 0x04 else "kg/L"
        tl = r.u8("type-sample location")
        out["type"] = tl & 0x0F
        out["loc"] = tl >> 4
    if f & 0x08:
        out["status"] = r.u16("sensor status annunciation")
    return out


def encode_measurement(fields):
    w, f = flags_writer(U_MEAS, fields)
    w.u16(need(fields, "seq", U_MEAS, w), "sequence number")
    w.date_time(need(fields, "time", U_MEAS, w), "base time")
    if f & 0x01:
        w.s16(need(fields, "offset", U_MEAS, w), "time offset")
    if f & 0x02:
        w.sfloat(need(fields, "conc", U_MEAS, w), "glucose concentration")
        t = need(fields, "type", U_MEAS, w)
        loc = need(fields, "loc", U_MEAS, w)
        w.nibbles(t, loc, "type and sample location")
    if f & 0x08:
        w.u16(need(fields, "status", U_MEAS, w), "sensor status annunciation")
    return w.bytes()


def measurement_readings(m):
    out = []
    dts = T.epoch(m["time"])
    off = m.get("offset")
    if dts is not None and off is not None:
        dts += off * 60
    status = m.get("status")
    if "conc" in m:
        t = m["type"]
        mdc = TYPE_MDC.get(t)
        r = {MDC: mdc or MDC_CONC_GLU_GEN, REC: m["seq"]}
        if m["flags"] & 0x04:
            num(r, m["conc"], 3)
            r[UNIT] = "mmol/L"
        else:
            num(r, m["conc"], 5)
            r[UNIT] = "mg/dL"
        ctx = r.setdefault(CTX, {})
        ctx["loc"] = m["loc"]
        if mdc is None:
            ctx["type"] = t
        out.append(r)
    elif status is not None:
        out.append({MDC: MDC_GLU_METER_DEV_STATUS, VAL: status, REC: m["seq"]})
    for r in out:
        if dts is not None:
            r[DTS] = dts
        if status is not None:
            r[FLAGS] = status
        if off is not None:
            r.setdefault(CTX, {})["toff"] = off
    return rfu(out, m["flags"], 0xE0)


def decode_measurement(data):
    return measurement_readings(parse_measurement(data))


# ---------------------------------------------------------------- context

# (bit, type, key, what): see hub.profiles.wire. The tester-health octet (bit 0x04)
# stands between the two halves: two nibbles, read and written by hand.
_CTX_HEAD = ((0, "u16", "seq", "sequence number"), (0x80, "u8", "ext", "extended flags"),
             (0x01, "u8", "carb_id", "carbohydrate ID"), (0x01, "sfloat", "carb", "carbohydrate"),
             (0x02, "u8", "meal", "meal"))
_CTX_TAIL = ((0x08, "u16", "exercise", "exercise duration"), (0x08, "u8", "intensity", "exercise intensity"),
             (0x10, "u8", "med_id", "medication ID"), (0x10, "sfloat", "med", "medication"),
             (0x40, "sfloat", "hba1c", "HbA1c"))


def parse_context(data):
    r = Reader(U_CTX, data)
    f = r.u8("flags")
    out = read_fields(r, f, _CTX_HEAD, {"flags": f})
    if f & 0x04:
        th = r.u8("tester-health")
        out["tester"] = th & 0x0F
        out["health"] = th >> 4
    return read_fields(r, f, _CTX_TAIL, out)


def encode_context(fields):
    u = U_CTX
    w, f = flags_writer(u, fields)
    write_fields(w, f, _CTX_HEAD, fields)
    if f & 0x04:
        w.nibbles(need(fields, "tester", u, w), need(fields, "health", u, w), "tester and health")
    return write_fields(w, f, _CTX_TAIL, fields)


def context_readings(c):
    out = []
    if "carb" in c:
        mdc = CARB_MDC.get(c["carb_id"])
        r = num({MDC: mdc or MDC_CTXT_GLU_CARB, UNIT: "g"}, c["carb"], 3)  # kg -> g
        if mdc is None:
            r.setdefault(CTX, {})["id"] = c["carb_id"]
        out.append(r)
    if "meal" in c:
        out.append({MDC: MDC_CTXT_GLU_MEAL, VAL: c["meal"]})
    if "tester" in c:
        out.append({MDC: MDC_CTXT_GLU_TESTER, VAL: c["tester"]})
        out.append({MDC: MDC_CTXT_GLU_HEALTH, VAL: c["health"]})
    if "exercise" in c:
        out.append({MDC: MDC_CTXT_GLU_EXERCISE, VAL: c["exercise"], UNIT: "s",
                    CTX: {"int": c["intensity"]}})
    if "med" in c:
        mdc = MED_MDC.get(c["med_id"])
        if c["flags"] & 0x20:
            r = num({UNIT: "mL"}, c["med"], 3)  # L -> mL
        else:
            r = num({UNIT: "mg"}, c["med"], 6)  # kg -> mg
        r[MDC] = mdc or MDC_CTXT_MEDICATION
        if mdc is None:
            r.setdefault(CTX, {})["id"] = c["med_id"]
        out.append(r)
    if "hba1c" in c:
        out.append(num({MDC: MDC_CONC_HBA1C, UNIT: "%"}, c["hba1c"], 0))
    for r in out:
        r[REC] = c["seq"]
    return rfu(out, c.get("ext", 0), 0xFF)  # the Extended Flags octet is all reserved


def decode_context(data):
    return context_readings(parse_context(data))


# ---------------------------------------------------------------- feature

def parse_feature(data):
    """Glucose Feature: 16 feature bits, raw (bit 10 multiple bond; 11-15 reserved, kept)."""
    return {"features": Reader(U_FEAT, data).u16("features")}


def encode_feature(fields):
    w = Writer(U_FEAT)
    w.u16(fields.get("features"), "features")
    return w.bytes()
