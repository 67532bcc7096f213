# Bounds-checked little-endian reading and range-checked writing for the
# profile codecs. Every read names the field it reads, so that a short or
# inconsistent payload raises ProfileError with the characteristic, the
# field and the byte offset, and never an IndexError.

from hub.profiles import ProfileError
from hub.profiles import ieee11073 as F
from hub.reading import CTX, EXP, VAL

FIELDS = ("year", "month", "day", "hours", "minutes", "seconds")
_MDAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def days_in_month(y, m):
    if m == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        return 29
    return _MDAYS[m - 1]


def bad_field(dt):
    """Index of the first out-of-range field of a Date Time (timefmt.py), or -1 when valid."""
    y, mo, d, h, mi, s = dt
    if y != 0 and not 1582 <= y <= 9999:
        return 0
    if not 0 <= mo <= 12:
        return 1
    if not 0 <= d <= 31 or (d and mo and y and d > days_in_month(y, mo)):
        return 2
    if not 0 <= h <= 23:
        return 3
    if not 0 <= mi <= 59:
        return 4
    if not 0 <= s <= 59:
        return 5
    return -1


class Reader:
    def __init__(self, uuid, data, start=0, end=None):
        self.u = uuid
        self.b = data
        self.i = start
        self.n = len(data) if end is None else end

    def err(self, what, at=None):
        raise ProfileError(self.u, self.i if at is None else at, what)

    def need(self, k, what):
        left = self.n - self.i
        if left < k:
            raise ProfileError(self.u, self.i, "truncated: %s needs %d bytes, %d left" % (what, k, left))

    def left(self):
        return self.n - self.i

    def u8(self, what):
        i = self.i
        if i >= self.n:
            self.need(1, what)
        self.i = i + 1
        return self.b[i]

    def s8(self, what):
        v = self.u8(what)
        return v - 256 if v >= 128 else v

    def u16(self, what):
        i = self.i
        if self.n - i < 2:
            self.need(2, what)
        b = self.b
        self.i = i + 2
        return b[i] | (b[i + 1] << 8)

    def s16(self, what):
        v = self.u16(what)
        return v - 0x10000 if v >= 0x8000 else v

    def u24(self, what):
        self.need(3, what)
        b = self.b
        i = self.i
        self.i = i + 3
        return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)

    def u32(self, what):
        self.need(4, what)
        b = self.b
        i = self.i
        self.i = i + 4
        return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)

    def s32(self, what):
        v = self.u32(what)
        return v - 0x100000000 if v >= 0x80000000 else v

    def u64(self, what):
        lo = self.u32(what)
        return lo | (self.u32(what) << 32)

    def raw(self, k, what):
        self.need(k, what)
        i = self.i
        self.i = i + k
        return bytes(self.b[i:i + k])

    def rest(self):
        i = self.i
        self.i = self.n
        return bytes(self.b[i:self.n])

    def sfloat(self, what):
        return F.sfloat(self.u16(what))

    def float32(self, what):
        return F.float32(self.u32(what))

    def date_time(self, what="date time"):
        """Date Time (7 octets) -> (year, month, day, hours, minutes, seconds), range-checked."""
        at = self.i
        self.need(7, what)
        b = self.b
        dt = (b[at] | (b[at + 1] << 8), b[at + 2], b[at + 3], b[at + 4], b[at + 5], b[at + 6])
        bad = bad_field(dt)
        if bad >= 0:
            raise ProfileError(self.u, at + (0 if bad == 0 else bad + 1),
                               "%s: %s %d out of range" % (what, FIELDS[bad], dt[bad]))
        self.i = at + 7
        return dt


class Writer:
    def __init__(self, uuid):
        self.u = uuid
        self.b = bytearray()

    def err(self, what):
        raise ProfileError(self.u, len(self.b), what)

    def _int(self, v, lo, hi, what):
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            self.err("%s out of range: %r" % (what, v))
        return v

    def u8(self, v, what):
        self.b.append(self._int(v, 0, 0xFF, what))

    def s8(self, v, what):
        self.b.append(self._int(v, -0x80, 0x7F, what) & 0xFF)

    def nibbles(self, lo, hi, what):
        """Two 4-bit fields in one byte, lo in the low nibble (type and sample location)."""
        if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= 15 and 0 <= hi <= 15):
            self.err("%s must be nibbles: %r, %r" % (what, lo, hi))
        self.b.append(lo | (hi << 4))

    def _le(self, v, n):
        for _ in range(n):
            self.b.append(v & 0xFF)
            v >>= 8

    def u16(self, v, what):
        self._le(self._int(v, 0, 0xFFFF, what), 2)

    def s16(self, v, what):
        self._le(self._int(v, -0x8000, 0x7FFF, what) & 0xFFFF, 2)

    def u24(self, v, what):
        self._le(self._int(v, 0, 0xFFFFFF, what), 3)

    def u32(self, v, what):
        self._le(self._int(v, 0, 0xFFFFFFFF, what), 4)

    def s32(self, v, what):
        self._le(self._int(v, -0x80000000, 0x7FFFFFFF, what) & 0xFFFFFFFF, 4)

    def u64(self, v, what):
        self._le(self._int(v, 0, 0xFFFFFFFFFFFFFFFF, what), 8)

    def raw(self, v, what):
        if not isinstance(v, (bytes, bytearray)):
            self.err("%s must be bytes: %r" % (what, v))
        self.b.extend(v)

    def sfloat(self, v, what):
        try:
            w = F.to_sfloat(v)
        except ProfileError as e:
            self.err("%s: %s" % (what, e.what))
        self._le(w, 2)

    def float32(self, v, what):
        try:
            w = F.to_float32(v)
        except ProfileError as e:
            self.err("%s: %s" % (what, e.what))
        self._le(w, 4)

    def date_time(self, dt, what="date time"):
        if not isinstance(dt, (tuple, list)) or len(dt) != 6:
            self.err("%s must be (year, month, day, hours, minutes, seconds): %r" % (what, dt))
        for v in dt:
            if not isinstance(v, int) or isinstance(v, bool):
                self.err("%s fields must be integers: %r" % (what, dt))
        bad = bad_field(dt)
        if bad >= 0:
            self.err("%s: %s %d out of range" % (what, FIELDS[bad], dt[bad]))
        self._le(dt[0], 2)
        for v in dt[1:]:
            self.b.append(v)

    def bytes(self):
        return bytes(self.b)


