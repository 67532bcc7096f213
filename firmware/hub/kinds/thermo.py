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
# body temperature at or below 35.0 or at or above 39.1 Cel: NEWS2's highest-scoring bands (35.0 is
# also where hypothermia begins); the same in Fahrenheit. Intermediate values are not judged.
LIMITS = [((150364, 188452, 188428, 188432, 188456, 188424, 188420, 188448, 150392), "Cel", 35.1, 39.0),
          ((150364, 188452, 188428, 188432, 188456, 188424, 188420, 188448, 150392), "[degF]", 95.1, 102.3)]
ALARM_FLAGS = ()  # the device reports no alert of its own
SUMMARISE = None
