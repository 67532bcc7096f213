"""Server-side SVG of the AGP, the ECG strip and the trends.

Drawn on the server so that what the page shows can be read back from the
DOM by a test (point counts, data- attributes with the numbers) and so the
page needs no charting library. Only numbers go into these strings; the few
texts are fixed labels, so nothing from the database is interpolated as markup.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from markupsafe import Markup

from samband.receiver.dashboard import agp as agp_maths
from samband.receiver.dashboard import ecg

AGP_W, AGP_H, AGP_MAX = 960.0, 300.0, 400.0


def _pts(points: Iterable[tuple[float, float]]) -> str:
    return " ".join("%.2f,%.2f" % p for p in points)


def agp(profile: list[dict[str, Any]], unit: str = "mg/dL") -> Markup:
    """The AGP: target band 70-180, the 5-95 and 25-75 percentile bands and the
    median across the day; bins without readings are left out (the line joins the
    bins either side of them)."""
    nb = len(profile)

    def x(i: float) -> float:
        return (i + 0.5) * AGP_W / nb

    def y(v: float) -> float:
        return AGP_H - min(v, AGP_MAX) * AGP_H / AGP_MAX

    full = [(i, b) for i, b in enumerate(profile) if b["n"]]
    parts = [f'<svg class="agp" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {AGP_W:.0f} {AGP_H:.0f}" '
             f'width="{AGP_W:.0f}" height="{AGP_H:.0f}" data-bins="{len(full)}">',
             f'<rect class="target" x="0" y="{y(180):.2f}" width="{AGP_W:.0f}" height="{y(70) - y(180):.2f}"/>']
    for h in range(0, 25, 3):
        parts.append(f'<line class="hour" x1="{h * AGP_W / 24:.2f}" y1="0" x2="{h * AGP_W / 24:.2f}" '
                     f'y2="{AGP_H:.0f}"/><text x="{h * AGP_W / 24 + 2:.2f}" y="{AGP_H - 4:.0f}">{h:02d}:00</text>')
    for lvl in (54, 70, 180, 250):
        parts.append(f'<line class="level" x1="0" y1="{y(lvl):.2f}" x2="{AGP_W:.0f}" y2="{y(lvl):.2f}"/>'
                     f'<text x="2" y="{y(lvl) - 2:.2f}">{agp_maths.shown(lvl, unit)}</text>')
    if full:
        for lo, hi, cls in (("p5", "p95", "band-5-95"), ("p25", "p75", "band-25-75")):
            up = [(x(i), y(b[hi])) for i, b in full]
            down = [(x(i), y(b[lo])) for i, b in reversed(full)]
            parts.append(f'<polygon class="{cls}" points="{_pts(up + down)}"/>')
        parts.append(f'<polyline class="median" points="{_pts([(x(i), y(b["p50"])) for i, b in full])}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def ecg_strip(samples: Sequence[tuple[float, float]], seconds: float = 10.0, height_mm: float = 40.0,
              gain: float = ecg.GAIN_MM_MV, speed: float = ecg.SPEED_MM_S) -> Markup:
    """The strip in millimetres at its physical size: the 1/5 mm grid, the 1 mV
    calibration pulse in the first 10 mm, then the trace."""
    lead = 10.0
    width = lead + ecg.x_mm(seconds, speed)
    parts = [f'<svg class="ecg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height_mm:.0f}" '
             f'width="{width:.0f}mm" height="{height_mm:.0f}mm" data-samples="{len(samples)}" '
             f'data-speed="{speed:g}" data-gain="{gain:g}">']
    minor = [g for g in ecg.grid(width, height_mm) if not g[4]]
    major = [g for g in ecg.grid(width, height_mm) if g[4]]
    parts.append('<path class="grid-minor" d="' + "".join(f"M{a},{b}L{c},{d}" for a, b, c, d, _ in minor) + '"/>')
    parts.append('<path class="grid-major" d="' + "".join(f"M{a},{b}L{c},{d}" for a, b, c, d, _ in major) + '"/>')
    parts.append(f'<polyline class="cal" points="{_pts(ecg.calibration(height_mm, gain, speed))}"/>')
    if samples:
        pts = [(px + lead, py) for px, py in ecg.polyline(samples, height_mm, speed, gain)]
        parts.append(f'<polyline class="trace" points="{_pts(pts)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def trend(series: Sequence[Sequence[tuple[float, float]]], w: float = 600.0, h: float = 160.0) -> Markup:
    """Lines of [(t, value)] series on one time axis and a value axis fitted to them
    (with a margin); each series a polyline with as many points as values."""
    allp = [p for s in series for p in s]
    parts = [f'<svg class="trend" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0f} {h:.0f}" '
             f'width="{w:.0f}" height="{h:.0f}">']
    if allp:
        t0, t1 = min(p[0] for p in allp), max(p[0] for p in allp)
        v0, v1 = min(p[1] for p in allp), max(p[1] for p in allp)
        pad = (v1 - v0) * 0.1 or 1.0
        v0, v1 = v0 - pad, v1 + pad
        span = (t1 - t0) or 1.0

        def xy(p: tuple[float, float]) -> tuple[float, float]:
            return (10 + (p[0] - t0) * (w - 20) / span, h - 10 - (p[1] - v0) * (h - 20) / (v1 - v0))

        parts.append(f'<text x="2" y="10">{v1:.1f}</text><text x="2" y="{h - 2:.0f}">{v0:.1f}</text>')
        # the times are wall-clock seconds (data.wall_time), so gmtime reads them as they are
        first, last = (time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)) for t in (t0, t1))
        parts.append(f'<text class="t0" x="40" y="{h - 2:.0f}">{first}</text>'
                     f'<text class="t1" x="{w - 4:.0f}" y="{h - 2:.0f}" text-anchor="end">{last}</text>')
        for k, s in enumerate(series):
            pts = [xy(p) for p in s]
            parts.append(f'<polyline class="series s{k}" data-n="{len(s)}" points="{_pts(pts)}"/>')
            # a dot per value: a single reading is seen too, not a line of no length
            parts.append("".join(f'<circle class="pt s{k}" cx="{x:.2f}" cy="{y:.2f}" r="2"/>' for x, y in pts))
    parts.append("</svg>")
    return Markup("".join(parts))
