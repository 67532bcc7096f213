# Pulse oximeter (Pulse Oximeter Profile 1.0): a continuous stream plus
# indicated spot checks.
from hub.kinds import INDICATE, NOTIFY

TITLE = "pulse oximeter"
SERVICE = 0x1822
GENERIC = False
BOND = False
SUBSCRIBE = ((0x2A5F, NOTIFY), (0x2A5E, INDICATE))
RECORDS = None
SILENCE_S = 30
# SpO2 below 88 %; pulse rate outside 40..150 /min
LIMITS = [((150456,), "%", 88, None), ((149530,), "/min", 40, 150)]
# the oximeter's own alerts: Device and Sensor Status (CTX "dss") equipment malfunction (1),
# sensor unconnected to the user (11), displaced (13), malfunctioning (14), disconnected (15):
# the patient is no longer monitored. Measurement Status bits describe quality only (docs/alerts.md)
ALARM_FLAGS = (("dss", 0xE802),)
SUMMARISE = None
