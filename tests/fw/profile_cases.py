# Field generators for every characteristic in hub.profiles, shared by the
# firmware tests (both runtimes) and the hypothesis tests (CPython): a
# builder takes (flags, rnd) and returns a fields dict with a value for
# every field the flags announce; `rnd` needs only .below(n).

from hub import profiles as P
from hub import reading as R

DEV = b"\x00\x11\x22\x33\x44\x55\x66"

SPECIALS = ("NaN", "NRes", "+INF", "-INF", "reserved")


def sfl(rnd):
    """An SFLOAT field: mostly (mantissa, exponent), sometimes a special value."""
    k = rnd.below(12)
    if k == 0:
        return SPECIALS[rnd.below(5)]
    e = rnd.below(16) - 8
    m = rnd.below(4096) - 2048
    if e == 0 and not -2045 <= m <= 2045:
        m = 2045 if m > 0 else -2045
    return (m, e)


def flt(rnd):
    """A FLOAT field."""
    if rnd.below(12) == 0:
        return SPECIALS[rnd.below(5)]
    e = rnd.below(256) - 128
    m = rnd.below(1 << 24) - (1 << 23)
    if e == 0 and not -0x7FFFFD <= m <= 0x7FFFFD:
        m = 0x7FFFFD if m > 0 else -0x7FFFFD
    return (m, e)


_MDAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def date(rnd):
    if rnd.below(10) == 0:  # partly unknown
        return (0, rnd.below(13), rnd.below(29), rnd.below(24), rnd.below(60), rnd.below(60))
    y = 1582 + rnd.below(9999 - 1582 + 1)
    mo = 1 + rnd.below(12)
    d = 1 + rnd.below(_MDAYS[mo - 1])
    return (y, mo, d, rnd.below(24), rnd.below(60), rnd.below(60))


def u(rnd, bits):
    return rnd.below(1 << bits)


def glucose_measurement(f, rnd):
    d = {"flags": f, "seq": u(rnd, 16), "time": date(rnd)}
    if f & 0x01:
        d["offset"] = u(rnd, 16) - 0x8000
    if f & 0x02:
        d["conc"] = sfl(rnd)
        d["type"] = u(rnd, 4)
        d["loc"] = u(rnd, 4)
    if f & 0x08:
        d["status"] = u(rnd, 16)
    return d


def glucose_context(f, rnd):
    d = {"flags": f, "seq": u(rnd, 16)}
    if f & 0x80:
        d["ext"] = u(rnd, 8)
    if f & 0x01:
        d["carb_id"] = u(rnd, 8)
        d["carb"] = sfl(rnd)
    if f & 0x02:
        d["meal"] = u(rnd, 8)
    if f & 0x04:
        d["tester"] = u(rnd, 4)
        d["health"] = u(rnd, 4)
    if f & 0x08:
        d["exercise"] = u(rnd, 16)
        d["intensity"] = u(rnd, 8)
    if f & 0x10:
        d["med_id"] = u(rnd, 8)
        d["med"] = sfl(rnd)
    if f & 0x40:
        d["hba1c"] = sfl(rnd)
    return d


def racp(f, rnd):
    op = (1, 2, 3, 4, 5, 6, 7, 0x55)[f % 8]
    oper = f // 8 % 8
    d = {"op": op, "operator": oper}
    if op in (1, 2, 4) and oper in (2, 3, 4):
        ft = (1, 2, 9)[u(rnd, 8) % 3]
        d["filter"] = ft

        def val():
            if ft == 1:
                return u(rnd, 16)
            if ft == 2:
                return date(rnd)
            return bytes([u(rnd, 8)] * 3)
        if oper == 4:
            d["min"] = val()
            d["max"] = val()
        else:
            d["value"] = val()
    elif op == 5:
        d["count"] = u(rnd, 16)
    elif op == 6:
        d["request"] = u(rnd, 8)
        d["code"] = u(rnd, 8)
    elif rnd.below(2):
        d["operand"] = bytes([u(rnd, 8)] * (1 + rnd.below(4)))
    return d


def cgm_record(f, rnd, crc):
    d = {"flags": f, "conc": sfl(rnd), "toff": u(rnd, 16), "crc": crc}
    if f & 0xE0:
        st = 0
        if f & 0x80:
            st |= u(rnd, 8)
        if f & 0x40:
            st |= u(rnd, 8) << 8
        if f & 0x20:
            st |= u(rnd, 8) << 16
        d["status"] = st
    if f & 0x01:
        d["trend"] = sfl(rnd)
    if f & 0x02:
        d["quality"] = sfl(rnd)
    return d


def cgm_measurement(f, rnd):
    crc = bool(rnd.below(2))
    recs = [cgm_record(f, rnd, crc)]
    for _ in range(rnd.below(3)):
        recs.append(cgm_record(u(rnd, 8), rnd, crc))
    return {"records": recs}


