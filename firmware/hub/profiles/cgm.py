# Continuous Glucose Monitoring Service (reference section 3): CGM
# Measurement 0x2AA7, Feature 0x2AA8, Status 0x2AA9, Session Start Time
# 0x2AAA, Session Run Time 0x2AAB, Specific Ops Control Point 0x2AAC, and
# the E2E-CRC (CRC-16/MCRF4XX, section 3.8). RACP is in racp.py.
#
# E2E-CRC: the CGM Feature bit 12 says whether every other CGMS
# characteristic carries a CRC. parse/decode take crc=True (require it),
# crc=False (there is none; trailing octets are ignored) or crc=None (the
# default: present when the length says so -- the record's Size for a
# measurement, two octets beyond the fields elsewhere). A CRC that does not
# match raises ProfileError; the fields report "crc": True when one was
# present and checked. Encoders append a CRC when fields["crc"] is true.
#
# Measurement fields: {"records": [record, ...]}, a record being
# {"flags", "conc", "toff", "crc"} plus "status" (the 24-bit Sensor Status
# Annunciation: Status octet bits 0-7, Cal/Temp 8-15, Warning 16-23, each
# octet present only when its flag is set, in that wire order), "trend" and
# "quality" when flagged.
#
# Readings (decode_measurement), per record, REC = time offset (minutes
# since session start, the RACP filter key):
#   glucose: MDC_CONC_GLU_ISF 160212, mg/dL, FLAGS = annunciation,
#     CTX qual = CGM quality (percent) as [mantissa, exponent] or a special name;
#   trend (when present): MDC_CONC_GLU_TREND 8418008, mg/dL/min.
# With start=<session start, seconds since 1970> readings get DTS =
# start + 60 * time offset, and with tzo=<minutes> a TZO. The other CGMS
# characteristics are not measurements: decode() returns [] for them.

from hub.profiles import timefmt as T
from hub.profiles.wire import Reader, Writer, need, num, rfu
from hub.reading import CTX, DTS, FLAGS, MDC, REC, TZO, UNIT

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

U_MEAS = const(0x2AA7)
U_FEAT = const(0x2AA8)
U_STATUS = const(0x2AA9)
U_START = const(0x2AAA)
U_RUN = const(0x2AAB)
U_SOCP = const(0x2AAC)

OPTS = ("crc", "start", "tzo")  # options hub.profiles.decode passes on
MDC_CONC_GLU_ISF = const(160212)
MDC_CONC_GLU_TREND = const(8418008)
FEATURE_E2E_CRC = const(1 << 12)


def crc16(data, start=0, end=None):
    """CRC-16/MCRF4XX: reflected polynomial 0x8408, initial 0xFFFF, no final XOR."""
    if end is None:
        end = len(data)
    crc = 0xFFFF
    for i in range(start, end):
        crc ^= data[i]
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0x8408
            else:
                crc >>= 1
    return crc


def _check(r, start, crc):
    """Read the optional E2E-CRC after the fields of r (which began at start); True if present."""
    left = r.left()
    if crc is False or (crc is None and left == 0):
        return False
    at = r.i
    got = r.u16("E2E-CRC")
    want = crc16(r.b, start, at)
    if got != want:
        r.err("E2E-CRC 0x%04X does not match 0x%04X" % (got, want), at)
    return True


def _seal(w, fields):
    if fields.get("crc"):
        w.u16(crc16(w.b), "E2E-CRC")
    return w.bytes()


# ---------------------------------------------------------------- measurement

def _record(data, o, crc):
    n = len(data)
    size = data[o]
    if size < 6:
        Reader(U_MEAS, data, o).err("record size %d is below the minimum 6" % size)
    if o + size > n:
        Reader(U_MEAS, data, o).err("record size %d exceeds the %d bytes left" % (size, n - o))
    r = Reader(U_MEAS, data, o + 1, o + size)
    f = r.u8("flags")
    rec = {"flags": f, "conc": r.sfloat("glucose concentration"), "toff": r.u16("time offset")}
    if f & 0xE0:
        st = 0
        if f & 0x80:
            st = r.u8("status octet")
        if f & 0x40:
            st |= r.u8("cal/temp octet") << 8
        if f & 0x20:
            st |= r.u8("warning octet") << 16
        rec["status"] = st
    if f & 0x01:
        rec["trend"] = r.sfloat("trend information")
    if f & 0x02:
        rec["quality"] = r.sfloat("quality")
    left = r.left()
    if left == 0 and crc is not True:
        rec["crc"] = False
    elif left == 2 and crc is not False:
        rec["crc"] = _check(r, o, True)
    else:
        r.err("record size %d matches neither its fields (%d) nor fields and E2E-CRC (%d)"
              % (size, size - left, size - left + 2), o)
    return rec


def parse_measurement(data, crc=None, **_):
    recs = []
    o = 0
    n = len(data)
    if n == 0:
        Reader(U_MEAS, data).need(6, "record")
    while o < n:
        rec = _record(data, o, crc)
        recs.append(rec)
        o += data[o]
    return {"records": recs}


