"""Code tables for the FHIR export (receiver/fhir.py): what each IEEE 11073 (MDC)
code a hub produces becomes in the HL7 Personal Health Device IG (STU2).

Data only, no logic. Sources: the IG's profiles and examples
(shared/reference/phd-ig/) and the terminology table of
shared/reference/ble-health-profiles.md section 11. The MDC codes themselves
are the firmware's (hub.profiles.*); only their reference ids (for `display`),
LOINC codes and device specializations are added here.
"""

from samband.receiver import timeline

MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"

# Reference ids (Coding.display) of the codes the export writes.
MDC_NAMES = {
    160184: "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", 160188: "MDC_CONC_GLU_CAPILLARY_PLASMA",
    160192: "MDC_CONC_GLU_VENOUS_WHOLEBLOOD", 160196: "MDC_CONC_GLU_VENOUS_PLASMA",
    160200: "MDC_CONC_GLU_ARTERIAL_WHOLEBLOOD", 160204: "MDC_CONC_GLU_ARTERIAL_PLASMA",
    160364: "MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD", 160368: "MDC_CONC_GLU_UNDETERMINED_PLASMA",
    160212: "MDC_CONC_GLU_ISF", 160020: "MDC_CONC_GLU_GEN", 160220: "MDC_CONC_HBA1C",
    8418008: "MDC_CONC_GLU_TREND",
    8417864: "MDC_CTXT_GLU_MEAL", 8417868: "MDC_CTXT_GLU_MEAL_PREPRANDIAL",
    8417872: "MDC_CTXT_GLU_MEAL_POSTPRANDIAL", 8417876: "MDC_CTXT_GLU_MEAL_FASTING",
    8417880: "MDC_CTXT_GLU_MEAL_CASUAL", 8417869: "MDC_CTXT_GLU_MEAL_BEDTIME",
    8417844: "MDC_CTXT_GLU_SAMPLELOCATION", 8417848: "MDC_CTXT_GLU_SAMPLELOCATION_FINGER",
    8417852: "MDC_CTXT_GLU_SAMPLELOCATION_AST", 8417856: "MDC_CTXT_GLU_SAMPLELOCATION_EARLOBE",
    8417860: "MDC_CTXT_GLU_SAMPLELOCATION_CTRLSOLUTION",
    8417764: "MDC_CTXT_GLU_CARB", 8417760: "MDC_CTXT_GLU_EXERCISE", 8417796: "MDC_CTXT_MEDICATION",
    147842: "MDC_ECG_HEART_RATE", 147240: "MDC_ECG_TIME_PD_RR_GL", 8454263: "MDC_HF_ENERGY",
    131328: "MDC_ECG_ELEC_POTL",
    150020: "MDC_PRESS_BLD_NONINV", 150021: "MDC_PRESS_BLD_NONINV_SYS",
    150022: "MDC_PRESS_BLD_NONINV_DIA", 150023: "MDC_PRESS_BLD_NONINV_MEAN",
    149546: "MDC_PULS_RATE_NON_INV",
    150456: "MDC_PULS_OXIM_SAT_O2", 149530: "MDC_PULS_OXIM_PULS_RATE", 150448: "MDC_PULS_OXIM_PERF_REL",
    150580: "MDC_MODALITY_FAST", 150584: "MDC_MODALITY_SLOW", 150588: "MDC_MODALITY_SPOT",
    150364: "MDC_TEMP_BODY", 188452: "MDC_TEMP_AXILLA", 188428: "MDC_TEMP_EAR", 188432: "MDC_TEMP_FINGER",
    188456: "MDC_TEMP_GIT", 188424: "MDC_TEMP_ORAL", 188420: "MDC_TEMP_RECT", 188448: "MDC_TEMP_TOE",
    150392: "MDC_TEMP_TYMP",
    188736: "MDC_MASS_BODY_ACTUAL", 188740: "MDC_LEN_BODY_ACTUAL", 188752: "MDC_RATIO_MASS_BODY_LEN_SQ",
    67996: "MDC_ATTR_VAL_BATT_CHARGE",
    67975: "MDC_ATTR_TIME_ABS", 68193: "MDC_ATTR_SUPPLEMENTAL_TYPES",
    65573: "MDC_MOC_VMS_MDS_SIMP", 531981: "MDC_MOC_VMS_MDS_AHD",
    531975: "MDC_ID_PROD_SPEC_SW", 531976: "MDC_ID_PROD_SPEC_FW",
}

# LOINC codes alongside the MDC code: the vital-sign codes the IG's examples
# carry, and glucose by sample type, mass (mg/dL) or molar (mmol/L) unit.
_GLU_BLOOD = {"mg/dL": "2339-0", "mmol/L": "15074-8"}
_GLU_PLASMA = {"mg/dL": "2345-7", "mmol/L": "14749-6"}
LOINC_BY_UNIT = {
    160184: {"mg/dL": "41653-7", "mmol/L": "14743-9"}, 160188: _GLU_PLASMA,
    160192: _GLU_BLOOD, 160196: _GLU_PLASMA, 160200: _GLU_BLOOD, 160204: _GLU_PLASMA,
    160364: _GLU_BLOOD, 160368: _GLU_PLASMA, 160020: _GLU_BLOOD,
    160212: {"mg/dL": "99504-3", "mmol/L": "105272-9"},
}
LOINC_CODES = {
    150456: ("2708-6", "59408-5"), 149530: ("8867-4",), 149546: ("8867-4",), 147842: ("8867-4",),
    150020: ("85354-9",), 150021: ("8480-6",), 150022: ("8462-4",), 150023: ("8478-0",),
    150364: ("8310-5",), 188452: ("8310-5",), 188428: ("8310-5",), 188432: ("8310-5",),
    188456: ("8310-5",), 188424: ("8310-5",), 188420: ("8310-5",), 188448: ("8310-5",), 150392: ("8310-5",),
    188736: ("29463-7",), 188740: ("8302-2",), 188752: ("39156-5",), 160220: ("4548-4",),
}
# Codes whose Observations also get the FHIR vital-signs category.
VITAL_SIGNS = {150456, 149530, 149546, 147842, 150020, 150364, 188452, 188428, 188432, 188456, 188424,
               188420, 188448, 150392, 188736, 188740, 188752}