def cgm_feature(f, rnd):
    feat = u(rnd, 24) | (0x1000 if f & 1 else 0)
    if not f & 1:
        feat &= ~0x1000
    d = {"features": feat, "type": u(rnd, 4), "loc": u(rnd, 4)}
    if not f & 1:
        d["crc_field"] = 0xFFFF if f & 2 else u(rnd, 16)
    return d


def cgm_status(f, rnd):
    return {"toff": u(rnd, 16), "status": u(rnd, 24), "crc": bool(f & 1)}


def cgm_session_start(f, rnd):
    return {"time": date(rnd), "tz": u(rnd, 8) - 128, "dst": (0, 2, 4, 8, 255, 7)[f % 6], "crc": bool(f & 1)}


def cgm_run_time(f, rnd):
    return {"hours": u(rnd, 16), "crc": bool(f & 1)}


def cgm_socp(f, rnd):
    op = f % 32
    d = {"op": op, "crc": bool(f & 32)}
    if op in (1, 3):
        d["interval"] = u(rnd, 8)
    elif op in (4, 6):
        d["cal"] = {"conc": sfl(rnd), "time": u(rnd, 16), "type": u(rnd, 4), "loc": u(rnd, 4),
                    "next": u(rnd, 16), "record": u(rnd, 16), "status": u(rnd, 8)}
    elif op == 5:
        d["record"] = u(rnd, 16)
    elif 7 <= op <= 24 and op % 3 != 2:
        d["level"] = sfl(rnd)
    elif op == 28:
        d["request"] = u(rnd, 8)
        d["code"] = u(rnd, 8)
    elif op in (0, 29, 30, 31):
        d["crc"] = False  # an unknown op code's operand length is unknown: no CRC to tell apart
        if rnd.below(2):
            d["operand"] = bytes([u(rnd, 8)] * (1 + rnd.below(3)))
    return d


def heart_rate(f, rnd):
    d = {"flags": f, "hr": u(rnd, 16 if f & 1 else 8)}
    if f & 0x08:
        d["energy"] = u(rnd, 16)
    if f & 0x10:
        d["rr"] = [u(rnd, 16) for _ in range(1 + rnd.below(9))]
    return d


def blood_pressure(f, rnd):
    d = {"flags": f, "sys": sfl(rnd), "dia": sfl(rnd), "map": sfl(rnd)}
    if f & 0x02:
        d["time"] = date(rnd)
    if f & 0x04:
        d["pulse"] = sfl(rnd)
    if f & 0x08:
        d["user"] = u(rnd, 8)
    if f & 0x10:
        d["status"] = u(rnd, 16)
    return d


def plx_spot(f, rnd):
    d = {"flags": f, "spo2": sfl(rnd), "pr": sfl(rnd)}
    if f & 0x01:
        d["time"] = date(rnd)
    if f & 0x02:
        d["mstatus"] = u(rnd, 16)
    if f & 0x04:
        d["dss"] = u(rnd, 24)
    if f & 0x08:
        d["pai"] = sfl(rnd)
    return d


def plx_continuous(f, rnd):
    d = {"flags": f, "spo2": sfl(rnd), "pr": sfl(rnd)}
    if f & 0x01:
        d["fast"] = [sfl(rnd), sfl(rnd)]
    if f & 0x02:
        d["slow"] = [sfl(rnd), sfl(rnd)]
    if f & 0x04:
        d["mstatus"] = u(rnd, 16)
    if f & 0x08:
        d["dss"] = u(rnd, 24)
    if f & 0x10:
        d["pai"] = sfl(rnd)
    return d


def plx_features(f, rnd):
    feat = (u(rnd, 16) & ~3) | (f & 3)
    d = {"features": feat}
    if feat & 1:
        d["mstatus"] = u(rnd, 16)
    if feat & 2:
        d["dss"] = u(rnd, 24)
    return d


def temperature(f, rnd):
    d = {"flags": f, "temp": flt(rnd)}
    if f & 0x02:
        d["time"] = date(rnd)
    if f & 0x04:
        d["type"] = u(rnd, 8)
    return d


def weight(f, rnd):
    d = {"flags": f, "weight": 0xFFFF if rnd.below(8) == 0 else u(rnd, 16)}
    if f & 0x02:
        d["time"] = date(rnd)
    if f & 0x04:
        d["user"] = u(rnd, 8)
    if f & 0x08:
        d["bmi"] = u(rnd, 16)
        d["height"] = u(rnd, 16)
    return d


def pmd_data(f, rnd):
    n = 1 + rnd.below(80)
    return {"type": 0, "tflags": 0, "timestamp": u(rnd, 64), "frame_type": 0, "compressed": False,
            "samples": [u(rnd, 24) - (1 << 23) for _ in range(n)]}


