"""Scores from predictions, as MMAD computes them.

Table: one row per dataset (in order of first appearance) plus an ``Average`` row (the unweighted
mean of the dataset rows); columns in the order of the MMAD result CSVs. Anomaly Detection is the
mean of the accuracy on normal and on anomalous images, so a model that always answers one way gets
50. Recall/Precision/F1/Overkill/Miss come from the Anomaly Detection answers, with "defective" as
the positive class.

Unlike the reference summary, an answer that names no option (invalid) is scored wrong and counted,
not dropped from the denominator; ``drop_invalid=True`` reproduces the reference behaviour.

Every cell is computed by one kernel (:func:`score_cells`) from per-image counts
(:func:`image_counts`) and a weight per image: the score table weighs every image once, the
bootstrap (:mod:`mmeval.report.analysis.bootstrap`) weighs them by how often a resample drew them.
The arithmetic is the MMAD summary's, in the same order of operations (``100 * (k / n)``; means are
sums over the values in order divided by their count), so the table's numbers do not depend on
which of the two asks for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict

from mmeval import tasks
from mmeval.predictions import Prediction

#: the score table's row and column that average the others
AVERAGE = "Average"
#: the columns computed from the detection task's answers ("defective" is the positive class)
DETECTION_METRICS: tuple[str, ...] = ("Recall", "Precision", "F1", "Overkill", "Miss")



def _null_is_nan(value: Any) -> Any:
    return math.nan if value is None else value


#: a figure that is NaN where it is undefined (nothing asked); written as null in JSON, read back as NaN
Figure = Annotated[float, BeforeValidator(_null_is_nan)]


def columns(asked: Iterable[str]) -> list[str]:
    """The score table's columns for data asking the tasks ``asked``: the registered ones in report order,
    their Average, the detection metrics when the detection task is asked, then the tasks outside the
    registry (shown, not averaged).

    Only the tasks the data asks: a column nothing fills is not shown, and a task file that exists but is
    not asked changes no number (each Average sums the same values in the same order).
    """
    names = tasks.in_order(asked)
    known = {t.name for t in tasks.all_tasks()}
    registered = [t for t in names if t in known]
    metrics = list(DETECTION_METRICS) if tasks.detection_task() in registered else []
    return registered + [AVERAGE] + metrics + [t for t in names if t not in known]


def task_columns(table: pd.DataFrame) -> list[str]:
    """The registered tasks a score table (or any table with its columns) shows: the ones its Average
    averages, the columns before it."""
    cols = [str(c) for c in table.columns]
    return cols[:cols.index(AVERAGE)] if AVERAGE in cols else []


def frame(preds: Iterable[Prediction]) -> pd.DataFrame:
    """One row per question with the fields scoring needs."""
    preds = preds if isinstance(preds, Sequence) else list(preds)
    choice = [p.choice for p in preds]
    answer = [p.answer for p in preds]
    data = {  # built column by column: at MMAD's size far cheaper than a dict per row
        "id": [p.id for p in preds], "image": [p.image for p in preds], "dataset": [p.dataset for p in preds],
        "category": [p.category for p in preds], "task": [p.task for p in preds],
        "is_normal": [p.is_normal for p in preds], "answer": answer, "choice": choice,
        "valid": [c is not None for c in choice], "error": [p.error is not None for p in preds],
        "correct": [c is not None and c == a for c, a in zip(choice, answer, strict=True)],
        "variant": [p.variant for p in preds], "base_id": [p.base_id for p in preds]}
    return pd.DataFrame(data)


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """The benchmark's own questions, without rotations and probes."""
    return df[df["variant"].isna()] if "variant" in df else df


def extra_tasks(df: pd.DataFrame) -> list[str]:
    """Question types outside the registry (``--allow-unknown-types``): shown in the table, not averaged."""
    known = set(tasks.task_names())
    return [str(t) for t in df["task"].unique() if t not in known]


def asked_tasks(df: pd.DataFrame) -> list[str]:
    """The tasks a frame asks, in report column order (registered ones first, then :func:`extra_tasks`)."""
    return tasks.in_order(df["task"].unique())


# ------------------------------------------------------------------------------------------ the kernel

