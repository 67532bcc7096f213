# CBOR (RFC 8949) for the hub: the wire and flash format of readings.
#
# Encoding is deterministic (RFC 8949 section 4.2.1): shortest-form
# integer heads, definite lengths only, map keys sorted bytewise by their
# encoding, floats in the shortest of binary16/32/64 that keeps the value.
# Identical readings therefore seal to identical bytes on every board,
# and the receiver can compare them.
#
# Decoding accepts any well-formed CBOR of the supported types (including
# indefinite lengths, which some encoders emit) and raises CBORError, a
# ValueError, for everything else: truncation, reserved additional info,
# unsupported simple values, nesting deeper than MAX_DEPTH, trailing bytes.
# It never lets an IndexError or struct.error escape.
#
# Runs unchanged on MicroPython (unix port, ESP32, RP2) and CPython.

import struct
from hub.errors import HubError

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MAX_DEPTH = const(32)
_UINT64_MAX = const(0xFFFFFFFFFFFFFFFF)
_INT64_MIN = const(-0x8000000000000000)

_T_UINT = const(0)
_T_NINT = const(1)
_T_BYTES = const(2)
_T_TEXT = const(3)
_T_ARRAY = const(4)
_T_MAP = const(5)
_T_TAG = const(6)
_T_SIMPLE = const(7)


class CBORError(HubError):
    """Malformed CBOR or a value CBOR (as we use it) cannot carry."""


