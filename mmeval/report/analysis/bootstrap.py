"""Bootstrap confidence intervals of the score table.

Bootstrap (:func:`bootstrap_ci`): images are resampled with replacement within each dataset
(stratified, so every dataset row keeps its size), all the image's questions go with it, and the
score table is recomputed by the kernel that computes scores.csv (:func:`mmeval.scoring.score_cells`,
with each image weighted by how often the resample drew it): balanced Anomaly Detection, dataset
Average = mean of its tasks, Average row = mean of datasets. Percentile interval; seeded.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from mmeval import scoring
from mmeval.predictions import Prediction

LEVEL = 0.95


class BootstrapSettings(BaseModel):
    """How the confidence intervals were drawn."""

    model_config = ConfigDict(frozen=True)

    resamples: int
    seed: int
    level: float = LEVEL
    unit: str = "image, within dataset"


def _resample_counts(rng: np.random.Generator, m: int, n_boot: int) -> np.ndarray:
    """How often each of ``m`` images is drawn in each of ``n_boot`` resamples of size ``m`` (n_boot x m).

    Uniform draws counted per resample: the multinomial distribution, at a fraction of the cost of
    ``rng.multinomial`` for thousands of images; one resample's draws at a time, so that memory holds the
    counts and not also every draw.
    """
    out = np.empty((n_boot, m))
    for b in range(n_boot):
        out[b] = np.bincount(rng.integers(0, m, size=m, dtype=np.int32), minlength=m)
    return out


def bootstrap_ci(preds_or_df: Iterable[Prediction] | pd.DataFrame, *, n_boot: int = 1000, seed: int = 0,
                 level: float = LEVEL) -> pd.DataFrame:
    """Percentile CIs of every accuracy cell (dataset rows + Average, task columns + Average).

    Returns a long table: dataset, metric, value (the point estimate, as scores.csv), lo, hi, images.
    """
    df = preds_or_df if isinstance(preds_or_df, pd.DataFrame) else scoring.frame(preds_or_df)
    df = scoring.plain(df).reset_index(drop=True)
    cols = ["dataset", "metric", "value", "lo", "hi", "images"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    counts = scoring.image_counts(df)
    rng = np.random.default_rng(seed)
    sizes = {ds: len(counts.images[ds]) for ds in counts.datasets}
    # drawn dataset by dataset, in order, when the kernel asks: one n_boot x images matrix in memory at a time
    reps = scoring.score_cells(counts, lambda ds: _resample_counts(rng, sizes[ds], n_boot))
    point = scoring.score_cells(counts)
    alpha = (1 - level) / 2
    rows = []
    for ds in counts.datasets + [scoring.AVERAGE]:
        for metric in counts.task_columns + [scoring.AVERAGE]:
            vals = reps[(ds, metric)]
            finite = vals[~np.isnan(vals)]
            lo, hi = (np.quantile(finite, [alpha, 1 - alpha]) if finite.size else (np.nan, np.nan))
            rows.append({"dataset": ds, "metric": metric, "value": float(point[(ds, metric)][0]), "lo": float(lo),
                         "hi": float(hi), "images": sizes.get(ds, sum(sizes.values()))})
    return pd.DataFrame(rows, columns=cols)
