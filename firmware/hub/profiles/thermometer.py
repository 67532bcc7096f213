# Health Thermometer Service (reference section 7): Temperature
# Measurement 0x2A1C, Temperature Type 0x2A1D, Intermediate Temperature
# 0x2A1E, Measurement Interval 0x2A21.
#
# Measurement fields: "flags" (raw), "temp" (IEEE 11073 FLOAT as
# (mantissa, exponent) or a special name), "unit" ("Cel" / "[degF]" by
# flags bit 0), "time" (Date Time, bit 1), "type" (Temperature Type, bit 2).
#
# Readings: one temperature, VAL/EXP exactly as the FLOAT, UNIT "Cel" or
# "[degF]" (never converted), MDC by the type: absent or 2 (body) ->
# MDC_TEMP_BODY 150364; 1 armpit 188452, 3 ear 188428, 4 finger 188432,
# 5 gastro-intestinal 188456, 6 mouth 188424, 7 rectum 188420, 8 toe
# 188448, 9 tympanum 150392; an unknown type gives 150364 with CTX type =
# the raw value. DTS from the time stamp. Intermediate Temperature gives
# the same with CTX interim = true (progress values). Temperature Type
# and Measurement Interval are not measurements.

from hub.profiles import timefmt as T
from hub.profiles.wire import encode_flagged, num, parse_flagged, rfu, scalar
from hub.reading import CTX, MDC, UNIT

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

U_MEAS = const(0x2A1C)
U_INTER = const(0x2A1E)
MDC_TEMP_BODY = const(150364)
TYPE_MDC = {1: 188452, 2: 150364, 3: 188428, 4: 188432, 5: 188456, 6: 188424,
            7: 188420, 8: 188448, 9: 150392}


# (bit, type, key, what): see hub.profiles.wire. Temperature Measurement and
# Intermediate Temperature share it.
_LAYOUT = ((0, "float32", "temp", "temperature"), (0x02, "date_time", "time", "time stamp"),
           (0x04, "u8", "type", "temperature type"))


def _readings(m, interim):
    t = m.get("type")
    mdc = TYPE_MDC.get(t, MDC_TEMP_BODY) if t is not None else MDC_TEMP_BODY
    r = num({MDC: mdc, UNIT: m["unit"]}, m["temp"])
    if t is not None and t not in TYPE_MDC:
        r.setdefault(CTX, {})["type"] = t
    T.stamp([r], m)
    if interim:
        r.setdefault(CTX, {})["interim"] = True
    return rfu([r], m["flags"], 0xF8)


# Measurement (0x2A1C) and Intermediate Temperature (0x2A1E) share one
# codec; the registry passes the characteristic (BY_UUID).
BY_UUID = ("measurement",)


def parse_measurement(data, uuid=U_MEAS):
    m = parse_flagged(uuid, data, _LAYOUT)
    m["unit"] = "[degF]" if m["flags"] & 0x01 else "Cel"
    return m


def encode_measurement(fields, uuid=U_MEAS):
    return encode_flagged(uuid, fields, _LAYOUT)


def decode_measurement(data, uuid=U_MEAS):
    return _readings(parse_measurement(data, uuid), uuid == U_INTER)


parse_temperature_type, encode_temperature_type = scalar(0x2A1D, "u8", "type", "temperature type")
# Measurement Interval: seconds between measurements, 0 = none.
parse_interval, encode_interval = scalar(0x2A21, "u16", "interval", "measurement interval")