class Tag:
    """A tagged data item (RFC 8949 section 3.4); the hub passes tags through."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and other.tag == self.tag and other.value == self.value

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


# ---------------------------------------------------------------- encoding

def _head(major, n):
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return struct.pack(">BH", mt | 25, n)
    if n < 0x100000000:
        return struct.pack(">BI", mt | 26, n)
    return bytes((mt | 27,)) + n.to_bytes(8, "big")


def _half_from_single(b):
    # binary32 bits -> binary16 bits if the value fits exactly, else None.
    # Done by hand: MicroPython's struct "e" loses half-precision subnormals.
    v = struct.unpack(">I", b)[0]
    sign = (v >> 16) & 0x8000
    e8 = (v >> 23) & 0xFF
    m23 = v & 0x7FFFFF
    if e8 == 0xFF:
        return sign | 0x7C00 if m23 == 0 else None  # +-INF; NaN is handled before
    if e8 == 0:
        return sign if m23 == 0 else None  # +-0; binary32 subnormals are too small
    e = e8 - 127
    if e > 15:
        return None
    if e >= -14:
        if m23 & 0x1FFF:
            return None
        return sign | ((e + 15) << 10) | (m23 >> 13)
    shift = -e - 1  # subnormal half: value = m * 2**-24
    sig = m23 | 0x800000
    if shift > 24 or sig & ((1 << shift) - 1):
        return None
    return sign | (sig >> shift)


def _half_to_float(h):
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0:
        v = m * 5.960464477539063e-08  # 2**-24, exact
    elif e == 31:
        v = float("nan") if m else float("inf")
    else:
        v = (1024 + m) * 2.0 ** (e - 25)
    return -v if h & 0x8000 else v


def _float(x):
    # Shortest of half/single/double that round-trips exactly (4.2.1).
    if x != x:
        return b"\xf9\x7e\x00"  # canonical NaN
    try:
        s = struct.pack(">f", x)
        fits = struct.unpack(">f", s)[0] == x
    except (OverflowError, ValueError):
        fits = False
    if not fits:
        return b"\xfb" + struct.pack(">d", x)
    h = _half_from_single(s)
    if h is not None:
        return struct.pack(">BH", 0xF9, h)
    return b"\xfa" + s


def _enc(v, out, depth):
    if depth > MAX_DEPTH:
        raise CBORError("nesting deeper than %d" % MAX_DEPTH)
    if v is True:
        out.append(b"\xf5")
    elif v is False:
        out.append(b"\xf4")
    elif v is None:
        out.append(b"\xf6")
    elif isinstance(v, int):
        if v >= 0:
            if v > _UINT64_MAX:
                raise CBORError("integer %d does not fit in 64 bits" % v)
            out.append(_head(_T_UINT, v))
        else:
            if v < -_UINT64_MAX - 1:
                raise CBORError("integer %d does not fit in 64 bits" % v)
            out.append(_head(_T_NINT, -1 - v))
    elif isinstance(v, float):
        out.append(_float(v))
    elif isinstance(v, str):
        b = v.encode("utf-8")
        out.append(_head(_T_TEXT, len(b)))
        out.append(b)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        out.append(_head(_T_BYTES, len(v)))
        out.append(bytes(v))
    elif isinstance(v, (list, tuple)):
        out.append(_head(_T_ARRAY, len(v)))
        for item in v:
            _enc(item, out, depth + 1)
    elif isinstance(v, dict):
        items = []
        for k in v:
            kb = []
            _enc(k, kb, depth + 1)
            kb = b"".join(kb)
            items.append((kb, k))
        items.sort(key=lambda p: p[0])
        last = None
        for kb, k in items:
            if kb == last:
                raise CBORError("duplicate map key %r" % (k,))
            last = kb
        out.append(_head(_T_MAP, len(items)))
        for kb, k in items:
            out.append(kb)
            _enc(v[k], out, depth + 1)
    elif isinstance(v, Tag):
        if not isinstance(v.tag, int) or not 0 <= v.tag <= _UINT64_MAX:
            raise CBORError("bad tag number %r" % (v.tag,))
        out.append(_head(_T_TAG, v.tag))
        _enc(v.value, out, depth + 1)
    else:
        raise CBORError("cannot encode %s" % type(v).__name__)


def dumps(value):
    """Deterministically encode value; raises CBORError for unsupported types."""
    out = []
    _enc(value, out, 0)
    return b"".join(out)


# ---------------------------------------------------------------- decoding

class _Reader:
    def __init__(self, data):
        self.b = data
        self.i = 0
        self.n = len(data)

    def take(self, k):
        i = self.i
        if k > self.n - i:
            raise CBORError("truncated at byte %d: need %d more bytes, have %d" % (i, k, self.n - i))
        self.i = i + k
        return self.b[i:i + k]

    def byte(self):
        i = self.i
        if i >= self.n:
            raise CBORError("truncated at byte %d" % i)
        self.i = i + 1
        return self.b[i]


_BREAK = object()


def _arg(r, ai, at):
    if ai < 24:
        return ai
    if ai == 24:
        return r.byte()
    if ai == 25:
        return struct.unpack(">H", r.take(2))[0]
    if ai == 26:
        return struct.unpack(">I", r.take(4))[0]
    if ai == 27:
        return int.from_bytes(r.take(8), "big")
    raise CBORError("reserved additional information %d at byte %d" % (ai, at))


def _chunks(r, major, at, depth):
    # Indefinite-length string: definite chunks of the same major type, then break.
    parts = []
    while True:
        pos = r.i
        ib = r.byte()
        if ib == 0xFF:
            break
        if ib >> 5 != major or (ib & 31) == 31:
            raise CBORError("bad chunk in indefinite string at byte %d" % pos)
        parts.append(_dec(r, depth, ib, pos))
    return (b"" if major == _T_BYTES else "").join(parts)


def _dec(r, depth, ib=None, at=None):
    if depth > MAX_DEPTH:
        raise CBORError("nesting deeper than %d at byte %d" % (MAX_DEPTH, r.i))
    if ib is None:
        at = r.i
        ib = r.byte()
    major = ib >> 5
    ai = ib & 31
    if major == _T_SIMPLE:
        if ai == 20:
            return False
        if ai == 21:
            return True
        if ai == 22:
            return None
        if ai == 25:
            return _half_to_float(struct.unpack(">H", r.take(2))[0])
        if ai == 26:
            return struct.unpack(">f", r.take(4))[0]
        if ai == 27:
            return struct.unpack(">d", r.take(8))[0]
        if ai == 31:
            return _BREAK
        raise CBORError("unsupported simple value (ai %d) at byte %d" % (ai, at))
    if ai == 31:
        if major == _T_BYTES or major == _T_TEXT:
            v = _chunks(r, major, at, depth)
            return v
        if major == _T_ARRAY:
            out = []
            while True:
                item = _dec(r, depth + 1)
                if item is _BREAK:
                    return out
                out.append(item)
        if major == _T_MAP:
            out = {}
            while True:
                kpos = r.i
                k = _dec(r, depth + 1)
                if k is _BREAK:
                    return out
                _put(out, k, _value(r, depth + 1), kpos)
        raise CBORError("indefinite length not allowed for major type %d at byte %d" % (major, at))
    n = _arg(r, ai, at)
    if major == _T_UINT:
        return n
    if major == _T_NINT:
        return -1 - n
    if major == _T_BYTES:
        return bytes(r.take(n))
    if major == _T_TEXT:
        raw = r.take(n)
        try:
            return str(raw, "utf-8")
        except UnicodeError:
            raise CBORError("invalid UTF-8 in text string at byte %d" % at)
    if major == _T_ARRAY:
        if n > r.n - r.i:  # every item takes at least one byte
            raise CBORError("array of %d items truncated at byte %d" % (n, at))
        out = []
        for _ in range(n):
            out.append(_value(r, depth + 1))
        return out
    if major == _T_MAP:
        if 2 * n > r.n - r.i:
            raise CBORError("map of %d pairs truncated at byte %d" % (n, at))
        out = {}
        for _ in range(n):
            kpos = r.i
            k = _value(r, depth + 1)
            _put(out, k, _value(r, depth + 1), kpos)
        return out
    # major 6: tag
    return Tag(n, _value(r, depth + 1))


def _value(r, depth):
    pos = r.i
    v = _dec(r, depth)
    if v is _BREAK:
        raise CBORError("unexpected break at byte %d" % pos)
    return v


def _put(d, k, v, pos):
    if isinstance(k, list):
        k = tuple(k)  # arrays as keys must be hashable
    try:
        if k in d:
            raise CBORError("duplicate map key at byte %d" % pos)
        d[k] = v
    except TypeError:
        raise CBORError("unhashable map key at byte %d" % pos)


def loads(data):
    """Decode exactly one CBOR item; trailing bytes are an error."""
    r = _Reader(data)
    v = _value(r, 0)
    if r.i != r.n:
        raise CBORError("%d trailing bytes after item at byte %d" % (r.n - r.i, r.i))
    return v
