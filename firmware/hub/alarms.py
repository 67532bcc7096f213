# Which readings are clinical alarms: they commit to flash at once and
# travel ahead of any backlog. Defaults follow common clinical cut-offs
# (level 2 hypoglycaemia < 54 mg/dL, severe hyperglycaemia > 400 mg/dL,
# SpO2 < 88 %, heart rate outside 40..150 /min); per-patient thresholds
# replace them through set_limits() when provisioned.

from hub import reading
from hub.reading import MDC, PRIO_ALARM, PRIO_ROUTINE, UNIT, VAL

_GLUCOSE = (160184, 160188, 160192, 160196, 160200, 160204, 160208, 160212, 160020)
_MMOL_PER_MGDL = 1 / 18.016

# (mdc codes, unit, low, high): a reading below low or above high is an alarm
DEFAULTS = [
    (_GLUCOSE, "mg/dL", 54, 400),
    (_GLUCOSE, "mmol/L", 3.0, 22.2),
    ((150456,), "%", 88, None),
    ((147842, 149530), "/min", 40, 150),
]
_limits = DEFAULTS


def set_limits(limits):
    """Replace the thresholds: a list of (mdc codes, UCUM unit, low or None, high or None)."""
    global _limits
    _limits = [(tuple(m), u, lo, hi) for m, u, lo, hi in limits]


def classify(p):
    """PRIO_ALARM or PRIO_ROUTINE for a partial reading."""
    mdc = p.get(MDC)
    unit = p.get(UNIT)
    val = p.get(VAL)
    if not isinstance(val, int):
        return PRIO_ROUTINE  # special values (NaN, INF) and sample runs are not judged here
    for codes, u, lo, hi in _limits:
        if mdc in codes and unit == u:
            v = reading.value(p)
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                return PRIO_ALARM
    return PRIO_ROUTINE
