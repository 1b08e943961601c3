"""How good an anomaly map is, measured against the ground-truth masks (the field's standard metrics).

- image AUROC: the image scores ranking defective above normal images;
- pixel AUROC: every pixel's map value ranking defect pixels above the others, over all images;
- AUPRO: the area under the per-region overlap curve up to a false-positive rate of 0.3, normalised to
  0-1 (each connected defect region weighs the same, so small defects count as much as large ones).

Maps and masks are compared at the mask's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def auroc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (positives = 1); ties count half; NaN with a single class."""
    y = np.asarray(labels, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the average of their ranks (scipy's ``rankdata`` default)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends + 1) / 2)[inverse.ravel()]


def pixel_auroc(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> float:
    """Pixel-level AUROC over every image (maps resampled to their mask's shape beforehand)."""
    values = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps]) if maps else np.empty(0)
    truth = np.concatenate([np.asarray(m, dtype=bool).ravel() for m in masks]) if masks else np.empty(0, bool)
    return auroc(truth, values)


def aupro(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], max_fpr: float = 0.3, steps: int = 200) -> float:
    """Normalised area under the per-region-overlap curve for false-positive rates up to ``max_fpr``."""
    maps = [np.asarray(m, dtype=np.float64) for m in maps]
    masks = [np.asarray(m, dtype=bool) for m in masks]
    from scipy import ndimage  # imported here: a report without anomaly maps does not pay for it

    regions = []
    for mask in masks:
        labels, n = ndimage.label(mask)
        regions.append((labels, n))
    if not any(n for _, n in regions) or not any((~m).any() for m in masks):
        return float("nan")
    normal_values = np.concatenate([m[~k] for m, k in zip(maps, masks, strict=True)])
    levels = np.unique(np.quantile(np.concatenate([m.ravel() for m in maps]), np.linspace(0, 1, steps)))
    fprs, pros = [1.0], [1.0]
    for t in levels:
        fpr = float((normal_values > t).mean())
        overlaps = [float((m[labels == i] > t).mean()) for m, (labels, n) in zip(maps, regions, strict=True)
                    for i in range(1, n + 1)]
        fprs.append(fpr)
        pros.append(float(np.mean(overlaps)))
    fprs.append(0.0)
    pros.append(0.0)
    order = np.lexsort((pros, fprs))  # by false-positive rate, then overlap: the curve's upper envelope
    f, p = np.asarray(fprs)[order], np.asarray(pros)[order]
    keep = f <= max_fpr
    f_cut = np.r_[f[keep], max_fpr]
    p_cut = np.r_[p[keep], np.interp(max_fpr, f, p)]
    return float(np.trapezoid(p_cut, f_cut) / max_fpr)
