# Heart-rate strap or watch (Heart Rate Profile 1.0): a value every second,
# summarised on the hub; alarms pass through at once.
from hub.kinds import NOTIFY

TITLE = "heart-rate sensor"
SERVICE = 0x180D
GENERIC = True  # ECG straps and oximeters advertise it too: those kinds win
BOND = False
SUBSCRIBE = ((0x2A37, NOTIFY),)
RECORDS = None
SILENCE_S = 10
LIMITS = [((147842,), "/min", 40, 150)]
ALARM_FLAGS = ()  # the device reports no alert of its own
SUMMARISE = 0x2A37
