# Heart Rate Service (reference section 4): Heart Rate Measurement 0x2A37,
# Body Sensor Location 0x2A38, Heart Rate Control Point 0x2A39.
#
# Measurement fields: "flags" (raw), "hr" (bpm; uint8 or uint16 by flags
# bit 0), "contact" (flags bits 1-2: 0/1 not supported, 2 no contact, 3
# contact), "energy" (kJ, flags bit 3), "rr" (list of RR intervals in
# 1/1024 s, oldest first, flags bit 4). Flags bit 4 with no RR octets, or
# an odd octet left over, is malformed (ProfileError).
#
# Readings: heart rate MDC_ECG_HEART_RATE 147842 "/min" with FLAGS = the
# raw flags octet (sensor contact bits); energy expended MDC_HF_ENERGY
# 8454263 "kJ"; RR intervals MDC_ECG_TIME_PD_RR_GL 147240, VAL = the list
# of raw values in UCUM "s/1024" (exact; ms = raw * 1000 / 1024).
# No device timestamp: the collector stamps these on receipt.

from hub.profiles.wire import Reader, Writer, flags_writer, need, scalar
from hub.reading import FLAGS, MDC, UNIT, VAL

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_U = const(0x2A37)
MDC_ECG_HEART_RATE = const(147842)
MDC_ECG_TIME_PD_RR_GL = const(147240)
MDC_HF_ENERGY = const(8454263)

CONTACT_UNSUPPORTED = const(0)
CONTACT_NONE = const(2)
CONTACT_DETECTED = const(3)
RESET_ENERGY = const(0x01)


def parse_measurement(data):
    r = Reader(_U, data)
    f = r.u8("flags")
    out = {"flags": f, "hr": r.u16("heart rate") if f & 0x01 else r.u8("heart rate"),
           "contact": (f >> 1) & 3}
    if f & 0x08:
        out["energy"] = r.u16("energy expended")
    if f & 0x10:
        if r.left() < 2:
            r.need(2, "RR-interval")
        if r.left() % 2:
            r.err("truncated: odd octet after %d RR-intervals" % (r.left() // 2), r.n - 1)
        rr = []
        while r.left():
            rr.append(r.u16("RR-interval"))
        out["rr"] = rr
    return out


def encode_measurement(fields):
    w, f = flags_writer(_U, fields)
    hr = need(fields, "hr", _U, w)
    if f & 0x01:
        w.u16(hr, "heart rate")
    else:
        w.u8(hr, "heart rate")
    if f & 0x08:
        w.u16(need(fields, "energy", _U, w), "energy expended")
    if f & 0x10:
        rr = need(fields, "rr", _U, w)
        if not rr:
            w.err("flags announce RR-intervals but the list is empty")
        for v in rr:
            w.u16(v, "RR-interval")
    return w.bytes()


def measurement_readings(m):
    out = [{MDC: MDC_ECG_HEART_RATE, VAL: m["hr"], UNIT: "/min", FLAGS: m["flags"]}]
    if "energy" in m:
        out.append({MDC: MDC_HF_ENERGY, VAL: m["energy"], UNIT: "kJ"})
    if "rr" in m:
        out.append({MDC: MDC_ECG_TIME_PD_RR_GL, VAL: m["rr"], UNIT: "s/1024"})
    return out


def decode_measurement(data):
    return measurement_readings(parse_measurement(data))


def rr_ms(raw):
    """An RR interval in 1/1024 s as milliseconds (float)."""
    return raw * 1000 / 1024


# 0 other, 1 chest, 2 wrist, 3 finger, 4 hand, 5 ear lobe, 6 foot; others raw.
parse_body_sensor_location, encode_body_sensor_location = scalar(0x2A38, "u8", "location", "body sensor location")


def parse_control_point(data):
    """Heart Rate Control Point: op code 0x01 resets Energy Expended; others raw."""
    return {"op": Reader(0x2A39, data).u8("op code")}


def encode_control_point(fields):
    w = Writer(0x2A39)
    w.u8(fields.get("op", RESET_ENERGY), "op code")
    return w.bytes()
