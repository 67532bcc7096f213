# What the hub does with each kind of device: which service it advertises,
# what to subscribe to, whether it must be bonded, how often it should be
# heard from. Adding a device type is one entry here (plus its profile
# codec in hub/profiles/).

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

NOTIFY = const(1)
INDICATE = const(2)

PMD_SERVICE = b"\xfb\x00\x5c\x80\x02\xe7\xf3\x87\x1c\xad\x8a\xcd\x2d\x8d\xf0\xc8"
PMD_CP = b"\xfb\x00\x5c\x81\x02\xe7\xf3\x87\x1c\xad\x8a\xcd\x2d\x8d\xf0\xc8"
PMD_DATA = b"\xfb\x00\x5c\x82\x02\xe7\xf3\x87\x1c\xad\x8a\xcd\x2d\x8d\xf0\xc8"

RACP = const(0x2A52)
SOCP = const(0x2AAC)
CURRENT_TIME = const(0x2A2B)
BATTERY_LEVEL = const(0x2A19)
DIS_STRINGS = (0x2A29, 0x2A24, 0x2A25)  # manufacturer, model, serial

# kind: (advertised service, bond required, [(characteristic, mode)], silence limit in s or 0)
# The silence limit is how long a connected device may say nothing before
# the hub reports it silent (0: only speaks when used, like a glucose meter).
KINDS = {
    "glucose": (0x1808, True, [(0x2A18, NOTIFY), (0x2A34, NOTIFY), (RACP, INDICATE)], 0),
    "cgm": (0x181F, True, [(0x2AA7, NOTIFY), (RACP, INDICATE), (SOCP, INDICATE)], 15 * 60),
    "polar": (0x180D, False, [(0x2A37, NOTIFY), (PMD_CP, INDICATE), (PMD_DATA, NOTIFY)], 10),
    "hr": (0x180D, False, [(0x2A37, NOTIFY)], 10),
    "bp": (0x1810, False, [(0x2A35, INDICATE), (0x2A36, NOTIFY)], 0),
    "plx": (0x1822, False, [(0x2A5F, NOTIFY), (0x2A5E, INDICATE)], 30),
    "thermo": (0x1809, False, [(0x2A1C, INDICATE), (0x2A1E, NOTIFY)], 0),
    "scale": (0x181D, False, [(0x2A9D, INDICATE)], 0),
}


def kind_for_services(uuids):
    """The kind a device advertising these service UUIDs is, or None (for the pairing window)."""
    if PMD_SERVICE in uuids:
        return "polar"
    for name in ("glucose", "cgm", "bp", "plx", "thermo", "scale", "hr"):
        if KINDS[name][0] in uuids:
            return name
    return None


def adv_services(adv):
    """Service UUIDs in advertising data (AD types 0x02/0x03 16-bit, 0x06/0x07 128-bit)."""
    out = []
    i, n = 0, len(adv)
    while i + 1 < n:
        ln = adv[i]
        if ln == 0 or i + 1 + ln > n:
            break
        t = adv[i + 1]
        body = adv[i + 2:i + 1 + ln]
        if t in (0x02, 0x03):
            for j in range(0, len(body) - 1, 2):
                out.append(body[j] | body[j + 1] << 8)
        elif t in (0x06, 0x07):
            for j in range(0, len(body) - 15, 16):
                out.append(bytes(reversed(body[j:j + 16])))
        i += 1 + ln
    return out
