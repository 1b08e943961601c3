"""The 3x3 grid of named image regions that MMAD's localization questions use ("Top left." ... "Center.").

One owner for the grid: the synthetic generator names where it drew a defect with it, the expert
baseline reads which region an option names with it, and an expert's hint names its peak with it. One
owner, too, for how an expert answers a localization question (:func:`best_named`): the ``expert``
model family answers by it, and the report scores the agent boost's expert by it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: region names by (row, column), top row first
GRID: tuple[tuple[str, str, str], ...] = (("top left", "top", "top right"),
                                          ("left", "center", "right"),
                                          ("bottom left", "bottom", "bottom right"))

_WORDS = re.compile(r"[a-z]+")


def region_name(row: int, col: int) -> str:
    """``(0, 0)`` -> ``"top left"``."""
    return GRID[row][col]


def cell_of(y: float, x: float, height: float, width: float) -> tuple[int, int]:
    """The grid cell (row, col) holding the point (y, x) of an image of the given size."""
    return min(2, max(0, int(3 * y / height))), min(2, max(0, int(3 * x / width)))


def option_region(text: str) -> tuple[int, int] | None:
    """(row, col) on the 3x3 grid that a localization option names, or None ("Top left." -> (0, 0))."""
    words = set(_WORDS.findall(text.lower().replace("centre", "center")))
    row = 0 if {"top", "upper"} & words else 2 if {"bottom", "lower"} & words else None
    col = 0 if "left" in words else 2 if "right" in words else None
    central = bool({"center", "middle", "central"} & words)
    if row is None and col is None:
        return (1, 1) if central else None
    return (1 if row is None else row, 1 if col is None else col)


def best_named(options: Mapping[str, str], scores: Mapping[tuple[int, int], float]) -> str | None:
    """The option naming the region where ``scores`` (per grid cell) are highest, among the regions the
    options name; equal scores go to the first letter. None when no option names a region."""
    named = {k: cell for k, v in options.items() if (cell := option_region(v)) is not None}
    if not named:
        return None
    return max(sorted(named), key=lambda k: scores.get(named[k], float("-inf")))
