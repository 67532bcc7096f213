# Glucose meter (Glucose Profile 1.0.1): spot measurements the meter keeps,
# numbered, until they are fetched; a context record may follow each one.
from hub.kinds import INDICATE, NOTIFY, RACP

TITLE = "glucose meter"
SERVICE = 0x1808
GENERIC = False
BOND = True  # GLS requires an encrypted, bonded link for its records
SUBSCRIBE = ((0x2A18, NOTIFY), (0x2A34, NOTIFY), (RACP, INDICATE))
RECORDS = 0x2A18  # measurement records are numbered; contexts share their number
SILENCE_S = 0  # speaks only when the patient uses it
GLUCOSE = (160184, 160188, 160192, 160196, 160200, 160204, 160208, 160212, 160020)
# level 2 hypoglycaemia below 54 mg/dL (3.0 mmol/L), severe hyperglycaemia above 400 mg/dL (22.2 mmol/L)
LIMITS = [(GLUCOSE, "mg/dL", 54, 400), (GLUCOSE, "mmol/L", 3.0, 22.2)]
# the meter's own alerts: result higher (bit 5) or lower (bit 6) than it can measure, the "HI"
# and "LO" a meter shows instead of a number (docs/alerts.md)
ALARM_FLAGS = ((None, 0x0060),)
SUMMARISE = None
