# Polar H10 ECG strap: heart rate as hr, plus an ECG stream over Polar's
# Measurement Data service, started once subscribed.
from hub.kinds import INDICATE, NOTIFY

TITLE = "ECG strap (Polar H10)"
PMD_SERVICE = b"\xfb\x00\x5c\x80\x02\xe7\xf3\x87\x1c\xad\x8a\xcd\x2d\x8d\xf0\xc8"
PMD_CP = b"\xfb\x00\x5c\x81\x02\xe7\xf3\x87\x1c\xad\x8a\xcd\x2d\x8d\xf0\xc8"
PMD_DATA = b"\xfb\x00\x5c\x82\x02\xe7\xf3\x87\x1c\xad\x8a\xcd\x2d\x8d\xf0\xc8"
SERVICE = PMD_SERVICE
GENERIC = False
BOND = False
SUBSCRIBE = ((0x2A37, NOTIFY), (PMD_CP, INDICATE), (PMD_DATA, NOTIFY))
RECORDS = None
SILENCE_S = 10
LIMITS = [((147842,), "/min", 40, 150)]
ALARM_FLAGS = ()  # the device reports no alert of its own
SUMMARISE = 0x2A37
START_TIMEOUT_MS = 10000


async def start(dev, conn, svcs):
    """Start the ECG stream; BleError if the strap refuses or does not answer."""
    from hub.ble import BleError, find_char
    from hub.profiles import polar_pmd
    ch = find_char(svcs, PMD_CP)
    if ch is None:
        return
    answers = await dev.ask(conn, ch, polar_pmd.start_ecg(), START_TIMEOUT_MS, lambda a: a.get("kind") == "response")
    resp = answers[0] if answers else None
    if resp is None or resp.get("status") != 0:
        raise BleError("PMD start ECG refused: %r" % (resp,))