def pmd_control_point(f, rnd):
    k = f % 4
    if k == 0:
        d = {"kind": "response", "op": u(rnd, 8), "type": u(rnd, 8), "status": u(rnd, 8)}
        if d["op"] == 1 and d["status"] == 0:
            d["status"] = 1  # a successful get-settings response holds settings: see test_profile_pmd
        if rnd.below(4):
            d["more"] = u(rnd, 2)
            d["params"] = bytes([u(rnd, 8)] * rnd.below(4))
        return d
    if k == 1:
        return {"kind": "features", "features": u(rnd, 16), "size": 2}
    if k == 2:
        return {"kind": "stopped", "types": [u(rnd, 8) for _ in range(rnd.below(4))]}
    return {"kind": "unknown", "code": (0x42, 0x99, 0xF1)[rnd.below(3)], "data": bytes([u(rnd, 8)] * rnd.below(4))}


def simple(key, bits, top=None):
    def build(f, rnd):
        v = u(rnd, bits)
        if top is not None:
            v %= top + 1
        return {key: v}
    return build


# (uuid, builder, number of flag values to walk: every combination of the flags octet)
CASES = [
    (0x2A18, glucose_measurement, 256),
    (0x2A34, glucose_context, 256),
    (0x2A51, simple("features", 16), 8),
    (0x2A52, racp, 64),
    (0x2AA7, cgm_measurement, 256),
    (0x2AA8, cgm_feature, 8),
    (0x2AA9, cgm_status, 8),
    (0x2AAA, cgm_session_start, 12),
    (0x2AAB, cgm_run_time, 4),
    (0x2AAC, cgm_socp, 64),
    (0x2A37, heart_rate, 256),
    (0x2A38, simple("location", 8), 4),
    (0x2A39, simple("op", 8), 4),
    (0x2A35, blood_pressure, 256),
    (0x2A36, blood_pressure, 256),
    (0x2A49, simple("features", 16), 4),
    (0x2A5E, plx_spot, 256),
    (0x2A5F, plx_continuous, 256),
    (0x2A60, plx_features, 4),
    (0x2A1C, temperature, 256),
    (0x2A1E, temperature, 256),
    (0x2A1D, simple("type", 8), 4),
    (0x2A21, simple("interval", 16), 4),
    (0x2A9D, weight, 256),
    (0x2A9E, simple("features", 32), 4),
    (0x2A19, simple("level", 8, 100), 8),
    (0x2A0D, simple("dst", 8), 4),
    (0x2A0E, lambda f, rnd: {"tz": u(rnd, 8) - 128}, 4),
    (0x2A0F, lambda f, rnd: {"tz": u(rnd, 8) - 128, "dst": u(rnd, 8)}, 4),
    (0x2A08, lambda f, rnd: {"time": date(rnd)}, 8),
    (0x2A0A, lambda f, rnd: {"time": date(rnd), "dow": u(rnd, 8)}, 8),
    (0x2A0C, lambda f, rnd: {"time": date(rnd), "dow": u(rnd, 3), "frac256": u(rnd, 8)}, 8),
    (0x2A2B, lambda f, rnd: {"time": date(rnd), "dow": u(rnd, 3), "frac256": u(rnd, 8), "adjust": u(rnd, 8)}, 8),
    (0x2A23, lambda f, rnd: {"manufacturer": u(rnd, 40), "oui": u(rnd, 24)}, 4),
    (0x2A50, lambda f, rnd: {"source": u(rnd, 8), "vendor": u(rnd, 16), "product": u(rnd, 16),
                             "version": u(rnd, 16)}, 4),
    (0x2A24, lambda f, rnd: {"text": ("H10", "Accu-Chek Guide", "\u00c5r 2024", "")[f % 4]}, 4),
    (0x2A29, lambda f, rnd: {"text": ("Polar Electro Oy", "Roche", "x", "")[f % 4]}, 4),
    (0x2A2A, lambda f, rnd: {"data": bytes([u(rnd, 8)] * rnd.below(6))}, 4),
    (P.PMD_DATA, pmd_data, 16),
    (P.PMD_CP, pmd_control_point, 16),
]


def same(a, b):
    """Equality for fields: tuples equal lists, NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and a != a:
        return b != b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return all(k in b and same(a[k], b[k]) for k in a)
    return a == b


def roundtrip(uuid, fields):
    """encode -> parse gives the fields back, encode(parse(b)) == b, and decode gives valid
    readings. Returns the payload."""
    b = P.encode(uuid, fields)
    got = P.parse(uuid, b)
    for k in fields:
        assert k in got and same(got[k], fields[k]), (
            "%s: field %s: encoded %r, parsed %r (payload %s)" % (P.label(uuid), k, fields.get(k), got.get(k), b.hex()))
    again = P.encode(uuid, got)
    assert again == b, "%s: %s re-encoded as %s" % (P.label(uuid), b.hex(), again.hex())
    for r in P.decode(uuid, b):
        R.complete(r, 1, DEV, [1, 2])
    return b
