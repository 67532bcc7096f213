# Which readings are clinical alarms: they commit to flash at once and
# travel ahead of any backlog. Each device kind brings its default limits
# (hub/kinds/<kind>.py: common clinical cut-offs such as level 2
# hypoglycaemia < 54 mg/dL, SpO2 < 88 %; docs/alerts.md gives the
# sources); per-patient thresholds, provisioned in a signed limits config
# (hub/limits.py, which calls set_limits), are checked first and replace
# the defaults for the codes and unit they name. A compound value (blood
# pressure: systolic, diastolic, mean) is judged component by component.
#
# The devices' own alerts count too: each kind's ALARM_FLAGS names the
# status bits that make a reading an alarm whatever its value (the CGM's
# hypo/hyper/rate warnings, a cuff's irregular pulse, an oximeter's sensor
# off the patient); docs/alerts.md says which bits and why.

from hub import reading
from hub.reading import COMP, CTX, FLAGS, MDC, PRIO_ALARM, PRIO_ROUTINE, UNIT, VAL

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


def classify(p, defaults=(), flags=()):
    """PRIO_ALARM or PRIO_ROUTINE for a partial reading: by the device's own alarm bits
    (flags: ((None, mask on FLAGS) or ("ctx key", mask), ...), a kind's ALARM_FLAGS), then the
    patient's limits, else the kind's defaults. Interim values are never alarms.
    (Few names of its own: each new name is an interned string for good, and the full
    firmware on the virtual hub sits next to the point where its string pool must double.)"""
    ctx = p.get(CTX)
    if not isinstance(ctx, dict):
        ctx = {}
    if ctx.get("interim"):
        return PRIO_ROUTINE  # progress values while measuring (a thermometer warming up), not a result
    for where, mask in flags:
        f = p.get(FLAGS) if where is None else ctx.get(where)
        if isinstance(f, int) and f & mask:
            return PRIO_ALARM
    val = p.get(VAL)
    unit = p.get(UNIT)
    compound = isinstance(val, list)
    if compound:
        codes = p.get(COMP)  # a compound value (blood pressure) is judged component by component
        if not isinstance(codes, list) or len(codes) != len(val):
            return PRIO_ROUTINE  # a sample run (ECG) is not judged here
    else:
        codes = [p.get(MDC)]
        val = [val]
    for i in range(len(val)):
        if not isinstance(val[i], int):
            continue  # special values (NaN, INF) are not judged here
        rule = _rule(_patient, codes[i], unit) or _rule(defaults, codes[i], unit)
        if rule is not None:
            v = reading.value(p, i) if compound else reading.value(p)
            if (rule[0] is not None and v < rule[0]) or (rule[1] is not None and v > rule[1]):
                return PRIO_ALARM
    return PRIO_ROUTINE
