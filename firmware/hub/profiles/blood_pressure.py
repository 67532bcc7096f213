# Blood Pressure Service (reference section 5): Blood Pressure Measurement
# 0x2A35, Intermediate Cuff Pressure 0x2A36, Blood Pressure Feature 0x2A49.
#
# Fields: "flags" (raw), "sys", "dia", "map" (SFLOAT numbers; flags bit 0:
# mmHg or kPa, reported as "unit"), "time" (Date Time, bit 1), "pulse"
# (SFLOAT bpm, bit 2), "user" (bit 3; 0xFF unknown user), "status"
# (Measurement Status bits, bit 4, raw).
#
# Readings of a measurement: one compound reading MDC_PRESS_BLD_NONINV
# 150020 with VAL [systolic, diastolic, mean], COMP [150021, 150022,
# 150023] and one common EXP (the smallest of the three exponents; the
# other mantissas are scaled up exactly), unit "mm[Hg]" or "kPa"; and,
# when present, pulse rate MDC_PULS_RATE_NON_INV 149546 "/min". Both carry
# DTS (time stamp), FLAGS (Measurement Status) and CTX user.
# Intermediate Cuff Pressure gives the current cuff pressure as
# MDC_PRESS_CUFF 150300 (plus pulse rate when present) with CTX
# interim = true: progress values, not to be forwarded as observations.
# The diastolic and mean fields of an intermediate value are ignored.

from hub.profiles import timefmt as T
from hub.profiles.wire import Reader, Writer, flags_of, need, num, nums, rfu
from hub.reading import COMP, CTX, DTS, FLAGS, MDC, UNIT

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

U_MEAS = const(0x2A35)
U_ICP = const(0x2A36)
MDC_PRESS_BLD_NONINV = const(150020)
MDC_PRESS_BLD_NONINV_SYS = const(150021)
MDC_PRESS_BLD_NONINV_DIA = const(150022)
MDC_PRESS_BLD_NONINV_MEAN = const(150023)
MDC_PRESS_CUFF = const(150300)
MDC_PULS_RATE_NON_INV = const(149546)


def _parse(u, data):
    r = Reader(u, data)
    f = r.u8("flags")
    out = {"flags": f, "unit": "kPa" if f & 0x01 else "mmHg",
           "sys": r.sfloat("systolic" if u == U_MEAS else "cuff pressure"),
           "dia": r.sfloat("diastolic"), "map": r.sfloat("mean arterial pressure")}
    if f & 0x02:
        out["time"] = r.date_time("time stamp")
    if f & 0x04:
        out["pulse"] = r.sfloat("pulse rate")
    if f & 0x08:
        out["user"] = r.u8("user ID")
    if f & 0x10:
        out["status"] = r.u16("measurement status")
    return out


def _encode(u, fields):
    w = Writer(u)
    f = flags_of(fields, u)
    w.u8(f, "flags")
    w.sfloat(need(fields, "sys", u, w), "systolic")
    w.sfloat(need(fields, "dia", u, w), "diastolic")
    w.sfloat(need(fields, "map", u, w), "mean arterial pressure")
    if f & 0x02:
        w.date_time(need(fields, "time", u, w), "time stamp")
    if f & 0x04:
        w.sfloat(need(fields, "pulse", u, w), "pulse rate")
    if f & 0x08:
        w.u8(need(fields, "user", u, w), "user ID")
    if f & 0x10:
        w.u16(need(fields, "status", u, w), "measurement status")
    return w.bytes()


def _readings(m, interim):
    unit = "kPa" if m["flags"] & 0x01 else "mm[Hg]"
    if interim:
        out = [num({MDC: MDC_PRESS_CUFF, UNIT: unit}, m["sys"])]
    else:
        out = [nums({MDC: MDC_PRESS_BLD_NONINV, UNIT: unit,
                     COMP: [MDC_PRESS_BLD_NONINV_SYS, MDC_PRESS_BLD_NONINV_DIA, MDC_PRESS_BLD_NONINV_MEAN]},
                    [m["sys"], m["dia"], m["map"]])]
    if "pulse" in m:
        out.append(num({MDC: MDC_PULS_RATE_NON_INV, UNIT: "/min"}, m["pulse"]))
    dts = T.epoch(m["time"]) if "time" in m else None
    for r in out:
        if dts is not None:
            r[DTS] = dts
        if "status" in m:
            r[FLAGS] = m["status"]
        if "user" in m:
            r.setdefault(CTX, {})["user"] = m["user"]
        if interim:
            r.setdefault(CTX, {})["interim"] = True
    return rfu(out, m["flags"], 0xE0)


def parse_measurement(data):
    return _parse(U_MEAS, data)


def encode_measurement(fields):
    return _encode(U_MEAS, fields)


def decode_measurement(data):
    return _readings(_parse(U_MEAS, data), False)


def parse_intermediate(data):
    return _parse(U_ICP, data)


def encode_intermediate(fields):
    return _encode(U_ICP, fields)


def decode_intermediate(data):
    return _readings(_parse(U_ICP, data), True)


def parse_feature(data):
    """Blood Pressure Feature bits, raw (bit 6 E2E-CRC, 7 user data, 8 user facing time in BLS 1.1)."""
    return {"features": Reader(0x2A49, data).u16("features")}


def encode_feature(fields):
    w = Writer(0x2A49)
    w.u16(fields.get("features"), "features")
    return w.bytes()