@dataclass(frozen=True)
class ImageCounts:
    """A frame's questions counted per image: the unit the score table sums and the bootstrap resamples.

    ``counts[(dataset, task)]`` is a 4 x images array over the dataset's images (``images[dataset]``, in
    order of first appearance); its rows: questions about the image when it is normal, of them answered
    correctly, questions about it when it is anomalous, of them answered correctly. A task the dataset does
    not ask has no entry.
    """

    datasets: list[str]
    images: dict[str, list[str]]
    task_columns: list[str]  # the tasks the frame asks: registered ones in report order, then the extra ones
    counts: dict[tuple[str, str], np.ndarray]


def image_counts(df: pd.DataFrame) -> ImageCounts:
    # factorize numbers datasets, images and tasks in order of first appearance, as the table orders them
    ds_codes, datasets = pd.factorize(df["dataset"].to_numpy(dtype=object))
    image_col, task_col = df["image"].to_numpy(dtype=object), df["task"].to_numpy(dtype=object)
    normal_col = df["is_normal"].to_numpy(dtype=bool)
    correct_col = df["correct"].to_numpy(dtype=float)
    task_columns = asked_tasks(df)
    images: dict[str, list[str]] = {}
    counts: dict[tuple[str, str], np.ndarray] = {}
    for d, ds in enumerate(datasets):
        in_ds = ds_codes == d
        pos, ims = pd.factorize(image_col[in_ds])
        images[str(ds)] = [str(im) for im in ims]
        task_codes, names = pd.factorize(task_col[in_ds])
        normal, correct = normal_col[in_ds], correct_col[in_ds]
        m = len(ims)
        for t, name in enumerate(names):
            halves = []
            for half in (normal, ~normal):
                sel = (task_codes == t) & half
                halves += [np.bincount(pos[sel], minlength=m).astype(float),
                           np.bincount(pos[sel], weights=correct[sel], minlength=m)]
            counts[(str(ds), str(name))] = np.stack(halves)
    return ImageCounts([str(ds) for ds in datasets], images, task_columns, counts)


