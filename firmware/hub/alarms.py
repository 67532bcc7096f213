# Which readings are clinical alarms: they commit to flash at once and
# travel ahead of any backlog. Each device kind brings its default limits
# (hub/kinds/<kind>.py: common clinical cut-offs such as level 2
# hypoglycaemia < 54 mg/dL, SpO2 < 88 %); per-patient thresholds, when
# provisioned through set_limits(), are checked first and replace the
# defaults for the codes and unit they name.

from hub import reading
from hub.reading import MDC, PRIO_ALARM, PRIO_ROUTINE, UNIT, VAL

_patient = []


def set_limits(limits):
    """Per-patient thresholds: a list of (mdc codes, UCUM unit, low or None, high or None)."""
    global _patient
    _patient = [(tuple(m), u, lo, hi) for m, u, lo, hi in limits]


def _rule(limits, mdc, unit):
    for codes, u, lo, hi in limits:
        if mdc in codes and unit == u:
            return lo, hi
    return None


def classify(p, defaults=()):
    """PRIO_ALARM or PRIO_ROUTINE for a partial reading, by the patient's limits, else the kind's defaults."""
    mdc = p.get(MDC)
    unit = p.get(UNIT)
    val = p.get(VAL)
    if not isinstance(val, int):
        return PRIO_ROUTINE  # special values (NaN, INF) and sample runs are not judged here
    rule = _rule(_patient, mdc, unit) or _rule(defaults, mdc, unit)
    if rule is None:
        return PRIO_ROUTINE
    lo, hi = rule
    v = reading.value(p)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        return PRIO_ALARM
    return PRIO_ROUTINE