def encode_measurement(fields):
    out = bytearray()
    for rec in fields.get("records") or ():
        w = Writer(U_MEAS)
        f = rec.get("flags", 0)
        w.u8(0, "size")  # patched below
        w.u8(f, "flags")
        w.sfloat(need(rec, "conc", U_MEAS, w), "glucose concentration")
        w.u16(need(rec, "toff", U_MEAS, w), "time offset")
        st = rec.get("status", 0) if f & 0xE0 else 0
        if not isinstance(st, int) or not 0 <= st <= 0xFFFFFF:
            w.err("status out of range: %r" % (st,))
        mask = (0xFF if f & 0x80 else 0) | (0xFF00 if f & 0x40 else 0) | (0xFF0000 if f & 0x20 else 0)
        if st & ~mask:
            w.err("status 0x%06X has bits in octets the flags leave out" % st)
        if f & 0x80:
            w.u8(st & 0xFF, "status octet")
        if f & 0x40:
            w.u8((st >> 8) & 0xFF, "cal/temp octet")
        if f & 0x20:
            w.u8(st >> 16, "warning octet")
        if f & 0x01:
            w.sfloat(need(rec, "trend", U_MEAS, w), "trend information")
        if f & 0x02:
            w.sfloat(need(rec, "quality", U_MEAS, w), "quality")
        w.b[0] = len(w.b) + (2 if rec.get("crc") else 0)
        out.extend(_seal(w, rec))
    if not out:
        Writer(U_MEAS).err("no records")
    return bytes(out)


def measurement_readings(m, start=None, tzo=None):
    out = []
    for rec in m["records"]:
        toff = rec["toff"]
        r = num({MDC: MDC_CONC_GLU_ISF, UNIT: "mg/dL", REC: toff}, rec["conc"])
        if "status" in rec:
            r[FLAGS] = rec["status"]
        q = rec.get("quality")
        if q is not None:
            r.setdefault(CTX, {})["qual"] = q if isinstance(q, str) else [q[0], q[1]]
        rs = [r]
        if "trend" in rec:
            rs.append(num({MDC: MDC_CONC_GLU_TREND, UNIT: "mg/dL/min", REC: toff}, rec["trend"]))
        rfu(rs, rec["flags"], 0x1C)
        for x in rs:
            if start is not None:
                x[DTS] = start + 60 * toff
            if tzo is not None:
                x[TZO] = tzo
            out.append(x)
    return out


def decode_measurement(data, crc=None, start=None, tzo=None, **_):
    return measurement_readings(parse_measurement(data, crc), start, tzo)


# ---------------------------------------------------------------- feature

def parse_feature(data, **_):
    """Feature bits (24), Type / Sample Location nibbles, and the CRC field (0xFFFF when the
    device does not support E2E-CRC; checked when feature bit 12 is set)."""
    r = Reader(U_FEAT, data)
    feat = r.u24("features")
    tl = r.u8("type-sample location")
    out = {"features": feat, "type": tl & 0x0F, "loc": tl >> 4}
    if feat & FEATURE_E2E_CRC:
        _check(r, 0, True)
        out["crc"] = True
    else:
        out["crc"] = False
        out["crc_field"] = r.u16("E2E-CRC")
    return out


def encode_feature(fields):
    w = Writer(U_FEAT)
    feat = fields.get("features")
    w.u24(feat, "features")
    t, loc = fields.get("type", 0), fields.get("loc", 0)
    w.nibbles(t, loc, "type and sample location")
    if feat & FEATURE_E2E_CRC:
        w.u16(crc16(w.b), "E2E-CRC")
    else:
        w.u16(fields.get("crc_field", 0xFFFF), "E2E-CRC")
    return w.bytes()


def crc_supported(feature_fields):
    return bool(feature_fields["features"] & FEATURE_E2E_CRC)


# ---------------------------------------------------------------- status

def parse_status(data, crc=None, **_):
    r = Reader(U_STATUS, data)
    out = {"toff": r.u16("time offset"), "status": r.u24("status")}
    out["crc"] = _check(r, 0, crc)
    return out


def encode_status(fields):
    w = Writer(U_STATUS)
    w.u16(fields.get("toff"), "time offset")
    w.u24(fields.get("status"), "status")
    return _seal(w, fields)


# ---------------------------------------------------------------- session start / run time

def parse_session_start(data, crc=None, **_):
    """Session Start Time: "time" (Date Time), "tz" (sint8, 15-minute steps, -128 unknown),
    "dst" (DST Offset enum); start(fields) gives (seconds since 1970 UTC-read, tzo minutes)."""
    r = Reader(U_START, data)
    out = {"time": r.date_time("session start time"), "tz": r.s8("time zone"), "dst": r.u8("DST offset")}
    out["crc"] = _check(r, 0, crc)
    return out