def nanmean(stack: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN, computed as numpy's and pandas' means are (numpy's sum of the
    values, divided by their count); NaN, without a warning, where every value is NaN."""
    stack = np.asarray(stack, dtype=float)
    missing = np.isnan(stack)
    total = np.where(missing, 0.0, stack).sum(axis=-1)
    count = (~missing).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _ratio(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``k / n``, NaN where nothing was asked."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)


def _percent(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``100 * k / n``, NaN where ``n`` is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, 100 * k / np.where(n > 0, n, 1), np.nan)


def _detection_metrics(tot: np.ndarray) -> dict[str, np.ndarray]:
    """Recall, precision, F1, overkill and miss from summed counts (B x 4), "defective" as the positive class."""
    nn, kn, na, ka = (tot[:, i] for i in range(4))
    tp, fn, fp = ka, na - ka, nn - kn
    recall, precision = _percent(tp, tp + fn), _percent(tp, tp + fp)
    with np.errstate(invalid="ignore", divide="ignore"):
        both = (precision != 0) & (recall != 0)  # NaN counts as given, as in the MMAD summary
        f1 = np.where(both, 2 * precision * recall / np.where(both, precision + recall, 1),
                      np.where((tp + fn > 0) & (tp + fp > 0), 0.0, np.nan))
    return {"Recall": recall, "Precision": precision, "F1": f1, "Overkill": _percent(fp, nn), "Miss": _percent(fn, na)}


def score_cells(ic: ImageCounts, weights: Mapping[str, np.ndarray] | Callable[[str], np.ndarray] | None = None,
                ) -> dict[tuple[str, str], np.ndarray]:
    """Every cell of the score table, once per weight row.

    ``weights[dataset]``: B x images of the dataset (how often each image counts); None weighs every image
    once (B = 1). A callable is asked once per dataset, in order, and its matrix let go before the next
    (the bootstrap draws each dataset's resamples on demand: one dataset's matrix in memory at a time).
    Returns (row, column) -> B values, rows = the datasets and ``Average``, columns = :func:`columns` of the
    tasks asked. Accuracy cells are ``100 * (correct / questions)``; a balanced
    task's cell is 100 x the mean of its accuracy on normal and on anomalous images (the halves asked);
    a dataset's ``Average`` is the mean of its task cells (extra tasks aside) over the tasks the frame asks,
    so a registered task no question asks takes no place in the sum; the ``Average`` row is the mean of the
    dataset rows. NaN where nothing was asked.
    """
    defs = {t.name: t for t in tasks.all_tasks()}
    detection = tasks.detection_task()
    cols = columns(ic.task_columns)
    averaged = [t for t in ic.task_columns if t in defs]
    out: dict[tuple[str, str], np.ndarray] = {}
    for ds in ic.datasets:
        if weights is None:
            w = np.ones((1, len(ic.images[ds])))
        else:
            w = weights(ds) if callable(weights) else weights[ds]
        n_rows = w.shape[0]
        empty = np.full(n_rows, np.nan)
        asked = [name for name in ic.task_columns if (ds, name) in ic.counts]
        # one product for all the dataset's tasks: B x 4 per task, exact sums of whole numbers
        sums = w @ np.concatenate([ic.counts[(ds, name)] for name in asked]).T if asked else None
        del w  # a bootstrap's matrix is not kept while the next dataset's is drawn
        tot_of = {name: sums[:, 4 * i:4 * i + 4] for i, name in enumerate(asked)} if sums is not None else {}
        for name in ic.task_columns:
            if name not in tot_of:
                out[(ds, name)] = empty
                continue
            tot = tot_of[name]
            nn, kn, na, ka = (tot[:, i] for i in range(4))
            task = defs.get(name)
            if task is not None and task.scoring == "balanced":
                out[(ds, name)] = 100 * nanmean(np.stack([_ratio(ka, na), _ratio(kn, nn)], axis=-1))
            else:
                out[(ds, name)] = 100 * _ratio(kn + ka, nn + na)
        out[(ds, AVERAGE)] = (nanmean(np.stack([out[(ds, t)] for t in averaged], axis=-1)) if averaged
                              else empty)
        if detection in ic.task_columns:
            det = tot_of.get(detection)
            metrics = _detection_metrics(det if det is not None else np.zeros((n_rows, 4)))
            for metric in DETECTION_METRICS:
                out[(ds, metric)] = metrics[metric]
    for col in cols:
        values = [out[(ds, col)] for ds in ic.datasets]
        out[(AVERAGE, col)] = nanmean(np.stack(values, axis=-1)) if values else np.full(1, np.nan)
    return out


def score_table(df: pd.DataFrame, *, drop_invalid: bool = False) -> pd.DataFrame:
    """Dataset x metric table with an ``Average`` row; the columns of the tasks the data asks (a task absent
    from one dataset but asked in another is NaN there, not 0)."""
    df = plain(df)
    if drop_invalid:
        df = df[df["valid"]]
    ic = image_counts(df)
    cells = score_cells(ic)
    rows = ic.datasets + [AVERAGE]
    cols = columns(ic.task_columns)
    table = pd.DataFrame([[float(cells[(r, c)][0]) for c in cols] for r in rows], index=rows, columns=cols,
                         dtype=float)
    table.index.name = "dataset"
    return table


def table_row(table: pd.DataFrame, row: str = AVERAGE) -> dict[str, float]:
    """One row of a score table (by default the Average row), column -> value; empty when there is none."""
    if row not in table.index:
        return {}
    return {str(c): float(v) for c, v in table.to_dict(orient="index")[row].items()}


# ---------------------------------------------------------------------------------------------- counts


class TaskCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    questions: int
    invalid: int
    errors: int
    correct: int


class Counts(BaseModel):
    """How many questions, invalid answers and errors, per task and in all."""

    model_config = ConfigDict(frozen=True)

    questions: int
    invalid: int
    errors: int
    images: int
    per_task: dict[str, TaskCount]


def counts(df: pd.DataFrame) -> Counts:
    """How many plain questions, invalid answers and errors, per task and in all."""
    df = plain(df)
    per_task = (df.groupby("task", sort=False)
                .agg(questions=("id", "size"), invalid=("valid", lambda v: int((~v).sum())),
                     errors=("error", "sum"), correct=("correct", "sum")))
    return Counts(questions=int(len(df)), invalid=int((~df["valid"]).sum()), errors=int(df["error"].sum()),
                  images=int(df["image"].nunique()),
                  per_task={str(t): TaskCount(**{str(k): int(v) for k, v in r.items()})
                            for t, r in per_task.iterrows()})
