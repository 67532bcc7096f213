# BLE health profiles: pure codecs, one module per profile (docs/profiles.md).
#
#   decode(uuid, payload)  -> list of partial readings (hub.reading keys,
#                             without SEQ/DEV/MONO/HTS: the collector adds
#                             those with hub.reading.complete())
#   parse(uuid, payload)   -> the characteristic's fields as a plain dict
#   encode(uuid, fields)   -> payload bytes (simulators, control points)
#
# A uuid is an int (0x2A18), a string ("2a18", "0x2A18", the 128-bit form
# "00002a18-0000-1000-8000-00805f9b34fb", or a vendor 128-bit UUID such as
# Polar's PMD), or the little-endian bytes of a 16- or 128-bit UUID.
#
# Profile modules are imported only when their first characteristic is
# decoded, so a hub that talks to one glucose meter never loads the ECG
# decoder. Every defect in a payload -- truncation, flags announcing fields
# that are not there, out-of-range values, a bad E2E-CRC -- raises
# ProfileError (a ValueError) naming the characteristic and byte offset.
# Reserved flag bits and unknown enumeration codes are carried along raw.

from hub.errors import HubError


PMD_SERVICE = "FB005C80-02E7-F387-1CAD-8ACD2D8DF0C8"
PMD_CP = "FB005C81-02E7-F387-1CAD-8ACD2D8DF0C8"
PMD_DATA = "FB005C82-02E7-F387-1CAD-8ACD2D8DF0C8"

_SIG_TAIL = "-0000-1000-8000-00805F9B34FB"


class ProfileError(HubError):
    """A payload (or a value to encode) that breaks its characteristic's rules.

    uuid: the characteristic (normalised: int or upper-case 128-bit text), or
    None; offset: the byte offset where the defect was found, or None; what:
    the defect. str(e) is "Glucose Measurement (0x2A18): <what> at byte <n>".
    """

    def __init__(self, uuid, offset, what):
        self.uuid = uuid
        self.offset = offset
        self.what = what
        msg = what if uuid is None else label(uuid) + ": " + what
        if offset is not None:
            msg += " at byte %d" % offset
        super().__init__(msg)


# One line per characteristic: key (4 hex digits, or the 128-bit UUID),
# "r" if it is a measurement (module.decode_<kind> gives its readings) or
# "-" if not (decode() returns []), module, kind, name. Every module has
# parse_<kind>(data, **opts) and encode_<kind>(fields); a kind that serves
# several characteristics (Device Information strings, a measurement and its
# intermediate form) is named in the module's BY_UUID and also gets uuid=. One string rather
# than a dict of tuples: it costs a tenth of the RAM, and _find() caches
# the few lines a hub really uses.
_TABLE = """
2A08 - timefmt date_time Date Time
2A0A - timefmt day_date_time Day Date Time
2A0C - timefmt exact_time_256 Exact Time 256
2A0D - timefmt dst_offset DST Offset
2A0E - timefmt time_zone Time Zone
2A0F - timefmt local_time_info Local Time Information
2A2B - timefmt current_time Current Time
2A18 r glucose measurement Glucose Measurement
2A34 r glucose context Glucose Measurement Context
2A51 - glucose feature Glucose Feature
2A52 - racp racp Record Access Control Point
2AA7 r cgm measurement CGM Measurement
2AA8 - cgm feature CGM Feature
2AA9 - cgm status CGM Status
2AAA - cgm session_start CGM Session Start Time
2AAB - cgm run_time CGM Session Run Time
2AAC - cgm socp CGM Specific Ops Control Point
2A37 r heart_rate measurement Heart Rate Measurement
2A38 - heart_rate body_sensor_location Body Sensor Location
2A39 - heart_rate control_point Heart Rate Control Point
2A35 r blood_pressure measurement Blood Pressure Measurement
2A36 r blood_pressure measurement Intermediate Cuff Pressure
2A49 - blood_pressure feature Blood Pressure Feature
2A5E r plx spot_check PLX Spot-check Measurement
2A5F r plx continuous PLX Continuous Measurement
2A60 - plx features PLX Features
2A1C r thermometer measurement Temperature Measurement
2A1D - thermometer temperature_type Temperature Type
2A1E r thermometer measurement Intermediate Temperature
2A21 - thermometer interval Measurement Interval
2A9D r weight measurement Weight Measurement
2A9E - weight feature Weight Scale Feature
2A19 r battery level Battery Level
2A23 - devinfo system_id System ID
2A24 - devinfo text Model Number String
2A25 - devinfo text Serial Number String
2A26 - devinfo text Firmware Revision String
2A27 - devinfo text Hardware Revision String
2A28 - devinfo text Software Revision String
2A29 - devinfo text Manufacturer Name String
2A2A - devinfo regulatory IEEE 11073-20601 Regulatory Certification Data List
2A50 - devinfo pnp_id PnP ID
FB005C81-02E7-F387-1CAD-8ACD2D8DF0C8 - polar_pmd control_point Polar PMD Control Point
FB005C82-02E7-F387-1CAD-8ACD2D8DF0C8 r polar_pmd data Polar PMD Data
"""
_cache = {}