def encode_session_start(fields):
    w = Writer(U_START)
    w.date_time(fields.get("time"), "session start time")
    w.s8(fields.get("tz", T.TZ_UNKNOWN), "time zone")
    w.u8(fields.get("dst", T.DST_UNKNOWN), "DST offset")
    return _seal(w, fields)


def start(fields):
    """(DTS, TZO) of a parsed Session Start Time: the local clock fields as seconds since 1970
    (None if unknown) and the zone + DST offset in minutes (None if unknown). Pass them to
    decode_measurement as start= and tzo=."""
    return T.epoch(fields["time"]), T.offset_minutes(fields["tz"], fields["dst"])


def parse_run_time(data, crc=None, **_):
    r = Reader(U_RUN, data)
    out = {"hours": r.u16("run time")}
    out["crc"] = _check(r, 0, crc)
    return out


def encode_run_time(fields):
    w = Writer(U_RUN)
    w.u16(fields.get("hours"), "run time")
    return _seal(w, fields)


# ---------------------------------------------------------------- Specific Ops Control Point

SET_INTERVAL = const(1)
GET_INTERVAL = const(2)
INTERVAL_RESPONSE = const(3)
SET_CALIBRATION = const(4)
GET_CALIBRATION = const(5)
CALIBRATION_RESPONSE = const(6)
RESET_DEVICE_ALERT = const(25)
START_SESSION = const(26)
STOP_SESSION = const(27)
RESPONSE = const(28)
# set / get / response op codes of the six alert levels (SFLOAT)
ALERTS = {"patient_high": 7, "patient_low": 10, "hypo": 13, "hyper": 16,
          "rate_decrease": 19, "rate_increase": 22}
CODES = {1: "success", 2: "op code not supported", 3: "invalid operand",
         4: "procedure not completed", 5: "parameter out of range"}


def _kind(op):
    if op in (SET_INTERVAL, INTERVAL_RESPONSE):
        return "interval"
    if op in (SET_CALIBRATION, CALIBRATION_RESPONSE):
        return "cal"
    if op == GET_CALIBRATION:
        return "record"
    if op == RESPONSE:
        return "response"
    if 7 <= op <= 24:
        return None if op % 3 == 2 else "level"  # 8, 11, .. 23 are the gets
    if op in (GET_INTERVAL, RESET_DEVICE_ALERT, START_SESSION, STOP_SESSION):
        return None
    return "operand"


def parse_socp(data, crc=None, **_):
    r = Reader(U_SOCP, data)
    op = r.u8("op code")
    out = {"op": op}
    k = _kind(op)
    if k == "interval":
        out["interval"] = r.u8("communication interval")
    elif k == "record":
        out["record"] = r.u16("calibration record number")
    elif k == "level":
        out["level"] = r.sfloat("alert level")
    elif k == "response":
        out["request"] = r.u8("request op code")
        out["code"] = r.u8("response code")
    elif k == "cal":
        c = {"conc": r.sfloat("calibration glucose concentration"), "time": r.u16("calibration time")}
        tl = r.u8("type-sample location")
        c["type"] = tl & 0x0F
        c["loc"] = tl >> 4
        c["next"] = r.u16("next calibration time")
        c["record"] = r.u16("calibration record number")
        c["status"] = r.u8("calibration status")
        out["cal"] = c
    elif k == "operand":  # unknown op code: keep its operand raw
        n = r.left() - (2 if crc else 0)
        if n > 0:
            out["operand"] = r.raw(n, "operand")
    out["crc"] = _check(r, 0, crc)
    return out


def encode_socp(fields):
    u = U_SOCP
    w = Writer(u)
    op = fields.get("op")
    w.u8(op, "op code")
    k = _kind(op)
    if k == "interval":
        w.u8(need(fields, "interval", u, w), "communication interval")
    elif k == "record":
        w.u16(need(fields, "record", u, w), "calibration record number")
    elif k == "level":
        w.sfloat(need(fields, "level", u, w), "alert level")
    elif k == "response":
        w.u8(need(fields, "request", u, w), "request op code")
        w.u8(need(fields, "code", u, w), "response code")
    elif k == "cal":
        c = need(fields, "cal", u, w)
        w.sfloat(need(c, "conc", u, w), "calibration glucose concentration")
        w.u16(need(c, "time", u, w), "calibration time")
        t, loc = c.get("type", 0), c.get("loc", 0)
        w.nibbles(t, loc, "type and sample location")
        w.u16(need(c, "next", u, w), "next calibration time")
        w.u16(need(c, "record", u, w), "calibration record number")
        w.u8(c.get("status", 0), "calibration status")
    elif "operand" in fields:
        w.raw(fields["operand"], "operand")
    return _seal(w, fields)


def socp(op, crc=False, **operand):
    """A SOCP request: socp(START_SESSION), socp(SET_INTERVAL, interval=5, crc=True),
    socp(ALERTS["hypo"], level=(70, 0))."""
    f = {"op": op, "crc": crc}
    f.update(operand)
    return encode_socp(f)
