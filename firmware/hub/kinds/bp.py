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
# systolic at or below 90 or at or above 220 mmHg: NEWS2's highest-scoring bands (docs/alerts.md);
# the patient's own limits (samband limits) replace them
LIMITS = [((150021,), "mm[Hg]", 91, 219), ((150021,), "kPa", 12.1, 29.2)]
# the cuff's own alerts: irregular pulse (bit 2), pulse rate above or below its range (bits 3-4;
# the reserved value 3 counts too, failing safe); body movement, a loose cuff and posture are
# measurement quality, not the patient (docs/alerts.md)
ALARM_FLAGS = ((None, 0x001C),)
SUMMARISE = None
