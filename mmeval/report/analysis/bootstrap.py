"""Bootstrap confidence intervals of the score table.

Bootstrap (:func:`bootstrap_ci`): images are resampled with replacement within each dataset
(stratified, so every dataset row keeps its size), all the image's questions go with it, and the
score table is recomputed exactly as :mod:`mmeval.scoring` does (balanced Anomaly Detection,
dataset Average = mean of its tasks, Average row = mean of datasets). Percentile interval; seeded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from mmeval import scoring
from mmeval import tasks as task_registry
from mmeval.predictions import Prediction


def _image_arrays(df: pd.DataFrame, images: list[str], balanced: bool) -> tuple[np.ndarray, ...]:
    """Per-image question and correct counts (for balanced tasks: normal and anomalous halves)."""
    idx = {im: i for i, im in enumerate(images)}
    pos = df["image"].map(idx).to_numpy()
    correct = df["correct"].to_numpy(dtype=float)
    m = len(images)
    if not balanced:
        return (np.bincount(pos, minlength=m).astype(float), np.bincount(pos, weights=correct, minlength=m))
    normal = df["is_normal"].to_numpy(dtype=bool)
    return (np.bincount(pos[normal], minlength=m).astype(float),
            np.bincount(pos[normal], weights=correct[normal], minlength=m),
            np.bincount(pos[~normal], minlength=m).astype(float),
            np.bincount(pos[~normal], weights=correct[~normal], minlength=m))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 100.0 * num / np.where(den > 0, den, 1), np.nan)


def _nanmean(stack: np.ndarray, axis: int) -> np.ndarray:
    """Mean ignoring NaN; NaN (not a warning) where every value is NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        count = (~np.isnan(stack)).sum(axis=axis)
        total = np.nansum(stack, axis=axis)
        return np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)


def _replicates(df: pd.DataFrame, weights: dict[str, np.ndarray]) -> dict[tuple[str, str], np.ndarray]:
    """Score-table cells for each weight row (weights[dataset]: B x images of that dataset)."""
    tasks = task_registry.all_tasks()
    names = [t.name for t in tasks]
    out: dict[tuple[str, str], np.ndarray] = {}
    datasets = list(dict.fromkeys(df["dataset"]))
    for ds in datasets:
        sub = df[df["dataset"] == ds]
        images = list(dict.fromkeys(sub["image"]))
        w = weights[ds]
        cells = []
        for task in tasks:
            tsub = sub[sub["task"] == task.name]
            if tsub.empty:
                vals = np.full(w.shape[0], np.nan)
            elif task.scoring == "balanced":
                nn, kn, na, ka = _image_arrays(tsub, images, True)
                vals = _nanmean(np.stack([_ratio(w @ kn, w @ nn), _ratio(w @ ka, w @ na)]), axis=0)
            else:
                n, k = _image_arrays(tsub, images, False)
                vals = _ratio(w @ k, w @ n)
            out[(ds, task.name)] = vals
            cells.append(vals)
        out[(ds, "Average")] = _nanmean(np.stack(cells), axis=0)
    for col in names + ["Average"]:
        out[("Average", col)] = _nanmean(np.stack([out[(ds, col)] for ds in datasets]), axis=0)
    return out


def bootstrap_ci(preds_or_df: Iterable[Prediction] | pd.DataFrame, *, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> pd.DataFrame:
    """Percentile CIs of every accuracy cell (dataset rows + Average, task columns + Average).

    Returns a long table: dataset, metric, value (the point estimate, as scores.csv), lo, hi, images.
    """
    df = preds_or_df if isinstance(preds_or_df, pd.DataFrame) else scoring.frame(preds_or_df)
    df = scoring.plain(df).reset_index(drop=True)
    cols = ["dataset", "metric", "value", "lo", "hi", "images"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    rng = np.random.default_rng(seed)
    datasets = list(dict.fromkeys(df["dataset"]))
    weights, ones, sizes = {}, {}, {}
    for ds in datasets:
        m = int(df.loc[df["dataset"] == ds, "image"].nunique())
        sizes[ds] = m
        weights[ds] = rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot).astype(float)
        ones[ds] = np.ones((1, m))
    reps = _replicates(df, weights)
    point = _replicates(df, ones)
    alpha = (1 - level) / 2
    rows = []
    for (ds, metric), vals in reps.items():
        finite = vals[~np.isnan(vals)]
        lo, hi = (np.quantile(finite, [alpha, 1 - alpha]) if finite.size else (np.nan, np.nan))
        rows.append({"dataset": ds, "metric": metric, "value": float(point[(ds, metric)][0]), "lo": float(lo),
                     "hi": float(hi), "images": sizes.get(ds, sum(sizes.values()))})
    return pd.DataFrame(rows, columns=cols)


def ci_table(ci: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Wide dataset x metric table of ``value [lo, hi]`` strings."""
    if ci.empty:
        return pd.DataFrame()
    def fmt(r: Any) -> str:
        return "–" if math.isnan(r.value) else f"{r.value:.{digits}f} [{r.lo:.{digits}f}, {r.hi:.{digits}f}]"

    cells = ci.assign(cell=[fmt(r) for r in ci.itertuples()])
    table = cells.pivot(index="dataset", columns="metric", values="cell")
    rows = list(dict.fromkeys(ci["dataset"]))
    metrics = list(dict.fromkeys(ci["metric"]))
    return table.loc[rows, metrics]
