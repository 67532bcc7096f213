# Polar Measurement Data (PMD) for the Polar H10 ECG (reference section 10):
# control point FB005C81-02E7-F387-1CAD-8ACD2D8DF0C8 (requests the hub
# writes, responses it receives) and data FB005C82-... (ECG frames).
#
# Requests (client -> sensor): get settings `01 <type>`, start
# `02 <type | offline << 7> <settings>`, stop `03 <type>`; a setting is
# `<setting type> <count> <count values>`. start_ecg() is the H10 ECG
# stream at 130 Hz, 14 bit: 02 00 00 01 82 00 01 01 0E 00.
#
# Control point payloads from the sensor (parse_control_point):
#   F0 <op> <type> <status> [<more>] <params>: {"kind": "response", "op",
#     "type", "status", "more" (when sent), "params" (bytes), and
#     "settings" for a successful get-settings response}
#   0F <feature bitmap>: {"kind": "features", "features" (int, little
#     endian), "size" (octets)}
#   01 <types>: the sensor stopped these online streams by itself:
#     {"kind": "stopped", "types": [...]}
#   anything else: {"kind": "unknown", "code", "data"}
# Settings decode to {setting type: [values]}: 0 sample rate, 1
# resolution, 2 range (uint16), 3 range in milli-units (sint32), 4 channels
# (uint8), 5 conversion factor (float32), 6 security (16 octets, bytes).
# An unknown setting type stops the walk; the rest is kept as "rest".
#
# Data frames: type (octet 0, low 6 bits; high bits kept as "tflags"),
# timestamp (uint64 ns since 2000-01-01T00:00:00 UTC of the LAST sample),
# frame type (octet 9: low 7 bits, bit 7 = delta compressed), samples.
# The H10 ECG is type 0, frame type 0: 3-octet signed little-endian uV.
#
# Reading per ECG frame: MDC_ECG_ELEC_POTL 131328, VAL = the list of uV
# samples, UNIT "uV", PERIOD = the nominal sample period in microseconds
# (7692 at 130 Hz; opts rate=<Hz>), DTS = whole seconds since 1970 of the
# last sample's time, CTX ns = the sub-second nanoseconds of that time.
# Sample i of N was taken at DTS + ns/1e9 - (N - 1 - i) * period. Other ECG
# frame types (1-3, compressed) raise ProfileError; frames of other
# measurement types (ACC, ...) are not decoded: decode() returns [].
#
# The sample loop runs as viper code on MicroPython and writes small ints
# into one list allocated per frame: nothing is allocated per sample.
# decode_into() fills a caller's preallocated list or array and allocates
# nothing at all.

from hub.profiles import ProfileError, PMD_CP, PMD_DATA
from hub.profiles.wire import Reader, Writer
from hub.reading import CTX, DTS, MDC, PERIOD, UNIT, VAL

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    import micropython  # on MicroPython the firmware is compiled with native code support
    _VIPER = True       # (mpy-cross -march=...); micropython.viper is a compile-time name
except ImportError:  # CPython
    _VIPER = False

OPTS = ("rate",)
MDC_ECG_ELEC_POTL = const(131328)
EPOCH_2000 = const(946684800)  # 2000-01-01T00:00:00Z in seconds since 1970
_NS = const(1000000000)

# measurement types
ECG = const(0)
PPG = const(1)
ACC = const(2)
PPI = const(3)
GYRO = const(5)
MAG = const(6)
# control point op codes
GET_SETTINGS = const(1)
START = const(2)
STOP = const(3)
RESPONSE = const(0xF0)
FEATURES = const(0x0F)
STOPPED = const(0x01)
# setting types
SAMPLE_RATE = const(0)
RESOLUTION = const(1)
RANGE = const(2)
RANGE_MILLI = const(3)
CHANNELS = const(4)
FACTOR = const(5)
SECURITY = const(6)
_SIZE = {0: 2, 1: 2, 2: 2, 3: 4, 4: 1, 5: 4, 6: 16}

STATUS = {0: "success", 1: "invalid op code", 2: "invalid measurement type", 3: "not supported",
          4: "invalid length", 5: "invalid parameter", 6: "already in state",
          7: "invalid resolution", 8: "invalid sample rate", 9: "invalid range", 10: "invalid MTU",
          11: "invalid number of channels", 12: "invalid state", 13: "device in charger",
          14: "disk full"}


# ---------------------------------------------------------------- settings

def _setting(r, t):
    if t <= RANGE:
        return r.u16("setting value")
    if t == RANGE_MILLI:
        return r.s32("setting value")
    if t == CHANNELS:
        return r.u8("setting value")
    if t == FACTOR:
        import struct
        return struct.unpack("<f", r.raw(4, "conversion factor"))[0]
    return r.raw(16, "security setting")


def _parse_settings(r, out):
    s = {}
    while r.left():
        t = r.u8("setting type")
        if t not in _SIZE:
            r.i -= 1
            out["rest"] = r.rest()
            break
        n = r.u8("setting count")
        s[t] = [_setting(r, t) for _ in range(n)]
    out["settings"] = s
    return out


