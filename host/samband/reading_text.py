"""A reading in words for people: what it measures, its value with the
device's precision and a unit, and when. Used by `samband readings
--format table` and the live view of `samband run`.

The names come from one place, the firmware: every IEEE 11073 code a hub
produces is a `MDC_<reference id>` constant in the module that produces it
(hub.profiles.<profile>, hub.collect for the hub's own events), so the code
-> reference id map is read from those modules, never typed again here.
What is added here is only how a reference id reads (`PRESS_BLD_NONINV` ->
"blood pressure"); an id without words reads as itself, an unknown code as
`mdc <code>`. Values go through hub.profiles.ieee11073.text, the firmware's
own mantissa/exponent -> text, so 36.70 stays 36.70.
"""

import importlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# How the firmware's reference ids (without MDC_) read.
WORDS = {
    "PRESS_BLD_NONINV": "blood pressure", "PRESS_BLD_NONINV_SYS": "systolic",
    "PRESS_BLD_NONINV_DIA": "diastolic", "PRESS_BLD_NONINV_MEAN": "mean arterial pressure",
    "PRESS_CUFF": "cuff pressure", "PULS_RATE_NON_INV": "pulse",
    "CONC_GLU_GEN": "glucose", "CONC_GLU_ISF": "glucose (CGM)", "CONC_GLU_TREND": "glucose trend",
    "GLU_METER_DEV_STATUS": "meter status", "CONC_HBA1C": "HbA1c",
    "CTXT_GLU_EXERCISE": "exercise", "CTXT_GLU_CARB": "carbohydrates", "CTXT_MEDICATION": "medication",
    "CTXT_GLU_HEALTH": "health", "CTXT_GLU_MEAL": "meal", "CTXT_GLU_TESTER": "tester",
    "ECG_HEART_RATE": "heart rate", "ECG_TIME_PD_RR_GL": "RR interval", "HF_ENERGY": "energy expended",
    "ECG_ELEC_POTL": "ECG",
    "PULS_OXIM_SAT_O2": "SpO2", "PULS_OXIM_PULS_RATE": "pulse (oximeter)", "PULS_OXIM_PERF_REL": "perfusion index",
    "TEMP_BODY": "body temperature",
    "MASS_BODY_ACTUAL": "weight", "LEN_BODY_ACTUAL": "height", "RATIO_MASS_BODY_LEN_SQ": "BMI",
    "ATTR_VAL_BATT_CHARGE": "battery",
    "HUB_DEVICE_SILENT": "device silent", "HUB_DEVICE_CONNECTED": "connected", "HUB_BOND_LOST": "bond lost",
    "HUB_JOURNAL_FILL": "hub storage",
}

# Code tables in the firmware whose codes are variants of one reference id:
# glucose by sample type, carbohydrate and medication kinds, temperature by site.
FAMILIES = {("glucose", "TYPE_MDC"): "CONC_GLU_GEN", ("glucose", "CARB_MDC"): "CTXT_GLU_CARB",
            ("glucose", "MED_MDC"): "CTXT_MEDICATION", ("thermometer", "TYPE_MDC"): "TEMP_BODY"}

# UCUM units as people write them; others show as they are.
UNITS = {"Cel": "°C", "mm[Hg]": "mmHg", "uV": "µV", "[degF]": "°F", "[lb_av]": "lb", "[in_i]": "in"}

_ids = None


def _firmware_modules():
    """Every firmware module that defines MDC_ constants (found by its text, so that
    nothing is imported for nothing), board ports aside."""
    import hub
    top = Path(hub.__path__[0])
    out = []
    for path in sorted(top.rglob("*.py")):
        rel = path.relative_to(top)
        if rel.parts[0] == "ports":
            continue
        try:
            if "MDC_" not in path.read_text(encoding="utf-8"):
                continue
        except OSError:
            continue
        parts = rel.with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(("hub",) + parts))
    return out


def reference_ids() -> dict[int, str]:
    """{mdc code: reference id without MDC_}, read from the firmware once."""
    global _ids
    if _ids is None:
        ids = {}
        for modname in _firmware_modules():
            try:
                mod = importlib.import_module(modname)
            except Exception:  # noqa: BLE001 - a board-only module: its codes are elsewhere too
                continue
            for k, v in vars(mod).items():
                if k.startswith("MDC_") and isinstance(v, int):
                    ids.setdefault(v, k[4:])
            for (short, table), rid in FAMILIES.items():
                if modname.rsplit(".", 1)[-1] != short:
                    continue
                for v in (getattr(mod, table, None) or {}).values():
                    ids.setdefault(v, rid)
        _ids = ids
    return _ids


def name(mdc: int | None) -> str:
    """'blood pressure' for 150020; the reference id, or 'mdc <code>', when it has no words."""
    rid = reference_ids().get(mdc)
    if rid is None:
        return "mdc %s" % mdc
    return WORDS.get(rid, rid.lower().replace("_", " "))


def unit(u: str | None) -> str:
    return UNITS.get(u, u or "")


def _one(v: int | float | str, e: int | None) -> str:
    from hub.profiles.ieee11073 import text
    if isinstance(v, str):  # NaN as stored in the database
        return v
    if isinstance(v, float):
        return "NaN" if v != v else ("+INF" if v > 0 else "-INF")
    return text((v, e or 0))


def value(n: dict[str, Any]) -> str:
    """The value of a named reading (hub.reading.to_named) with its unit:
    '104 mg/dL', '128/84/98 mmHg', '36.70 °C', 'ECG frame: 73 samples at 130 Hz'."""
    v, e, u = n.get("val"), n.get("exp", 0), unit(n.get("unit"))
    if isinstance(v, list):
        if n.get("comp"):
            s = "/".join(_one(x, e) for x in v)
        elif n.get("period"):
            hz = 1e6 / n["period"]
            return "%d samples at %s Hz%s" % (len(v), ("%.0f" % hz) if hz >= 10 else ("%.1f" % hz),
                                              (" (" + u + ")") if u else "")
        else:
            s = "%d values" % len(v)
    else:
        s = _one(v, e)
    return (s + " " + u).strip()


def describe(n: dict[str, Any]) -> str:
    """'blood pressure 128/84/98 mmHg' for a named reading."""
    return name(n.get("mdc")) + " " + value(n)


def local_time(ms: int | float | None) -> str:
    """Hub time (ms since 1970 UTC) as local time; '-' when the hub clock was not set."""
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def device_time(s: int | None) -> str:
    """A device timestamp: the device's own clock fields, read as they were (no zone)."""
    if s is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s))


PRIORITIES = {1: "ALARM", 2: "telemetry"}


def table(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Stored readings (Store.readings()) as aligned text lines for a terminal."""
    head = ("received (local)", "hub", "seq", "device", "reading", "value", "device time", "note")
    lines = [head]
    for r in rows:
        note = [PRIORITIES.get(r.get("prio"), "")] if r.get("prio") else []
        if "rec" in r:
            note.append("record %s" % r["rec"])
        lines.append((local_time(r.get("hts")), r.get("hub", ""), str(r.get("seq", "")), r.get("dev", ""),
                      name(r.get("mdc")), value(r), device_time(r.get("dts")), ", ".join(note)))
    widths = [max(len(x[i]) for x in lines) for i in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
