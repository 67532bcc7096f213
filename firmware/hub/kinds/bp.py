# Blood-pressure cuff (Blood Pressure Profile 1.1): each measurement is
# indicated and deleted by the cuff once the hub confirms it; cuff pressure
# while inflating is notified and not kept.
from hub.kinds import INDICATE, NOTIFY

TITLE = "blood-pressure cuff"
SERVICE = 0x1810
GENERIC = False
BOND = False
SUBSCRIBE = ((0x2A35, INDICATE), (0x2A36, NOTIFY))
RECORDS = None
SILENCE_S = 0
LIMITS = []  # no default cut-offs: thresholds are per patient
# the cuff's own alerts: irregular pulse (bit 2), pulse rate above or below its range (bits 3-4;
# the reserved value 3 counts too, failing safe); body movement, a loose cuff and posture are
# measurement quality, not the patient (docs/alerts.md)
ALARM_FLAGS = ((None, 0x001C),)
SUMMARISE = None
