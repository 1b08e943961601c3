"""The colours of the reports: the fixed accuracy scale, the diverging scale of differences, the series palette.

Written out here (ColorBrewer's 11-class anchors, tab10's hex values) rather than asked of matplotlib, so that
a report draws without importing it. matplotlib builds RdYlGn and RdBu the same way (the anchors interpolated
linearly into a 256-entry table, a value picking its entry by truncation), so the colours are the ones the
matplotlib figures had.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Rgb = tuple[float, float, float]

#: entries in the lookup table of a scale, as matplotlib's colormaps have
LEVELS = 256


def rgb(hex_colour: str) -> Rgb:
    """``"#a50026"`` -> channels in 0-1."""
    h = hex_colour.lstrip("#")
    return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255)


def to_hex(colour: Rgb) -> str:
    """Channels in 0-1 -> ``"#rrggbb"`` (rounded, as matplotlib's to_hex)."""
    return "#" + "".join(f"{round(min(max(c, 0.0), 1.0) * 255):02x}" for c in colour)


@dataclass(frozen=True)
class Scale:
    """A colour scale: anchor colours evenly spaced over 0-1, linear in between."""

    name: str
    anchors: tuple[str, ...]

    def at(self, fraction: float) -> Rgb:
        """The colour at ``fraction`` of the scale (clipped to 0-1), on the same 256 levels as matplotlib."""
        f = min(max(fraction, 0.0), 1.0)
        level = min(int(f * LEVELS), LEVELS - 1)
        return self._interpolate(level / (LEVELS - 1))

    def _interpolate(self, x: float) -> Rgb:
        position = x * (len(self.anchors) - 1)
        i = min(int(position), len(self.anchors) - 2)
        t = position - i
        lo, hi = rgb(self.anchors[i]), rgb(self.anchors[i + 1])
        return (lo[0] + t * (hi[0] - lo[0]), lo[1] + t * (hi[1] - lo[1]), lo[2] + t * (hi[2] - lo[2]))

    def colour(self, value: float, vmin: float, vmax: float) -> Rgb:
        """The colour of ``value`` on the scale stretched over vmin-vmax."""
        return self.at((value - vmin) / (vmax - vmin))


RD_YL_GN = Scale("RdYlGn", ("#a50026", "#d73027", "#f46d43", "#fdae61", "#fee08b", "#ffffbf", "#d9ef8b", "#a6d96a",
                            "#66bd63", "#1a9850", "#006837"))
RD_BU = Scale("RdBu", ("#67001f", "#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#f7f7f7", "#d1e5f0", "#92c5de",
                       "#4393c3", "#2166ac", "#053061"))
SCALES = {s.name: s for s in (RD_YL_GN, RD_BU)}

#: the series palette of the bar charts (matplotlib's tab10)
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

#: one fixed colour scale for every accuracy heatmap and coloured table cell, so two of them compare by eye
VMIN, VMAX, ACCURACY = 0.0, 100.0, RD_YL_GN


def scale(name: str) -> Scale:
    """The scale called ``name`` (a ValueError naming the known ones otherwise)."""
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown colour scale {name!r}; known: {', '.join(SCALES)}") from None


def is_dark(colour: Rgb) -> bool:
    """Whether white text reads better than black on ``colour`` (relative luminance below 0.45)."""
    r, g, b = colour
    return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.45


def cell_colour(value: Any) -> str:
    """Background colour of a 0-100 value on the heatmaps' fixed scale (empty for missing values)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    if math.isnan(v):
        return ""
    return to_hex(ACCURACY.colour(v, VMIN, VMAX))
