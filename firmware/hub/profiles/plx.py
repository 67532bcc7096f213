# Pulse Oximeter Service (reference section 6): PLX Spot-check Measurement
# 0x2A5E, PLX Continuous Measurement 0x2A5F, PLX Features 0x2A60.
#
# Fields (SFLOAT numbers as in ieee11073.py; "flags" raw):
#   spot-check: "spo2", "pr", "time" (bit 0), "mstatus" (Measurement Status,
#     bit 1), "dss" (Device and Sensor Status, 24 bit, bit 2), "pai" (bit 3);
#     flags bit 4 = the device clock is not set.
#   continuous: "spo2", "pr" (normal), "fast" [spo2, pr] (bit 0), "slow"
#     [spo2, pr] (bit 1), "mstatus" (bit 2), "dss" (bit 3), "pai" (bit 4).
#   features: "features", "mstatus" (support bits, feature bit 0), "dss"
#     (support bits, feature bit 1).
#
# Readings: SpO2 MDC_PULS_OXIM_SAT_O2 150456 "%", pulse rate
# MDC_PULS_OXIM_PULS_RATE 149530 "/min", pulse amplitude index
# MDC_PULS_OXIM_PERF_REL 150448 "%". FLAGS = Measurement Status, CTX dss =
# Device and Sensor Status. CTX mod = the supplemental modality code:
# MDC_MODALITY_SPOT 150588 for spot-checks, MDC_MODALITY_FAST 150580 /
# MDC_MODALITY_SLOW 150584 for the fast / slow continuous metrics (none for
# the normal ones). Spot-checks with a time stamp get DTS, and CTX
# noclock = true when the flags say the device clock is not set.

from hub.profiles import timefmt as T
from hub.profiles.wire import (Reader, Writer, encode_flagged, flags_writer, need, num, parse_flagged, read_fields, rfu,
                               write_fields)
from hub.reading import CTX, MDC, UNIT

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

U_SPOT = const(0x2A5E)
U_CONT = const(0x2A5F)
U_FEAT = const(0x2A60)
MDC_PULS_OXIM_SAT_O2 = const(150456)
MDC_PULS_OXIM_PULS_RATE = const(149530)
MDC_PULS_OXIM_PERF_REL = const(150448)
MDC_MODALITY_FAST = const(150580)
MDC_MODALITY_SLOW = const(150584)
MDC_MODALITY_SPOT = const(150588)


# (bit, type, key, what): see hub.profiles.wire.
_SPOT = ((0, "sfloat", "spo2", "SpO2"), (0, "sfloat", "pr", "pulse rate"), (0x01, "date_time", "time", "timestamp"),
         (0x02, "u16", "mstatus", "measurement status"), (0x04, "u24", "dss", "device and sensor status"),
         (0x08, "sfloat", "pai", "pulse amplitude index"))
# Continuous: after the normal pair, fast and slow pairs (bits 0, 1) are
# lists [SpO2, pulse rate] and are read by hand; then this tail.
_CONT_TAIL = ((0x04, "u16", "mstatus", "measurement status"), (0x08, "u24", "dss", "device and sensor status"),
              (0x10, "sfloat", "pai", "pulse amplitude index"))


def parse_spot_check(data):
    return parse_flagged(U_SPOT, data, _SPOT)


def encode_spot_check(fields):
    return encode_flagged(U_SPOT, fields, _SPOT)


def _pair(spo2, pr, mod):
    a = num({MDC: MDC_PULS_OXIM_SAT_O2, UNIT: "%"}, spo2)
    b = num({MDC: MDC_PULS_OXIM_PULS_RATE, UNIT: "/min"}, pr)
    if mod:
        a.setdefault(CTX, {})["mod"] = mod
        b.setdefault(CTX, {})["mod"] = mod
    return [a, b]


def _common(m, out, mod):
    if "pai" in m:
        p = num({MDC: MDC_PULS_OXIM_PERF_REL, UNIT: "%"}, m["pai"])
        if mod:
            p.setdefault(CTX, {})["mod"] = mod
        out.append(p)
    return T.stamp(out, m, "mstatus", ("dss",))


def spot_check_readings(m):
    out = _common(m, _pair(m["spo2"], m["pr"], MDC_MODALITY_SPOT), MDC_MODALITY_SPOT)
    if m["flags"] & 0x10:
        for r in out:
            r.setdefault(CTX, {})["noclock"] = True
    return rfu(out, m["flags"], 0xE0)


def decode_spot_check(data):
    return spot_check_readings(parse_spot_check(data))


def parse_continuous(data):
    r = Reader(U_CONT, data)
    f = r.u8("flags")
    out = {"flags": f, "spo2": r.sfloat("SpO2 normal"), "pr": r.sfloat("pulse rate normal")}
    for bit, key in ((0x01, "fast"), (0x02, "slow")):
        if f & bit:
            out[key] = [r.sfloat("SpO2 " + key), r.sfloat("pulse rate " + key)]
    return read_fields(r, f, _CONT_TAIL, out)


def encode_continuous(fields):
    u = U_CONT
    w, f = flags_writer(u, fields)
    w.sfloat(need(fields, "spo2", u, w), "SpO2 normal")
    w.sfloat(need(fields, "pr", u, w), "pulse rate normal")
    for bit, key in ((0x01, "fast"), (0x02, "slow")):
        if f & bit:
            p = need(fields, key, u, w)
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                w.err("%s must be [SpO2, pulse rate]: %r" % (key, p))
            w.sfloat(p[0], "SpO2 " + key)
            w.sfloat(p[1], "pulse rate " + key)
    return write_fields(w, f, _CONT_TAIL, fields)


def continuous_readings(m):
    out = _pair(m["spo2"], m["pr"], None)
    if "fast" in m:
        out += _pair(m["fast"][0], m["fast"][1], MDC_MODALITY_FAST)
    if "slow" in m:
        out += _pair(m["slow"][0], m["slow"][1], MDC_MODALITY_SLOW)
    return rfu(_common(m, out, None), m["flags"], 0xE0)


def decode_continuous(data):
    return continuous_readings(parse_continuous(data))


_FEAT = ((0x01, "u16", "mstatus", "measurement status support"),
         (0x02, "u24", "dss", "device and sensor status support"))


def parse_features(data):
    r = Reader(U_FEAT, data)
    f = r.u16("supported features")
    return read_fields(r, f, _FEAT, {"features": f})


def encode_features(fields):
    w = Writer(U_FEAT)
    f = fields.get("features")
    w.u16(f, "supported features")
    return write_fields(w, f, _FEAT, fields)
