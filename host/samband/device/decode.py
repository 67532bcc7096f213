"""`samband decode <uuid> <hex>`: what a BLE device sent, as the hub decodes it.

Runs the hub's own profile codecs (hub.profiles) on CPython and prints
JSON: the characteristic, its fields, and the readings the hub would
journal (field names as in docs/reading.md; SEQ, DEV, MONO and HTS are
added by the hub when it receives the payload, so they are absent here).
A field technician can paste a payload from nRF Connect or a sniffer.
"""

from __future__ import annotations

import json
import math
from typing import Any

from samband.errors import SambandError


class DecodeError(SambandError, ValueError):
    pass


def parse_hex(text: str) -> bytes:
    """Hex bytes, tolerating spaces, colons, dashes and a 0x prefix: "1B 01 00", "1b:01:00", "0x1b0100"."""
    s = "".join(text.split()).replace(":", "").replace("-", "")
    if s[:2].lower() == "0x":
        s = s[2:]
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise DecodeError(f"not hex bytes: {text!r} (give the payload like 1B0100E3 or '1b 01 00 e3')") from None


def _json(v: object) -> Any:
    """Fields and readings as JSON values: tuples as lists, bytes as hex, NaN/INF as text."""
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "+INF" if v > 0 else "-INF"
        return v
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (list, tuple)):
        return [_json(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json(x) for k, x in v.items()}
    return v


def _text(r: dict[int, Any]) -> str:
    """A reading's value for people: '104 mg/dL', '13.8/8.8/12.0 kPa', '73 values: -12, 3, ... uV'."""
    from hub.profiles.ieee11073 import text
    from hub.reading import COMP, EXP, UNIT, VAL
    v, e, unit = r[VAL], r.get(EXP, 0), r.get(UNIT, "")

    def one(x: int | float) -> Any:
        return _json(x) if isinstance(x, float) else text((x, e))
    if not isinstance(v, list):
        s = one(v)
    elif COMP in r:
        s = "/".join(one(x) for x in v)
    else:
        s = "%d values: %s" % (len(v), ", ".join(one(x) for x in v[:4]) + (", ..." if len(v) > 4 else ""))
    return (s + " " + unit).strip()


def decode(uuid: int | str, payload: bytes, **opts: Any) -> dict[str, Any]:
    """{"characteristic", "uuid", "fields", "readings", "values"} for a UUID and payload bytes."""
    from hub import profiles
    from hub.reading import to_named
    try:
        key = profiles.norm(uuid)
        name = profiles.name(key)
        if name is None:
            raise DecodeError(f"{profiles.label(key)} is not a characteristic the hub decodes "
                              f"(see docs/profiles.md)")
        fields = profiles.parse(key, payload, **opts)
        readings = profiles.decode(key, payload, **opts)
    except profiles.ProfileError as e:
        raise DecodeError(str(e)) from None
    return {"characteristic": name, "uuid": ("0x%04X" % key) if isinstance(key, int) else key,
            "fields": _json(fields), "readings": [_json(to_named(r)) for r in readings],
            "values": [_text(r) for r in readings]}


def dumps(out: dict[str, Any], compact: bool = False) -> str:
    """JSON text; unless compact, one line per field group and per reading."""
    if compact:
        return json.dumps(out, ensure_ascii=False)
    d = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    lines = ["{", f' "characteristic": {d(out["characteristic"])},', f' "uuid": {d(out["uuid"])},',
             f' "fields": {d(out["fields"])},', ' "readings": [']
    rs = out["readings"]
    lines += [f"  {d(r)}" + ("," if i < len(rs) - 1 else "") for i, r in enumerate(rs)]
    lines += [" ],", f' "values": {d(out["values"])}', "}"]
    return "\n".join(lines)
