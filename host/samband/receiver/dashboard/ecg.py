"""ECG strip scaling: paper speed and gain as on an electrocardiograph, pure functions.

The standard strip runs at 25 mm/s with 10 mm/mV, on a grid of 1 mm small
boxes (0.04 s, 0.1 mV) and 5 mm large boxes (0.2 s, 0.5 mV), with a 1 mV
calibration pulse. Everything here is in millimetres of paper; the SVG's
viewBox is in millimetres and its width and height are given in mm, so a
browser draws it at the physical size.

The hub stores an ECG frame (Polar PMD) as one reading: `val` the samples in
uV, `period` the nominal sample period in us, `dts` (+ ctx.ns) the time of
the last sample (firmware/hub/profiles/polar_pmd.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SPEED_MM_S = 25.0
GAIN_MM_MV = 10.0


def x_mm(t_s: float, speed: float = SPEED_MM_S) -> float:
    """Seconds from the strip's start -> millimetres along the paper."""
    return t_s * speed


def y_mm(uv: float, gain: float = GAIN_MM_MV) -> float:
    """Microvolts -> millimetres above the baseline (up is positive here; the SVG flips it)."""
    return uv / 1000.0 * gain


def frame_samples(frame: dict[str, Any]) -> list[tuple[float, float]] | None:
    """(time in s, uV) of each sample of a stored ECG frame, timed back from its last
    sample. None when the frame has no time or no period: it cannot be placed."""
    vals, period, dts = frame.get("val"), frame.get("period"), frame.get("dts")
    if not isinstance(vals, list) or not period or dts is None:
        return None
    ns = (frame.get("ctx") or {}).get("ns", 0) if isinstance(frame.get("ctx"), dict) else 0
    last = dts + ns / 1e9
    n = len(vals)
    return [(last - (n - 1 - i) * period / 1e6, v) for i, v in enumerate(vals)
            if isinstance(v, (int, float))]


def strip(frames: Iterable[dict[str, Any]], seconds: float = 10.0) -> tuple[list[tuple[float, float]], float | None]:
    """The last `seconds` of samples from frames, in time order, de-duplicated by time:
    [(t_s from the strip's start, uV)] and the strip's start time."""
    pts = {}
    for f in frames:
        for t, v in frame_samples(f) or ():
            pts[round(t, 6)] = v
    if not pts:
        return [], None
    times = sorted(pts)
    end = times[-1]
    start = max(times[0], end - seconds)
    return [(t - start, pts[t]) for t in times if t >= start], start


def polyline(samples: Iterable[tuple[float, float]], height_mm: float, speed: float = SPEED_MM_S,
             gain: float = GAIN_MM_MV) -> list[tuple[float, float]]:
    """SVG points (mm) of samples, with the baseline at half the height; y grows down."""
    base = height_mm / 2.0
    return [(round(x_mm(t, speed), 3), round(base - y_mm(v, gain), 3)) for t, v in samples]


def grid(width_mm: float, height_mm: float) -> list[tuple[float, float, float, float, bool]]:
    """Grid lines as (x1, y1, x2, y2, major): every 1 mm, every 5th a large box line."""
    lines = []
    for i in range(int(width_mm) + 1):
        lines.append((i, 0, i, height_mm, i % 5 == 0))
    for j in range(int(height_mm) + 1):
        lines.append((0, j, width_mm, j, j % 5 == 0))
    return lines


def calibration(height_mm: float, gain: float = GAIN_MM_MV, speed: float = SPEED_MM_S) -> list[tuple[float, float]]:
    """The 1 mV calibration pulse as a polyline at the strip's start: 1 mV high
    (10 mm at standard gain), 0.2 s wide (5 mm at 25 mm/s)."""
    base = height_mm / 2.0
    top = base - y_mm(1000, gain)
    w = x_mm(0.2, speed)
    return [(0, base), (1, base), (1, top), (1 + w, top), (1 + w, base), (2 + w, base)]