def need(fields, key, u, w=None):
    """fields[key], or ProfileError when the flags announce a field the dict does not have."""
    v = fields.get(key)
    if v is None:
        raise ProfileError(u, None if w is None else len(w.b), "flags announce %s but fields have none" % key)
    return v


def flags_of(fields, u):
    f = fields.get("flags")
    if not isinstance(f, int) or isinstance(f, bool) or not 0 <= f <= 0xFF:
        raise ProfileError(u, 0, "flags must be an 8-bit integer: %r" % (f,))
    return f


def num(r, v, shift=0):
    """Set VAL/EXP of reading r from a decoded SFLOAT/FLOAT (exponent + shift); NRes and
    reserved also set CTX special. Returns r."""
    val, exp, special = F.value(v, shift)
    r[VAL] = val
    if exp:
        r[EXP] = exp
    if special is not None:
        r.setdefault(CTX, {})["special"] = special
    return r


def nums(r, vs, shift=0):
    """Set VAL (a list) and EXP of reading r from several decoded numbers with one common
    exponent: the smallest one, the other mantissas scaled up exactly (value unchanged).
    NRes/reserved items set CTX special to a list (None for ordinary items). Returns r."""
    exps = [v[1] for v in vs if not isinstance(v, str)]
    common = min(exps) if exps else 0
    out = []
    sp = []
    for v in vs:
        if isinstance(v, str):
            val, _, s = F.value(v)
            out.append(val)
            sp.append(s)
        else:
            out.append(v[0] * 10 ** (v[1] - common))
            sp.append(None)
    r[VAL] = out
    if common + shift:
        r[EXP] = common + shift
    for s in sp:
        if s is not None:
            r.setdefault(CTX, {})["special"] = sp
            break
    return r


def rfu(rs, flags, mask):
    """Carry the reserved bits of a flags octet (flags & mask) as CTX rfu on readings rs."""
    bits = flags & mask
    if bits:
        for r in rs:
            r.setdefault(CTX, {})["rfu"] = bits
    return rs


# Most characteristics are a flags octet followed by fields in a fixed
# order, each present always or when a flag bit is set. A layout says that
# once, as a tuple of (bit, type, key, what): bit 0 = always present; type
# names a Reader/Writer method ("u8", "sfloat", "date_time", ...); key is
# the field's name in the dict; what names it in errors. Parsing and
# encoding then follow the same table and cannot drift apart.

def read_fields(r, f, layout, out):
    """Read the fields of layout that flags f announce from Reader r into out."""
    for bit, t, key, what in layout:
        if not bit or f & bit:
            out[key] = getattr(r, t)(what)
    return out


def write_fields(w, f, layout, fields):
    """Write the fields of layout that flags f announce from fields to Writer w; its bytes."""
    u = w.u
    for bit, t, key, what in layout:
        if not bit or f & bit:
            getattr(w, t)(need(fields, key, u, w), what)
    return w.bytes()


def parse_flagged(u, data, layout):
    """{"flags": f, ...} of a characteristic that is a flags octet then layout."""
    r = Reader(u, data)
    f = r.u8("flags")
    return read_fields(r, f, layout, {"flags": f})


def flags_writer(u, fields):
    """(Writer, flags): a Writer for u that already holds the flags octet of fields."""
    w = Writer(u)
    f = flags_of(fields, u)
    w.u8(f, "flags")
    return w, f


def encode_flagged(u, fields, layout):
    """Payload of a characteristic that is a flags octet then layout."""
    w, f = flags_writer(u, fields)
    return write_fields(w, f, layout, fields)


def scalar(u, t, key, what):
    """(parse, encode) for a characteristic that is one field, e.g. Body Sensor Location."""
    def parse(data):
        return {key: getattr(Reader(u, data), t)(what)}

    def encode(fields):
        w = Writer(u)
        getattr(w, t)(fields.get(key), what)
        return w.bytes()
    return parse, encode