_HEX = "0123456789ABCDEF"


def _hex_ok(s):
    for c in s:
        if c not in _HEX:
            return False
    return len(s) > 0


def norm(uuid):
    """The registry key of a UUID: an int for SIG UUIDs, upper-case 128-bit text otherwise."""
    if isinstance(uuid, int) and not isinstance(uuid, bool):
        if 0 <= uuid <= 0xFFFFFFFF:
            return uuid
    elif isinstance(uuid, (bytes, bytearray, memoryview)):
        b = bytes(uuid)
        if len(b) in (2, 4):
            return int.from_bytes(b, "little")
        if len(b) == 16:
            h = "".join("%02X" % x for x in reversed(b))
            return norm(h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:])
    elif isinstance(uuid, str):
        s = uuid.strip().upper()
        if s.startswith("0X"):
            s = s[2:]
        if len(s) <= 8 and _hex_ok(s):
            return int(s, 16)
        if len(s) == 32 and _hex_ok(s):
            s = s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
        if (len(s) == 36 and s[8] == s[13] == s[18] == s[23] == "-"
                and _hex_ok(s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:])):
            if s.endswith(_SIG_TAIL):
                return int(s[:8], 16)
            return s
    raise ProfileError(None, None, "not a UUID: %r" % (uuid,))


def label(uuid):
    """'Glucose Measurement (0x2A18)' for a UUID in any accepted form."""
    try:
        k = norm(uuid)
    except ProfileError:
        return repr(uuid)
    txt = ("0x%04X" % k) if isinstance(k, int) else k
    e = _find(k)
    return txt if e is None else "%s (%s)" % (e[3], txt)


def name(uuid):
    """The characteristic's name, or None when it is not supported."""
    e = _find(norm(uuid))
    return None if e is None else e[3]


def module_of(uuid):
    """The name of the profile module that decodes a characteristic (e.g. "glucose")."""
    return _entry(uuid)[1][1]


def supported():
    """Registry keys of every supported characteristic."""
    return [norm(line.split(" ", 1)[0]) for line in _TABLE.split("\n") if line]


def _find(k):
    """(flag, module, kind, name) of a normalised key, or None."""
    e = _cache.get(k)
    if e is None:
        key = ("%04X" % k) if isinstance(k, int) else k
        i = _TABLE.find("\n" + key + " ")
        if i < 0:
            return None
        line = _TABLE[i + 1:_TABLE.find("\n", i + 1)]
        e = tuple(line.split(" ", 4)[1:])  # (flag, module, kind, name)
        if len(_cache) >= 8:
            _cache.clear()
        _cache[k] = e
    return e