def _put_setting(w, t, v):
    if t <= RANGE:
        w.u16(v, "setting value")
    elif t == RANGE_MILLI:
        w.s32(v, "setting value")
    elif t == CHANNELS:
        w.u8(v, "setting value")
    elif t == FACTOR:
        import struct
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            w.err("conversion factor must be a number: %r" % (v,))
        w.raw(struct.pack("<f", v), "conversion factor")
    else:
        if not isinstance(v, (bytes, bytearray)) or len(v) != 16:
            w.err("security setting must be 16 bytes")
        w.raw(v, "security setting")


def _put_settings(w, fields):
    s = fields.get("settings") or {}
    if not isinstance(s, dict):
        w.err("settings must be a dict {setting type: [values]}")
    for t in sorted(s):
        if t not in _SIZE:
            w.err("unknown setting type %r" % (t,))
        vals = s[t]
        if not isinstance(vals, (list, tuple)):
            vals = [vals]
        w.u8(t, "setting type")
        w.u8(len(vals), "setting count")
        for v in vals:
            _put_setting(w, t, v)
    if "rest" in fields:
        w.raw(fields["rest"], "rest")


# ---------------------------------------------------------------- control point

def parse_request(data):
    """A request as the hub writes it: {"op", "type", "offline", "settings"} (start)."""
    r = Reader(PMD_CP, data)
    op = r.u8("op code")
    out = {"op": op}
    if op in (GET_SETTINGS, START, STOP):
        t = r.u8("measurement type")
        out["type"] = t & 0x7F
        if op == START:
            out["offline"] = bool(t & 0x80)
            _parse_settings(r, out)
    if r.left():
        out["rest"] = r.rest()
    return out


def encode_request(fields):
    w = Writer(PMD_CP)
    op = fields.get("op")
    w.u8(op, "op code")
    if op in (GET_SETTINGS, START, STOP):
        t = fields.get("type")
        if not isinstance(t, int) or not 0 <= t <= 0x7F:
            w.err("measurement type out of range: %r" % (t,))
        w.u8(t | (0x80 if fields.get("offline") else 0), "measurement type")
        if op == START:
            _put_settings(w, fields)
            return w.bytes()
    if "rest" in fields:
        w.raw(fields["rest"], "rest")
    return w.bytes()


def get_settings(mtype=ECG):
    return encode_request({"op": GET_SETTINGS, "type": mtype})


def start(mtype, settings, offline=False):
    """start(ECG, {SAMPLE_RATE: 130, RESOLUTION: 14}): one value per setting."""
    s = {}
    for t in settings:
        s[t] = [settings[t]]
    return encode_request({"op": START, "type": mtype, "offline": offline, "settings": s})


def start_ecg(rate=130, resolution=14):
    return start(ECG, {SAMPLE_RATE: rate, RESOLUTION: resolution})


def stop(mtype=ECG):
    return encode_request({"op": STOP, "type": mtype})


def parse_control_point(data):
    """What the sensor sends on the control point (indications and the read value)."""
    r = Reader(PMD_CP, data)
    code = r.u8("response code")
    if code == RESPONSE:
        out = {"kind": "response", "op": r.u8("op code"), "type": r.u8("measurement type"),
               "status": r.u8("status")}
        if r.left():
            out["more"] = r.u8("more")
        at = r.i
        out["params"] = r.rest()
        if out["op"] == GET_SETTINGS and out["status"] == 0 and out["params"]:
            sub = {}
            _parse_settings(Reader(PMD_CP, data, at), sub)
            out["settings"] = sub["settings"]
            if "rest" in sub:
                out["rest"] = sub["rest"]
        return out
    if code == FEATURES:
        raw = r.rest()
        if not raw:
            r.err("truncated: feature bitmap missing")
        return {"kind": "features", "features": int.from_bytes(raw, "little"), "size": len(raw)}
    if code == STOPPED:
        return {"kind": "stopped", "types": list(r.rest())}
    return {"kind": "unknown", "code": code, "data": r.rest()}


def encode_control_point(fields):
    w = Writer(PMD_CP)
    k = fields.get("kind")
    if k == "response":
        w.u8(RESPONSE, "response code")
        w.u8(fields.get("op"), "op code")
        w.u8(fields.get("type"), "measurement type")
        w.u8(fields.get("status"), "status")
        if "more" in fields:
            w.u8(fields["more"], "more")
        elif fields.get("params"):
            w.err("params need the more octet")
        if fields.get("settings"):
            _put_settings(w, fields)
        else:
            w.raw(fields.get("params", b""), "params")
    elif k == "features":
        n = fields.get("size", 2)
        f = fields.get("features")
        if not isinstance(f, int) or not isinstance(n, int) or not 1 <= n <= 16 or not 0 <= f < 1 << (8 * n):
            w.err("features %r do not fit %r octets" % (f, n))
        w.u8(FEATURES, "response code")
        w.raw(f.to_bytes(n, "little"), "features")
    elif k == "stopped":
        w.u8(STOPPED, "response code")
        for t in fields.get("types", ()):
            w.u8(t, "measurement type")
    else:
        w.u8(fields.get("code"), "response code")
        w.raw(fields.get("data", b""), "data")
    return w.bytes()


