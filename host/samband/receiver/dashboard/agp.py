"""Ambulatory Glucose Profile and the consensus glucose statistics, as pure functions.

Everything is computed in mg/dL so that the GMI formula (Bergenstal 2018)
applies unchanged; other units are converted once, by `to_mgdl`. The bands
are the international consensus' (Battelino et al., Diabetes Care 2019):
in range 70-180 mg/dL inclusive, below 70, below 54 (a part of below 70),
above 180, above 250 (a part of above 180). Percentages are of readings,
which for a CGM at a fixed interval is of time.

The profile is the readings of the last 14 days folded onto one day, in
15-minute bins (96), each with the 5th, 25th, 50th, 75th and 95th
percentile. A percentile is the linear interpolation between the two
nearest order statistics (the "type 7" rule of R and NumPy's default), so
the numbers can be checked by hand and against other tools.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from samband.errors import SambandError

MGDL_PER_MMOLL = 18.0156  # glucose, 180.156 g/mol
PERCENTILES = (5, 25, 50, 75, 95)
BIN_S = 15 * 60
DAY_S = 24 * 3600
WINDOW_S = 14 * DAY_S


class GlucoseUnitError(SambandError, ValueError):
    pass


def to_mgdl(value: float, unit: str | None) -> float:
    """A glucose concentration in mg/dL from the unit the device used: mg/dL,
    mmol/L, or the SI units the Glucose Profile sends (kg/L, mol/L).
    An unknown unit is an error, never a guess."""
    if unit == "mg/dL":
        return float(value)
    if unit == "mmol/L":
        return float(value) * MGDL_PER_MMOLL
    if unit == "kg/L":
        return float(value) * 1e5
    if unit == "mol/L":
        return float(value) * 1e3 * MGDL_PER_MMOLL
    raise GlucoseUnitError(f"glucose in an unknown unit {unit!r}")


UNITS = ("mg/dL", "mmol/L")


def shown(mgdl: float, unit: str = "mg/dL", mean: bool = False) -> str:
    """A glucose level as the page shows it: mg/dL whole (a mean to 0.1), mmol/L to 0.1
    (54, 70, 180, 250 mg/dL read 3.0, 3.9, 10.0, 13.9 mmol/L, the consensus' own figures)."""
    if unit == "mmol/L":
        return "%.1f" % (mgdl / MGDL_PER_MMOLL)
    if unit != "mg/dL":
        raise GlucoseUnitError(f"glucose shown in an unknown unit {unit!r}")
    return "%.1f" % mgdl if mean else "%.0f" % mgdl


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..100) of an ascending list, by linear interpolation
    between order statistics (type 7). None for an empty list."""
    n = len(sorted_values)
    if n == 0:
        return None
    h = (n - 1) * p / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def cv(values: Sequence[float]) -> float | None:
    """Coefficient of variation in %: the sample standard deviation (n - 1) over the
    mean. None with fewer than two readings (no spread can be said)."""
    if len(values) < 2:
        return None
    m = mean(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
    return 100.0 * sd / m


def gmi(mean_mgdl: float | None) -> float | None:
    """Glucose management indicator in % (not an HbA1c): 3.31 + 0.02392 x mean mg/dL."""
    return None if mean_mgdl is None else 3.31 + 0.02392 * mean_mgdl


def ranges(values: Sequence[float]) -> dict[str, float] | None:
    """Percent of readings in each consensus band (mg/dL). Below 54 is part of
    below 70, above 250 part of above 180; in range is 70..180 inclusive."""
    n = len(values)
    if n == 0:
        return None

    def pct(k: int) -> float:
        return 100.0 * k / n

    return {
        "in_range": pct(sum(1 for v in values if 70 <= v <= 180)),
        "below_70": pct(sum(1 for v in values if v < 70)),
        "below_54": pct(sum(1 for v in values if v < 54)),
        "above_180": pct(sum(1 for v in values if v > 180)),
        "above_250": pct(sum(1 for v in values if v > 250)),
    }


def profile(points: Iterable[tuple[float, float]], bin_s: int = BIN_S) -> list[dict[str, Any]]:
    """The AGP: points are (second of the day 0..86399, mg/dL); returns one dict per
    bin, in order, {"start": s, "n": count, "p5".."p95": value or None}."""
    if DAY_S % bin_s:
        raise ValueError("the bin must divide a day")
    bins = [[] for _ in range(DAY_S // bin_s)]
    for tod, v in points:
        bins[int(tod) % DAY_S // bin_s].append(v)
    out = []
    for i, vals in enumerate(bins):
        vals.sort()
        d = {"start": i * bin_s, "n": len(vals)}
        for p in PERCENTILES:
            d["p%d" % p] = percentile(vals, p)
        out.append(d)
    return out


def window(samples: Sequence[tuple[float, float]], end: float | None = None,
           span_s: float = WINDOW_S) -> list[tuple[float, float]]:
    """The (time, value) samples within span_s before `end` (default: the newest
    sample, so that an old recording still shows its last 14 days)."""
    if not samples:
        return []
    if end is None:
        end = max(t for t, _ in samples)
    return [(t, v) for t, v in samples if end - span_s < t <= end]


def days(times: Iterable[float]) -> int:
    """How many calendar days (of the wall clock) have at least one reading."""
    return len({int(t // DAY_S) for t in times})


def active(times: Iterable[float], span_s: float = WINDOW_S) -> float | None:
    """Percent of the span a sensor was reading: readings x their usual interval (the
    median gap, so a 1- or 5-minute CGM needs no setting) over the span; None with
    fewer than two readings. Gaps do not count, so a sensor off for a week reads 50 %."""
    if len(times) < 2:
        return None
    ts = sorted(times)
    gaps = sorted(b - a for a, b in zip(ts, ts[1:]) if b > a)
    if not gaps:
        return None
    return min(100.0, 100.0 * len(ts) * percentile(gaps, 50) / span_s)


def summary(samples: Sequence[tuple[float, float]], end: float | None = None,
            span_s: float = WINDOW_S) -> dict[str, Any]:
    """Statistics of (wall-clock seconds, mg/dL) samples over the window: count, days
    with data, % active, mean, GMI, CV, ranges and the profile. The time is seconds
    since 1970 on the patient's wall clock (so that t % 86400 is the time of day)."""
    w = window(samples, end, span_s)
    values = [v for _, v in w]
    m = mean(values)
    return {"n": len(values), "days": days([t for t, _ in w]), "active": active([t for t, _ in w], span_s),
            "mean": m, "gmi": gmi(m), "cv": cv(values), "ranges": ranges(values),
            "profile": profile([(t % DAY_S, v) for t, v in w])}
