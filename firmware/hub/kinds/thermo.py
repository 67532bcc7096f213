# Thermometer (Health Thermometer Profile 1.0): measurements indicated and
# deleted once confirmed; intermediate temperatures notified while measuring.
from hub.kinds import INDICATE, NOTIFY

TITLE = "thermometer"
SERVICE = 0x1809
GENERIC = False
BOND = False
SUBSCRIBE = ((0x2A1C, INDICATE), (0x2A1E, NOTIFY))
RECORDS = None
SILENCE_S = 0
LIMITS = []
ALARM_FLAGS = ()  # the device reports no alert of its own
SUMMARISE = None