def _entry(uuid):
    if isinstance(uuid, (int, str)):
        e = _cache.get(uuid)  # a key in its normal form, seen before: nothing to allocate
        if e is not None:
            return uuid, e
    k = norm(uuid)
    e = _find(k)
    if e is None:
        raise ProfileError(k, None, "characteristic not supported")
    return k, e


def _module(modname):
    mod = globals().get(modname)
    if mod is None:
        # Loading a module needs its memory in one piece, and on MicroPython an
        # import does not always collect garbage first: collect before and after.
        import gc
        gc.collect()
        __import__("hub.profiles." + modname)
        gc.collect()
        mod = globals()[modname]
    return mod


def _data(k, payload):
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return payload
    raise ProfileError(k, None, "payload must be bytes, not %s" % type(payload).__name__)


def _call(k, e, prefix, arg, opts):
    mod = _module(e[1])
    fn = getattr(mod, prefix + e[2])
    kw = {}
    allowed = getattr(mod, "OPTS", ())
    for o in opts:
        if o in allowed and prefix != "encode_":
            kw[o] = opts[o]
    if e[2] in getattr(mod, "BY_UUID", ()):  # one codec for several characteristics
        kw["uuid"] = k
    return fn(arg, **kw)


def parse(uuid, payload, **opts):
    """The characteristic's fields as a plain dict (see docs/profiles.md)."""
    k, e = _entry(uuid)
    return _call(k, e, "parse_", _data(k, payload), opts)


def decode(uuid, payload, **opts):
    """Partial readings for a payload; [] for characteristics that are not measurements
    (their payload is still parsed, so defects raise all the same).

    opts are used by the profiles that know them and ignored by the others:
    crc=True/False (CGM: require / forbid the E2E-CRC; default: as the
    length says), start=<seconds since 1970> and tzo=<minutes> (CGM: the
    session start, so that readings get DTS and TZO), rate=<Hz> (Polar ECG
    sample rate, default 130).
    """
    k, e = _entry(uuid)
    data = _data(k, payload)
    if e[0] == "r":
        return _call(k, e, "decode_", data, opts)
    _call(k, e, "parse_", data, opts)
    return []


def loaded():
    """Names of the profile modules imported so far."""
    import sys
    return [m[13:] for m in sys.modules if m.startswith("hub.profiles.")]


def forget():
    """Drop every loaded profile module (they load again when next needed), to free RAM."""
    import sys
    for m in loaded():
        del sys.modules["hub.profiles." + m]
        g = globals()
        if m in g:
            del g[m]


# Never unloaded: helpers whose functions other modules hold by name (from hub.profiles.wire
# import Reader; the collector's racp and timefmt), which would only load twice, and polar_pmd,
# whose viper loop is native code: each load takes executable RAM that only a reset gives
# back (ports/esp32/main.c, esp_native_code_commit).
_KEEP = ("wire", "ieee11073", "timefmt", "racp", "polar_pmd")


def load(uuid):
    """Load the codec for this characteristic now. The collector does it before it subscribes:
    an indication is confirmed on receipt, so a codec that could not load when the measurement
    arrives would lose it; a MemoryError here fails the session while the device still holds it."""
    _module(_entry(uuid)[1][1])


def keep(uuids):
    """Unload the codec modules that none of these characteristics needs (the collector
    passes those of its connected devices): a cuff connected for a minute a day does not
    hold its codec all day. They load again with the next payload. Returns the names dropped."""
    need = []
    for u in uuids:
        try:
            need.append(_entry(u)[1][1])
        except ProfileError:
            pass
    drop = [m for m in loaded() if m not in need and m not in _KEEP]
    if drop:
        import sys
        g = globals()
        for m in drop:
            del sys.modules["hub.profiles." + m]
            if m in g:
                del g[m]
    return drop


def encode(uuid, fields):
    """Payload bytes for a fields dict (the inverse of parse)."""
    k, e = _entry(uuid)
    return _call(k, e, "encode_", fields, {})