# Device specializations (PhdDevice.specialization) by the codes a device sends.
SPECIALIZATION_NAMES = {
    528401: "MDC_DEV_SPEC_PROFILE_GLUCOSE", 528409: "MDC_DEV_SPEC_PROFILE_CGM",
    528388: "MDC_DEV_SPEC_PROFILE_PULS_OXIM", 528390: "MDC_DEV_SPEC_PROFILE_MIN_ECG",
    528391: "MDC_DEV_SPEC_PROFILE_BP", 528392: "MDC_DEV_SPEC_PROFILE_TEMP",
    528399: "MDC_DEV_SPEC_PROFILE_SCALE", 528425: "MDC_DEV_SPEC_PROFILE_HF_CARDIO",
    528457: "MDC_DEV_SPEC_PROFILE_GENERIC",
}
GENERIC_SPECIALIZATION = 528457
SPECIALIZATION = {}
for _codes, _spec in (
        ((160184, 160188, 160192, 160196, 160200, 160204, 160364, 160368, 160020, 160220, 8417864, 8417764,
          8417760, 8417796), 528401),
        ((160212, 8418008), 528409),
        ((150456, 149530, 150448), 528388),
        ((131328,), 528390),
        ((150020, 149546), 528391),
        ((150364, 188452, 188428, 188432, 188456, 188424, 188420, 188448, 150392), 528392),
        ((188736, 188740, 188752), 528399),
        ((147842, 147240, 8454263), 528425)):
    for _c in _codes:
        SPECIALIZATION[_c] = _spec

# Glucose context as coded observations (PhdCodedEnumerationObservation): the
# Glucose Measurement Context's Meal field, and the measurement's Sample Location
# nibble (ctx loc; 15 "not available" and reserved values have no code).
MDC_CTXT_GLU_MEAL = 8417864
MEAL = {1: 8417868, 2: 8417872, 3: 8417876, 4: 8417880, 5: 8417869}
MDC_CTXT_GLU_SAMPLELOCATION = 8417844
SAMPLE_LOCATION = {1: 8417848, 2: 8417852, 3: 8417856, 4: 8417860}
CODED = {MDC_CTXT_GLU_MEAL: MEAL, MDC_CTXT_GLU_SAMPLELOCATION: SAMPLE_LOCATION}
GLUCOSE_CONCENTRATIONS = {160184, 160188, 160192, 160196, 160200, 160204, 160364, 160368, 160212, 160020}

# Observations of the device itself: their subject is the PhdDevice, never the patient.
DEVICE_SUBJECT = {67996}  # MDC_ATTR_VAL_BATT_CHARGE

# Not patient data: a meter's control-solution test (shared/reference/ble-health-profiles.md section 11).
MDC_CONC_GLU_CONTROL = 160208
# The hub's own events (hub.collect: device silent, connected, bond lost) live in this private partition.
HUB_PARTITION = 1024
# Its coincident time stamps of a device's clock (receiver/timeline.py, hub/collect.py): val is the state.
MDC_HUB_DEVICE_CLOCK = timeline.MDC_HUB_DEVICE_CLOCK
CLOCK_FAULT, CLOCK_READ = timeline.CLOCK_FAULT, timeline.CLOCK_READ

# Special FLOAT values -> data-absent-reason codes (PhdNumericObservation.dataAbsentReason).
ABSENT = {"NaN": "not-a-number", "+INF": "positive-infinity", "-INF": "negative-infinity"}

# ---------------------------------------------------------------- systems and URLs

PHD = "http://hl7.org/fhir/uv/phd/StructureDefinition/"
OBS_ID_SYSTEM = PHD + "PhdBaseObservation"
CTS_ID_SYSTEM = "urn:samband:fhir:coincident-time-stamp"  # ours: the CTS profile has no identifier slice
EUI64_SYSTEM = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
BTMAC_SYSTEM = "http://hl7.org/fhir/sid/eui-48/bluetooth"
ID_TYPES = "http://terminology.hl7.org/CodeSystem/ContinuaDeviceIdentifiers"
CATEGORY_SYSTEM = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
VITAL_CATEGORY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                              "code": "vital-signs", "display": "Vital Signs"}]}
GATEWAY_EXT = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
CTS_EXT = PHD + "CoincidentTimeStampReference"
HTEST = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST",
         "display": "test health data"}
DATA_ABSENT_EXT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
DATA_ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"

# Virtual hubs (samband vhub, the rigs: unique ids 00005a4d....) and the emulated
# BLE devices (random static addresses C0:5A:4B:..) make test data, tagged HTEST.
TEST_HUB_PREFIX = "00005a4d"
TEST_DEVICE_PREFIX = "C0:5A:4B:"
