# Weight Scale Service (reference section 8): Weight Measurement 0x2A9D,
# Weight Scale Feature 0x2A9E.
#
# Measurement fields: "flags" (raw), "weight" (raw uint16; 0xFFFF =
# measurement unsuccessful), "time" (Date Time, bit 1), "user" (bit 2;
# 0xFF unknown user), "bmi" and "height" (raw uint16, bit 3); "unit" is
# "SI" or "imperial" by flags bit 0.
#
# The scaling is fixed by the specification (the Feature's resolutions
# only describe the scale's real precision): weight 0.005 kg or 0.01 lb
# per step, BMI 0.1 kg/m2, height 0.001 m or 0.1 in. Readings:
#   weight MDC_MASS_BODY_ACTUAL 188736: SI VAL = raw * 5, EXP -3, "kg";
#     imperial VAL = raw, EXP -2, "[lb_av]"; unsuccessful -> VAL NaN;
#   BMI MDC_RATIO_MASS_BODY_LEN_SQ 188752: VAL raw, EXP -1, "kg/m2";
#   height MDC_LEN_BODY_ACTUAL 188740: SI VAL raw, EXP -3, "m";
#     imperial VAL raw, EXP -1, "[in_i]".
# All with DTS (time stamp) and CTX user when present.

from hub.profiles import timefmt as T
from hub.profiles.wire import Reader, encode_flagged, parse_flagged, rfu, scalar
from hub.reading import EXP, MDC, UNIT, VAL

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

U_MEAS = const(0x2A9D)
U_FEAT = const(0x2A9E)
MDC_MASS_BODY_ACTUAL = const(188736)
MDC_LEN_BODY_ACTUAL = const(188740)
MDC_RATIO_MASS_BODY_LEN_SQ = const(188752)
UNSUCCESSFUL = const(0xFFFF)


# (bit, type, key, what): see hub.profiles.wire.
_LAYOUT = ((0, "u16", "weight", "weight"), (0x02, "date_time", "time", "time stamp"),
           (0x04, "u8", "user", "user ID"), (0x08, "u16", "bmi", "BMI"), (0x08, "u16", "height", "height"))


def parse_measurement(data):
    m = parse_flagged(U_MEAS, data, _LAYOUT)
    m["unit"] = "imperial" if m["flags"] & 0x01 else "SI"
    return m


def encode_measurement(fields):
    return encode_flagged(U_MEAS, fields, _LAYOUT)


def measurement_readings(m):
    imperial = m["flags"] & 0x01
    wt = m["weight"]
    r = {MDC: MDC_MASS_BODY_ACTUAL, UNIT: "[lb_av]" if imperial else "kg"}
    if wt == UNSUCCESSFUL:
        r[VAL] = float("nan")
    elif imperial:
        r[VAL] = wt
        r[EXP] = -2
    else:
        r[VAL] = wt * 5
        r[EXP] = -3
    out = [r]
    if "bmi" in m:
        out.append({MDC: MDC_RATIO_MASS_BODY_LEN_SQ, VAL: m["bmi"], EXP: -1, UNIT: "kg/m2"})
        if imperial:
            out.append({MDC: MDC_LEN_BODY_ACTUAL, VAL: m["height"], EXP: -1, UNIT: "[in_i]"})
        else:
            out.append({MDC: MDC_LEN_BODY_ACTUAL, VAL: m["height"], EXP: -3, UNIT: "m"})
    return rfu(T.stamp(out, m, None, ("user",)), m["flags"], 0xF0)


def decode_measurement(data):
    return measurement_readings(parse_measurement(data))


def parse_feature(data):
    """Weight Scale Feature (32 bit, raw) with its resolution fields split out: "weight_res"
    (bits 3-6: 1 = 0.5 kg .. 7 = 0.005 kg, 0 unspecified), "height_res" (bits 7-9)."""
    f = Reader(U_FEAT, data).u32("features")
    return {"features": f, "weight_res": (f >> 3) & 0x0F, "height_res": (f >> 7) & 0x07}


_, encode_feature = scalar(U_FEAT, "u32", "features", "features")