# ---------------------------------------------------------------- data frames

def _fill_py(src, off, n, dst):
    # n 3-octet little-endian signed samples from src[off:] into dst[0:n]
    for i in range(n):
        j = off + 3 * i
        v = src[j] | (src[j + 1] << 8) | (src[j + 2] << 16)
        dst[i] = v - 0x1000000 if v & 0x800000 else v


if _VIPER:
    @micropython.viper
    def _fill_viper(src: ptr8, off: int, n: int, dst):
        # the same as _fill_py, in native code: about 0.1 us a sample on the unix port
        i = 0
        j = off
        while i < n:
            v = src[j] | (src[j + 1] << 8) | (src[j + 2] << 16)
            if v & 0x800000:
                v -= 0x1000000
            dst[i] = v
            i += 1
            j += 3

    _fill = _fill_viper
else:
    _fill = _fill_py


def _count(data):
    """Check a data frame's header and size: the number of ECG samples, or -1 for a frame of
    another measurement type (returns a small int: nothing is allocated)."""
    n = len(data)
    if n < 10:
        Reader(PMD_DATA, data).need(10, "frame header")
    if data[0] & 0x3F != ECG:
        return -1
    ft = data[9]
    if ft != 0:
        Reader(PMD_DATA, data, 9).err(
            "ECG frame type %d%s not supported (the H10 sends type 0)" % (ft & 0x7F, " compressed" if ft & 0x80 else ""))
    body = n - 10
    if body == 0:
        Reader(PMD_DATA, data, 10).err("truncated: ECG frame has no samples")
    if body % 3:
        Reader(PMD_DATA, data, n - body % 3).err("truncated: ECG sample needs 3 bytes, %d left" % (body % 3))
    return body // 3


def timestamp(data):
    """A data frame's timestamp: ns since 2000-01-01T00:00:00 UTC of its last sample."""
    if len(data) < 9:
        Reader(PMD_DATA, data).need(9, "timestamp")
    b = data
    return (b[1] | (b[2] << 8) | (b[3] << 16) | (b[4] << 24)) | ((b[5] | (b[6] << 8) | (b[7] << 16) | (b[8] << 24)) << 32)


def period_us(rate=130):
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise ProfileError(PMD_DATA, None, "sample rate must be a positive integer: %r" % (rate,))
    return (1000000 + rate // 2) // rate


def decode_into(data, out):
    """Decode an ECG frame's samples into out (a list or array('i') with room for them) and
    return their count; timestamp(data) gives the frame's time. Allocates nothing."""
    n = _count(data)
    if n < 0:
        Reader(PMD_DATA, data).err("measurement type %d is not ECG" % (data[0] & 0x3F), 0)
    if len(out) < n:
        raise ProfileError(PMD_DATA, 10, "%d samples do not fit a buffer of %d" % (n, len(out)))
    _fill(data, 10, n, out)
    return n


def parse_data(data, **_):
    n = _count(data)
    ft = data[9]
    out = {"type": data[0] & 0x3F, "tflags": data[0] >> 6, "timestamp": timestamp(data),
           "frame_type": ft & 0x7F, "compressed": bool(ft & 0x80)}
    if n < 0:
        out["data"] = bytes(data[10:])
    else:
        s = [0] * n
        _fill(data, 10, n, s)
        out["samples"] = s
    return out


def encode_data(fields):
    w = Writer(PMD_DATA)
    t = fields.get("type", ECG)
    if not isinstance(t, int) or not 0 <= t <= 0x3F:
        w.err("measurement type out of range: %r" % (t,))
    tf = fields.get("tflags", 0)
    if not isinstance(tf, int) or not 0 <= tf <= 3:
        w.err("tflags out of range: %r" % (tf,))
    w.u8(t | (tf << 6), "measurement type")
    w.u64(fields.get("timestamp"), "timestamp")
    ft = fields.get("frame_type", 0)
    if not isinstance(ft, int) or not 0 <= ft <= 0x7F:
        w.err("frame type out of range: %r" % (ft,))
    w.u8(ft | (0x80 if fields.get("compressed") else 0), "frame type")
    if "samples" in fields:
        if t != ECG or ft != 0 or fields.get("compressed"):
            w.err("samples are encoded for ECG frame type 0 only")
        for v in fields["samples"]:
            if not isinstance(v, int) or not -0x800000 <= v <= 0x7FFFFF:
                w.err("ECG sample out of range: %r" % (v,))
            w.b.append(v & 0xFF)
            w.b.append((v >> 8) & 0xFF)
            w.b.append((v >> 16) & 0xFF)
    else:
        w.raw(fields.get("data", b""), "data")
    return w.bytes()


def decode_data(data, rate=130, **_):
    p = period_us(rate)
    n = _count(data)
    if n < 0:
        return []
    s = [0] * n
    _fill(data, 10, n, s)
    secs, ns = divmod(timestamp(data), _NS)
    return [{MDC: MDC_ECG_ELEC_POTL, VAL: s, UNIT: "uV", PERIOD: p, DTS: secs + EPOCH_2000, CTX: {"ns": ns}}]
