# Weight scale (Weight Scale Profile 1.0): each weighing indicated and
# deleted once confirmed.
from hub.kinds import INDICATE

TITLE = "weight scale"
SERVICE = 0x181D
GENERIC = False
BOND = False
SUBSCRIBE = ((0x2A9D, INDICATE),)
RECORDS = None
SILENCE_S = 0
LIMITS = []
ALARM_FLAGS = ()  # the device reports no alert of its own
SUMMARISE = None
