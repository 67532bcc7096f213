# Battery Service (reference section 9.2): Battery Level 0x2A19, uint8
# percent 0-100 (101-255 are reserved: ProfileError).
#
# Reading: MDC_ATTR_VAL_BATT_CHARGE 67996, VAL = percent, UNIT "%".

from hub.profiles.wire import Reader, Writer
from hub.reading import MDC, UNIT, VAL

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_U = const(0x2A19)
MDC_ATTR_VAL_BATT_CHARGE = const(67996)


def parse_level(data):
    r = Reader(_U, data)
    v = r.u8("battery level")
    if v > 100:
        r.err("battery level %d out of range 0-100" % v, 0)
    return {"level": v}


def encode_level(fields):
    w = Writer(_U)
    v = fields.get("level")
    if isinstance(v, int) and v > 100:
        w.err("battery level %d out of range 0-100" % v)
    w.u8(v, "battery level")
    return w.bytes()


def decode_level(data):
    return [{MDC: MDC_ATTR_VAL_BATT_CHARGE, VAL: parse_level(data)["level"], UNIT: "%"}]
