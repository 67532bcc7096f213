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
SUMMARISE = None
