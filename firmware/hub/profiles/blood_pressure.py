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
from hub.profiles.wire import encode_flagged, num, nums, parse_flagged, rfu, scalar
from hub.reading import COMP, CTX, MDC, UNIT

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


# (bit, type, key, what): see hub.profiles.wire. An intermediate cuff
# pressure has the same layout, its first value being the cuff pressure.
_MEAS = ((0, "sfloat", "sys", "systolic"), (0, "sfloat", "dia", "diastolic"),
         (0, "sfloat", "map", "mean arterial pressure"), (0x02, "date_time", "time", "time stamp"),
         (0x04, "sfloat", "pulse", "pulse rate"), (0x08, "u8", "user", "user ID"),
         (0x10, "u16", "status", "measurement status"))
_ICP = ((0, "sfloat", "sys", "cuff pressure"),) + _MEAS[1:]


def _parse(u, data):
    m = parse_flagged(u, data, _MEAS if u == U_MEAS else _ICP)
    m["unit"] = "kPa" if m["flags"] & 0x01 else "mmHg"
    return m


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
    T.stamp(out, m, "status", ("user",))
    if interim:
        for r in out:
            r.setdefault(CTX, {})["interim"] = True
    return rfu(out, m["flags"], 0xE0)


# Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36) share one
# codec; the registry passes the characteristic (BY_UUID).
BY_UUID = ("measurement",)


def parse_measurement(data, uuid=U_MEAS):
    return _parse(uuid, data)


def encode_measurement(fields, uuid=U_MEAS):
    return encode_flagged(uuid, fields, _MEAS if uuid == U_MEAS else _ICP)


def decode_measurement(data, uuid=U_MEAS):
    return _readings(_parse(uuid, data), uuid == U_ICP)


# Blood Pressure Feature bits, raw (bit 6 E2E-CRC, 7 user data, 8 user facing time in BLS 1.1).
parse_feature, encode_feature = scalar(0x2A49, "u16", "features", "features")
