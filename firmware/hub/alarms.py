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


def _outside(limits, mdc, unit, v):
    rule = _rule(_patient, mdc, unit) or _rule(limits, mdc, unit)
    if rule is None:
        return False
    lo, hi = rule
    return (lo is not None and v < lo) or (hi is not None and v > hi)


def flagged(p, alarm_flags=()):
    """Whether the device's own status bits mark p as an alarm: alarm_flags is
    ((None, mask), ...) for the FLAGS field, ("key", mask) for a CTX entry. Pure."""
    for where, mask in alarm_flags:
        if where is None:
            f = p.get(FLAGS)
        else:
            ctx = p.get(CTX)
            f = ctx.get(where) if isinstance(ctx, dict) else None
        if isinstance(f, int) and f & mask:
            return True
    return False


def classify(p, defaults=(), alarm_flags=()):
    """PRIO_ALARM or PRIO_ROUTINE for a partial reading: by the device's own alarm
    bits, then the patient's limits, else the kind's defaults. Interim values are never alarms."""
    ctx = p.get(CTX)
    if isinstance(ctx, dict) and ctx.get("interim"):
        return PRIO_ROUTINE  # progress values while measuring (a thermometer warming up), not a result
    if alarm_flags and flagged(p, alarm_flags):
        return PRIO_ALARM
    mdc = p.get(MDC)
    unit = p.get(UNIT)
    val = p.get(VAL)
    if isinstance(val, list):
        comp = p.get(COMP)
        if not isinstance(comp, list) or len(comp) != len(val):
            return PRIO_ROUTINE  # a sample run (ECG) is not judged here
        for i in range(len(val)):
            if isinstance(val[i], int) and _outside(defaults, comp[i], unit, reading.value(p, i)):
                return PRIO_ALARM
        return PRIO_ROUTINE
    if not isinstance(val, int):
        return PRIO_ROUTINE  # special values (NaN, INF) are not judged here
    return PRIO_ALARM if _outside(defaults, mdc, unit, reading.value(p)) else PRIO_ROUTINE
