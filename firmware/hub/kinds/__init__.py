# Device kinds: one module per kind in this folder, named by the one name
# the CLI, the simulators, the firmware and the docs use ("bp", "scale").
# Adding a kind is adding one file here (docs/development.md); collect.py
# has no per-kind branches. A kind module says:
#
#   TITLE       words for people ("blood-pressure cuff")
#   SERVICE     the advertised service that identifies it: a 16-bit int, or
#               the big-endian bytes of a 128-bit UUID
#   GENERIC     True if devices of other kinds advertise SERVICE too (heart
#               rate): it then matches only when no other kind does
#   BOND        its data sits behind a bond (pair, encrypt) before anything else
#   SUBSCRIBE   ((characteristic, NOTIFY or INDICATE), ...)
#   RECORDS     the characteristic whose readings the device keeps, numbered,
#               and sends again (with their contexts) on an RACP request: the
#               hub backfills them. None for a device that forgets what it sent
#   SILENCE_S   how long a connected device may say nothing before the hub
#               reports it silent (0: it speaks only when used)
#   LIMITS      default alarm thresholds [(mdc codes, UCUM unit, low, high)]
#   ALARM_FLAGS the device's own status bits that make a reading an alarm:
#               ((None, mask on FLAGS) or ("ctx key", mask), ...) (hub/alarms.py)
#   SUMMARISE   a characteristic whose values are summarised rather than
#               stored one by one (heart rate), or None
#
# and may define async prepare(conn, svcs) -> decode options read before
# subscribing (the CGM's session start), and async start(dev, conn, svcs),
# run once subscribed and backfilled (the ECG stream); NUMBERING names the
# decode option its RECORDS numbers count from (they restart when it
# changes: a new CGM session), so the hub starts a new record set then.
#
# Kind modules are imported when a device of that kind is on the list (or a
# pairing window looks for one), so a hub pays only for what it talks to.

import os

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

NOTIFY = const(1)
INDICATE = const(2)

RACP = const(0x2A52)
SOCP = const(0x2AAC)
CURRENT_TIME = const(0x2A2B)
BATTERY_LEVEL = const(0x2A19)
DIS_STRINGS = (0x2A29, 0x2A24, 0x2A25)  # manufacturer, model, serial

FIELDS = ("TITLE", "SERVICE", "GENERIC", "BOND", "SUBSCRIBE", "RECORDS", "SILENCE_S", "LIMITS", "ALARM_FLAGS",
          "SUMMARISE")

_names = None


def names():
    """Every kind: the modules in this folder (sorted)."""
    global _names
    if _names is None:
        here = __file__.rsplit("/", 1)[0]
        found = set()
        for f in os.listdir(here):
            base, _, ext = f.partition(".")
            if ext in ("py", "mpy") and not base.startswith("_"):
                found.add(base)
        _names = sorted(found)
    return _names


def get(name):
    """The kind module for name; ValueError for a name that is not a kind."""
    if name not in names():
        raise ValueError("unknown device kind %r (known: %s)" % (name, ", ".join(names())))
    return __import__("hub.kinds." + name, None, None, ("SERVICE",))


def for_services(uuids):
    """The kind a device advertising these service UUIDs is, or None (for the pairing window)."""
    generic = None
    for name in names():
        k = get(name)
        if k.SERVICE in uuids:
            if not k.GENERIC:
                return name
            generic = name
    return generic


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
