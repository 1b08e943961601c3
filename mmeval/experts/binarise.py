"""From an anomaly map to marked regions: the binarisation MMAD's expert agent used, with its knobs exposed.

MMAD's rule (the default): normalise the map to 0-1, keep pixels above ``ratio`` (2/3) of the maximum,
or above the median when more than ``median_above`` (half) of the pixels pass; drop connected regions
smaller than ``min_area`` (0.1%) of the image; merge the remaining boxes until at most ``max_boxes``
are left (2; MMAD allowed 3 for the ground-truth oracle). The maintainers suggest that binarisation is
what decides whether a hint helps, so every parameter is a boost option.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

Box = tuple[int, int, int, int]  # top, left, bottom, right (inclusive-exclusive)


@dataclass(frozen=True)
class Binarisation:
    ratio: float = 2 / 3
    median_above: float = 0.5
    min_area: float = 0.001
    max_boxes: int = 2


def normalise(amap: np.ndarray) -> np.ndarray:
    lo, hi = float(amap.min()), float(amap.max())
    return np.zeros_like(amap, dtype=np.float32) if hi <= lo else ((amap - lo) / (hi - lo)).astype(np.float32)


def binarise(amap: np.ndarray, rule: Binarisation) -> np.ndarray:
    """The marked pixels (bool, same shape): thresholded, small regions dropped."""
    norm = normalise(amap)
    if not norm.any():
        return np.zeros(norm.shape, dtype=bool)
    keep = norm > rule.ratio
    if keep.mean() > rule.median_above:
        keep = norm > float(np.median(norm))
    labels, n = ndimage.label(keep)
    if n == 0:
        return keep
    sizes = ndimage.sum_labels(keep, labels, index=np.arange(1, n + 1))
    big = np.flatnonzero(sizes >= rule.min_area * keep.size) + 1
    return np.isin(labels, big)


def boxes(marked: np.ndarray, max_boxes: int) -> list[Box]:
    """Bounding boxes of the marked regions, merged (smallest growth first) until at most ``max_boxes``."""
    labels, n = ndimage.label(marked)
    found: list[Box] = [(s[0].start, s[1].start, s[0].stop, s[1].stop)
                        for s in ndimage.find_objects(labels) if s is not None]
    while len(found) > max(1, max_boxes):
        best: tuple[int, int, int] | None = None
        for i in range(len(found)):
            for j in range(i + 1, len(found)):
                growth = _area(_union(found[i], found[j])) - _area(found[i]) - _area(found[j])
                if best is None or growth < best[0]:
                    best = (growth, i, j)
        assert best is not None
        _, i, j = best
        merged = _union(found[i], found[j])
        found = [b for k, b in enumerate(found) if k not in (i, j)] + [merged]
    return sorted(found)


def _union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _area(b: Box) -> int:
    return max(0, b[2] - b[0]) * max(0, b[3] - b[1])
