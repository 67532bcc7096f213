# The Reading record: one measurement as it travels from the hub's BLE
# layer through the journal to the receiver. Defined here, once; the host
# imports this same module. docs/reading.md explains every field.
#
# A reading is a CBOR map with small integer keys, so that a glucose
# reading costs about 30 bytes before sealing. Values are integers scaled
# by a decimal exponent (value = mantissa * 10**exp) so that the device's
# own precision survives unchanged: 104 mg/dL stays 104, 36.7 Cel is
# (367, -1). Floats are allowed only for IEEE 11073 special values
# (NaN, +INF, -INF) that have no integer form.

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from hub import cbor
from hub.errors import HubError

# Keys of the CBOR map. Never renumber; only add.
SEQ = const(0)     # uint: hub sequence number, monotonic, never reused
DEV = const(1)     # bytes: device address, 1 byte type (0 public, 1 random) + 6 bytes
MDC = const(2)     # uint: IEEE 11073-10101 code, partition << 16 | term
VAL = const(3)     # int or float, or array of them (compound values, sample runs)
EXP = const(4)     # int: decimal exponent applied to VAL; absent means 0
UNIT = const(5)    # text: UCUM unit ("mg/dL", "mm[Hg]", "Cel", "uV", "/min")
DTS = const(6)     # int: device timestamp, seconds since 1970 of the device's clock fields read as UTC
TZO = const(7)     # int: device's own time offset in minutes, when it gives one
HTS = const(8)     # int: hub receive time, ms since 1970 UTC; absent while the hub clock is not set
MONO = const(9)    # [boot, ms]: hub boot counter and monotonic ms at receipt (always present)
REC = const(10)    # uint: device record number (RACP sequence number), where it has one
FLAGS = const(11)  # uint: profile status flags, raw as the device sent them
PRIO = const(12)   # uint: PRIO_* below; absent means routine
COMP = const(13)   # [uint]: MDC codes of the components of a compound VAL
INFO = const(14)   # text: device model and serial ("maker model serial"), first reading of a session
PERIOD = const(15) # uint: sample period in microseconds for a sample run VAL
CTX = const(16)    # map: profile-specific context (meal, sample location, ...); keys documented per profile

PRIO_ROUTINE = const(0)
PRIO_ALARM = const(1)
PRIO_TELEMETRY = const(2)

NAMES = {
    SEQ: "seq", DEV: "dev", MDC: "mdc", VAL: "val", EXP: "exp", UNIT: "unit",
    DTS: "dts", TZO: "tzo", HTS: "hts", MONO: "mono", REC: "rec", FLAGS: "flags",
    PRIO: "prio", COMP: "comp", INFO: "info", PERIOD: "period", CTX: "ctx",
}
KEYS = {v: k for k, v in NAMES.items()}
_REQUIRED = (SEQ, DEV, MDC, VAL, MONO)


class ReadingError(HubError):
    """A reading map that breaks the rules in docs/reading.md."""


def _is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_num(v):
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    # floats only for the special values NaN and +-INF
    return isinstance(v, float) and (v != v or v in (float("inf"), float("-inf")))


def validate(r):
    """Check a decoded reading map; returns it, or raises ReadingError."""
    if not isinstance(r, dict):
        raise ReadingError("reading is not a map")
    for k in _REQUIRED:
        if k not in r:
            raise ReadingError("missing field %s" % NAMES[k])
    for k in r:
        if k not in NAMES:
            raise ReadingError("unknown field key %r" % (k,))
    for k in (SEQ, MDC, REC, FLAGS, PRIO, PERIOD):
        if k in r and not _is_uint(r[k]):
            raise ReadingError("%s must be an unsigned integer" % NAMES[k])
    for k in (EXP, DTS, TZO, HTS):
        if k in r and (not isinstance(r[k], int) or isinstance(r[k], bool)):
            raise ReadingError("%s must be an integer" % NAMES[k])
    dev = r[DEV]
    if not isinstance(dev, bytes) or len(dev) != 7:
        raise ReadingError("dev must be 7 bytes (type + address)")
    val = r[VAL]
    if isinstance(val, list):
        for v in val:
            if not _is_num(v):
                raise ReadingError("val items must be integers or NaN/INF")
    elif not _is_num(val):
        raise ReadingError("val must be an integer, NaN/INF, or an array of them")
    mono = r[MONO]
    if not (isinstance(mono, list) and len(mono) == 2 and _is_uint(mono[0]) and _is_uint(mono[1])):
        raise ReadingError("mono must be [boot, ms]")
    if COMP in r:
        comp = r[COMP]
        if not (isinstance(comp, list) and isinstance(val, list) and len(comp) == len(val)
                and all(_is_uint(c) for c in comp)):
            raise ReadingError("comp must list one MDC code per val item")
    for k in (UNIT, INFO):
        if k in r and not isinstance(r[k], str):
            raise ReadingError("%s must be text" % NAMES[k])
    if CTX in r and not isinstance(r[CTX], dict):
        raise ReadingError("ctx must be a map")
    if PRIO in r and r[PRIO] > PRIO_TELEMETRY:
        raise ReadingError("prio %d unknown" % r[PRIO])
    return r


def make(seq, dev, mdc, val, mono, exp=0, unit=None, prio=PRIO_ROUTINE, **more):
    """Build a reading map; optional fields by name (dts=, rec=, flags=, ...)."""
    r = {SEQ: seq, DEV: dev, MDC: mdc, VAL: val, MONO: mono}
    if exp:
        r[EXP] = exp
    if unit is not None:
        r[UNIT] = unit
    if prio != PRIO_ROUTINE:
        r[PRIO] = prio
    for name in more:
        if name not in KEYS:
            raise ReadingError("unknown field %s" % name)
        if more[name] is not None:
            r[KEYS[name]] = more[name]
    return validate(r)


_HUB_SIDE = (SEQ, DEV, MONO, HTS)


def complete(partial, seq, dev, mono, hts=None):
    """A full, validated reading from a profile decoder's partial reading
    (hub.profiles.decode) and the hub-side fields: sequence number, device
    address, [boot, ms] and, when the hub clock is set, the receive time.
    The partial reading is not modified."""
    if not isinstance(partial, dict):
        raise ReadingError("partial reading is not a map")
    for k in _HUB_SIDE:
        if k in partial:
            raise ReadingError("partial reading already has %s" % NAMES[k])
    r = dict(partial)
    r[SEQ] = seq
    r[DEV] = dev
    r[MONO] = mono
    if hts is not None:
        r[HTS] = hts
    return validate(r)


def encode(r):
    return cbor.dumps(validate(r))


def decode(data):
    """CBOR bytes to a validated reading map; any defect is a ValueError."""
    return validate(cbor.loads(data))


def to_named(r):
    """The same reading with field names instead of keys, for logs and JSON."""
    out = {}
    for k in r:
        v = r[k]
        if k == DEV:
            v = ":".join("%02X" % b for b in v[1:]) + ("/r" if v[0] else "")
        out[NAMES[k]] = v
    return out


def value(r, i=None):
    """The numeric value (item i of a compound) with the exponent applied."""
    v = r[VAL] if i is None else r[VAL][i]
    e = r.get(EXP, 0)
    if isinstance(v, float) or e == 0:
        return v
    return v * 10 ** e if e > 0 else v / 10 ** -e
