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
from hub.profiles.wire import Reader, Writer, flags_of, need, num, rfu
from hub.reading import CTX, DTS, MDC, UNIT

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


def _parse(u, data):
    r = Reader(u, data)
    f = r.u8("flags")
    out = {"flags": f, "temp": r.float32("temperature"), "unit": "[degF]" if f & 0x01 else "Cel"}
    if f & 0x02:
        out["time"] = r.date_time("time stamp")
    if f & 0x04:
        out["type"] = r.u8("temperature type")
    return out


def _encode(u, fields):
    w = Writer(u)
    f = flags_of(fields, u)
    w.u8(f, "flags")
    w.float32(need(fields, "temp", u, w), "temperature")
    if f & 0x02:
        w.date_time(need(fields, "time", u, w), "time stamp")
    if f & 0x04:
        w.u8(need(fields, "type", u, w), "temperature type")
    return w.bytes()


def _readings(m, interim):
    t = m.get("type")
    mdc = TYPE_MDC.get(t, MDC_TEMP_BODY) if t is not None else MDC_TEMP_BODY
    r = num({MDC: mdc, UNIT: m["unit"]}, m["temp"])
    if t is not None and t not in TYPE_MDC:
        r.setdefault(CTX, {})["type"] = t
    if "time" in m:
        dts = T.epoch(m["time"])
        if dts is not None:
            r[DTS] = dts
    if interim:
        r.setdefault(CTX, {})["interim"] = True
    return rfu([r], m["flags"], 0xF8)


def parse_measurement(data):
    return _parse(U_MEAS, data)


def encode_measurement(fields):
    return _encode(U_MEAS, fields)


def decode_measurement(data):
    return _readings(_parse(U_MEAS, data), False)


def parse_intermediate(data):
    return _parse(U_INTER, data)


def encode_intermediate(fields):
    return _encode(U_INTER, fields)


def decode_intermediate(data):
    return _readings(_parse(U_INTER, data), True)


def parse_temperature_type(data):
    return {"type": Reader(0x2A1D, data).u8("temperature type")}


def encode_temperature_type(fields):
    w = Writer(0x2A1D)
    w.u8(fields.get("type"), "temperature type")
    return w.bytes()


def parse_interval(data):
    """Measurement Interval: seconds between measurements, 0 = none."""
    return {"interval": Reader(0x2A21, data).u16("measurement interval")}


def encode_interval(fields):
    w = Writer(0x2A21)
    w.u16(fields.get("interval"), "measurement interval")
    return w.bytes()
