# Device Information Service (reference section 9.1). Not measurements:
# decode() returns [] for all of them; the collector builds the reading's
# INFO ("maker model serial") from the strings.
#
#   0x2A29 manufacturer, 0x2A24 model, 0x2A25 serial, 0x2A26 firmware,
#   0x2A27 hardware, 0x2A28 software revision: {"text": str} (UTF-8,
#   trailing NULs dropped; invalid UTF-8 is a ProfileError)
#   0x2A23 System ID: {"manufacturer": 40-bit id, "oui": 24-bit OUI,
#   "eui64": "FE-ED-AB-EE-DE-AD-77-C3"} (the 8 octets as a little-endian
#   number, printed most significant octet first)
#   0x2A50 PnP ID: {"source" (1 SIG, 2 USB; others raw), "vendor",
#   "product", "version"}
#   0x2A2A Regulatory Certification Data List: {"data": bytes}, opaque.

from hub.profiles.wire import Reader, Writer

def parse_string(u, data):
    r = Reader(u, data)
    raw = r.rest()
    end = len(raw)
    while end and raw[end - 1] == 0:
        end -= 1
    try:
        return {"text": str(raw[:end], "utf-8")}
    except UnicodeError:
        r.err("not UTF-8", 0)


def encode_string(u, fields):
    w = Writer(u)
    t = fields.get("text")
    if not isinstance(t, str):
        w.err("text must be a string: %r" % (t,))
    w.raw(t.encode("utf-8"), "text")
    return w.bytes()


# The six strings share one codec; the registry passes which one (uuid=).
BY_UUID = ("text",)


def parse_text(data, uuid=0x2A29):
    return parse_string(uuid, data)


def encode_text(fields, uuid=0x2A29):
    return encode_string(uuid, fields)


def parse_system_id(data):
    r = Reader(0x2A23, data)
    raw = r.raw(8, "system ID")
    v = int.from_bytes(raw, "little")
    return {"manufacturer": v & 0xFFFFFFFFFF, "oui": v >> 40,
            "eui64": "-".join("%02X" % b for b in reversed(raw))}


def encode_system_id(fields):
    w = Writer(0x2A23)
    m, oui = fields.get("manufacturer"), fields.get("oui")
    if not (isinstance(m, int) and isinstance(oui, int) and 0 <= m < 1 << 40 and 0 <= oui < 1 << 24):
        w.err("manufacturer (40 bit) and oui (24 bit) out of range: %r, %r" % (m, oui))
    w.u64(m | (oui << 40), "system ID")
    return w.bytes()


def parse_pnp_id(data):
    r = Reader(0x2A50, data)
    return {"source": r.u8("vendor ID source"), "vendor": r.u16("vendor ID"),
            "product": r.u16("product ID"), "version": r.u16("product version")}


def encode_pnp_id(fields):
    w = Writer(0x2A50)
    w.u8(fields.get("source"), "vendor ID source")
    w.u16(fields.get("vendor"), "vendor ID")
    w.u16(fields.get("product"), "product ID")
    w.u16(fields.get("version"), "product version")
    return w.bytes()


def parse_regulatory(data):
    return {"data": bytes(data)}


def encode_regulatory(fields):
    w = Writer(0x2A2A)
    w.raw(fields.get("data"), "data")
    return w.bytes()
