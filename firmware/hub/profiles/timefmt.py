# Bluetooth date and time characteristics (reference sections 0 and 9.3):
# Date Time 0x2A08, Day Date Time 0x2A0A, Exact Time 256 0x2A0C, Current
# Time 0x2A2B (read, and written to set a device's clock), Time Zone
# 0x2A0E, DST Offset 0x2A0D, Local Time Information 0x2A0F.
#
# A Date Time is the tuple (year, month, day, hours, minutes, seconds) of
# the device's local wall clock. Year 0, month 0 or day 0 mean "unknown";
# such a time has no epoch() (readings then carry no DTS). Values outside
# the ranges (year 1582-9999, month 1-12, day 1-31 and within the month,
# hours 0-23, minutes and seconds 0-59) raise ProfileError.
#
# epoch() reads the clock fields as if they were UTC: seconds since
# 1970-01-01T00:00:00 of the device's wall clock, which is what the
# Reading's DTS field means. These characteristics are not measurements:
# decode() returns [] for them.

from hub.profiles.wire import FIELDS, Reader, Writer, bad_field, days_in_month, scalar  # noqa: F401 (re-exported)
from hub.reading import CTX, DTS, FLAGS

# DST Offset enumeration -> minutes (255 = unknown, others reserved: None)
DST_MINUTES = {0: 0, 2: 30, 4: 60, 8: 120}
TZ_UNKNOWN = -128
DST_UNKNOWN = 255
ADJUST_MANUAL = 0x01
ADJUST_EXTERNAL = 0x02
ADJUST_TZ = 0x04
ADJUST_DST = 0x08


def known(dt):
    return dt[0] != 0 and dt[1] != 0 and dt[2] != 0


def _days(y, m, d):
    # days since 1970-01-01 of a proleptic Gregorian date (civil-from-days inverse)
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def epoch(dt):
    """Seconds since 1970 of the clock fields read as UTC, or None when the date is unknown."""
    if not known(dt):
        return None
    return _days(dt[0], dt[1], dt[2]) * 86400 + dt[3] * 3600 + dt[4] * 60 + dt[5]


def stamp(rs, m, status=None, ctx=()):
    """The fields every reading of one measurement shares, set on each of rs from the
    parsed measurement m: DTS from its "time" (when the date is known), FLAGS from
    m[status], and CTX entries for the keys in ctx that m has. Returns rs."""
    dts = epoch(m["time"]) if "time" in m else None
    for r in rs:
        if dts is not None:
            r[DTS] = dts
        if status is not None and status in m:
            r[FLAGS] = m[status]
        for k in ctx:
            if k in m:
                r.setdefault(CTX, {})[k] = m[k]
    return rs


def civil(secs):
    """Seconds since 1970 -> (year, month, day, hours, minutes, seconds, day_of_week 1=Monday)."""
    days, rem = divmod(secs, 86400)
    dow = (days + 3) % 7 + 1  # 1970-01-01 was a Thursday
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return (y, m, d, rem // 3600, rem // 60 % 60, rem % 60, dow)


def offset_minutes(tz, dst):
    """Time Zone (15-minute steps, -48..56) + DST Offset enum -> minutes east of UTC, or None
    when either is unknown or reserved."""
    if not -48 <= tz <= 56:
        return None
    d = DST_MINUTES.get(dst)
    if d is None:
        return None
    return tz * 15 + d


# ------------------------------------------------------------- characteristics

def _rd(u, data):
    return Reader(u, data)


def _wr(u):
    return Writer(u)


def parse_date_time(data):
    return {"time": _rd(0x2A08, data).date_time()}


def encode_date_time(f):
    w = _wr(0x2A08)
    w.date_time(f.get("time"))
    return w.bytes()


def _ddt(r, out):
    out["time"] = r.date_time()
    out["dow"] = r.u8("day of week")  # 0 unknown, 1 Monday .. 7 Sunday; others carried raw
    return out


def parse_day_date_time(data):
    return _ddt(_rd(0x2A0A, data), {})


def encode_day_date_time(f, _u=0x2A0A, _w=None):
    w = _w or _wr(_u)
    w.date_time(f.get("time"))
    w.u8(f.get("dow", 0), "day of week")
    return w.bytes()


def _et256(r):
    out = _ddt(r, {})
    out["frac256"] = r.u8("fractions256")
    return out


def parse_exact_time_256(data):
    return _et256(_rd(0x2A0C, data))


def encode_exact_time_256(f, _u=0x2A0C, _w=None):
    w = _w or _wr(_u)
    encode_day_date_time(f, _u, w)
    w.u8(f.get("frac256", 0), "fractions256")
    return w.bytes()


def parse_current_time(data):
    """Current Time (10 octets): time, dow, frac256, adjust (reason bits, raw)."""
    r = _rd(0x2A2B, data)
    out = _et256(r)  # Exact Time 256, then the adjust reason
    out["adjust"] = r.u8("adjust reason")
    return out


def encode_current_time(f):
    w = _wr(0x2A2B)
    encode_exact_time_256(f, 0x2A2B, w)
    w.u8(f.get("adjust", 0), "adjust reason")
    return w.bytes()


def current_time_at(secs, frac256=0, adjust=ADJUST_EXTERNAL):
    """Current Time payload that sets a device clock to the local wall time secs (seconds since
    1970 of the local clock fields), with the day of week filled in."""
    c = civil(secs)
    return encode_current_time({"time": c[:6], "dow": c[6], "frac256": frac256, "adjust": adjust})


parse_time_zone, encode_time_zone = scalar(0x2A0E, "s8", "tz", "time zone")
parse_dst_offset, encode_dst_offset = scalar(0x2A0D, "u8", "dst", "DST offset")


def parse_local_time_info(data):
    r = _rd(0x2A0F, data)
    return {"tz": r.s8("time zone"), "dst": r.u8("DST offset")}


def encode_local_time_info(f):
    w = _wr(0x2A0F)
    w.s8(f.get("tz"), "time zone")
    w.u8(f.get("dst"), "DST offset")
    return w.bytes()
