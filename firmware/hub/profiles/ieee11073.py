# IEEE 11073-20601 SFLOAT (16 bit) and FLOAT (32 bit) numbers, as every
# Bluetooth SIG health profile sends them (reference section 1).
#
# A number is kept as the pair (mantissa, exponent), value = m * 10**e, so
# that the device's precision survives: 0xF014 is (20, -1), "2.0", and not
# the same reading as 0x0002, "2". The five reserved words decode to the
# names below (strings), never to a number:
#
#   NAN "NaN", NRES "NRes" (not at this resolution), PINF "+INF",
#   NINF "-INF", RESERVED "reserved" (reserved for future use)
#
# Words are compared whole (reference 1.1 step 1): 0x17FF is the ordinary
# number 2047e1, not NaN. Encoding is exact: it never rounds, never
# renormalises, and refuses a pair that would collide with a special word
# (mantissa beyond +-2045 with exponent 0) or does not fit.
#
# For readings, value() turns a decoded number into (VAL, EXP, special):
# NaN/NRes/reserved become float NaN, +-INF become float +-inf (the only
# floats the Reading model allows); special is "NRes"/"reserved" for the
# two that would otherwise be indistinguishable from NaN, else None.

from hub.profiles import ProfileError

NAN = "NaN"
NRES = "NRes"
PINF = "+INF"
NINF = "-INF"
RESERVED = "reserved"
SPECIALS = (NAN, NRES, PINF, NINF, RESERVED)

_S16 = {0x07FF: NAN, 0x0800: NRES, 0x07FE: PINF, 0x0802: NINF, 0x0801: RESERVED}
_W16 = {NAN: 0x07FF, NRES: 0x0800, PINF: 0x07FE, NINF: 0x0802, RESERVED: 0x0801}
_S32 = {0x007FFFFF: NAN, 0x00800000: NRES, 0x007FFFFE: PINF, 0x00800002: NINF, 0x00800001: RESERVED}
_W32 = {NAN: 0x007FFFFF, NRES: 0x00800000, PINF: 0x007FFFFE, NINF: 0x00800002, RESERVED: 0x00800001}

_FNAN = float("nan")
_FINF = float("inf")


def _split(raw, specials, mbits, ebits):
    """The word's two's-complement mantissa (low mbits) and exponent (high ebits)."""
    s = specials.get(raw)
    if s is not None:
        return s
    m = raw & ((1 << mbits) - 1)
    if m >> (mbits - 1):
        m -= 1 << mbits
    e = raw >> mbits
    if e >> (ebits - 1):
        e -= 1 << ebits
    return (m, e)


def sfloat(raw):
    """uint16 word -> (mantissa, exponent), or a special name."""
    return _split(raw, _S16, 12, 4)


def float32(raw):
    """uint32 word -> (mantissa, exponent), or a special name."""
    return _split(raw, _S32, 24, 8)


def _pair(v, mbits, ebits, what):
    if not (isinstance(v, tuple) or isinstance(v, list)) or len(v) != 2:
        raise ProfileError(None, None, "%s must be (mantissa, exponent) or a special name, not %r" % (what, v))
    m, e = v
    if not (isinstance(m, int) and isinstance(e, int)) or isinstance(m, bool) or isinstance(e, bool):
        raise ProfileError(None, None, "%s parts must be integers: %r" % (what, v))
    mmax = (1 << (mbits - 1)) - 1
    emax = (1 << (ebits - 1)) - 1
    lo = -mmax - 1
    hi = mmax
    if e == 0:  # the top two and bottom three mantissas are the special words
        lo += 3
        hi -= 2
    if not (lo <= m <= hi and -emax - 1 <= e <= emax):
        raise ProfileError(None, None, "%s %de%d does not fit" % (what, m, e))
    return (m & ((1 << mbits) - 1)) | ((e & ((1 << ebits) - 1)) << mbits)


def _word(v, words, mbits, ebits, what):
    if isinstance(v, str):
        w = words.get(v)
        if w is None:
            raise ProfileError(None, None, "unknown special value %r" % v)
        return w
    return _pair(v, mbits, ebits, what)


def to_sfloat(v):
    """(mantissa, exponent) or a special name -> uint16 word; ProfileError if it does not fit."""
    return _word(v, _W16, 12, 4, "SFLOAT")


def to_float32(v):
    """(mantissa, exponent) or a special name -> uint32 word; ProfileError if it does not fit."""
    return _word(v, _W32, 24, 8, "FLOAT")


def is_special(v):
    return isinstance(v, str)


def value(v, shift=0):
    """A decoded number -> (VAL, EXP, special) for a reading; shift is added to the exponent."""
    if isinstance(v, str):
        if v == PINF:
            return _FINF, 0, None
        if v == NINF:
            return -_FINF, 0, None
        return _FNAN, 0, (None if v == NAN else v)
    return v[0], v[1] + shift, None


def text(v):
    """Human form that keeps the precision: (1234, -2) -> '12.34', (2, 2) -> '200'."""
    if isinstance(v, str):
        return v
    m, e = v
    if e >= 0:
        return str(m * 10 ** e)
    s = str(abs(m))
    if len(s) <= -e:
        s = "0" * (-e - len(s) + 1) + s
    s = s[:e] + "." + s[e:]
    return ("-" + s) if m < 0 else s
