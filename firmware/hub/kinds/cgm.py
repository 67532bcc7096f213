# Continuous glucose monitor (CGM Profile 1.0.1): a reading every few
# minutes, kept by the sensor and numbered by its time offset; measurement
# times count from the session start, read before subscribing.
from hub.kinds import INDICATE, NOTIFY, RACP, SOCP
from hub.kinds.glucose import GLUCOSE

TITLE = "continuous glucose monitor"
SERVICE = 0x181F
GENERIC = False
BOND = True
SUBSCRIBE = ((0x2AA7, NOTIFY), (RACP, INDICATE), (SOCP, INDICATE))
RECORDS = 0x2AA7
SILENCE_S = 15 * 60  # a sensor sends every 1-5 minutes; quiet for 15 means it is off or failing
LIMITS = [(GLUCOSE, "mg/dL", 54, 400), (GLUCOSE, "mmol/L", 3.0, 22.2)]
# the sensor's own alerts (24-bit annunciation): the whole Warning octet (bits 16-23: below the
# patient low / hypo level, above the patient high / hyper level, rate of fall or rise exceeded,
# beyond what the sensor can measure), and sensor malfunction (3) and general device fault (5),
# which stop monitoring (docs/alerts.md)
ALARM_FLAGS = ((None, 0xFF0028),)
SUMMARISE = None
SESSION_START = 0x2AAA
NUMBERING = "start"  # record numbers are time offsets from the session start: a new session restarts them


async def prepare(conn, svcs):
    """Decode options: the session start time that measurement time offsets count from."""
    from hub import profiles
    from hub.ble import find_char
    from hub.profiles import cgm
    ch = find_char(svcs, SESSION_START)
    if ch is None:
        return {}
    start, tzo = cgm.start(profiles.parse(SESSION_START, await conn.read(ch.handle)))
    return {"start": start, "tzo": tzo}
