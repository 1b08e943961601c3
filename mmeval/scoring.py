"""Scores from predictions, as MMAD computes them, with pandas.

Table: one row per dataset (in order of first appearance) plus an ``Average`` row (the unweighted
mean of the dataset rows); columns in the order of the MMAD result CSVs. Anomaly Detection is the
mean of the accuracy on normal and on anomalous images, so a model that always answers one way gets
50. Recall/Precision/F1/Overkill/Miss come from the Anomaly Detection answers, with "defective" as
the positive class.

Unlike the reference summary, an answer that names no option (invalid) is scored wrong and counted,
not dropped from the denominator; ``drop_invalid=True`` reproduces the reference behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from mmeval import tasks as task_registry
from mmeval.predictions import Prediction

DETECTION_METRICS = ["Recall", "Precision", "F1", "Overkill", "Miss"]


def columns() -> list[str]:
    return task_registry.task_names() + ["Average"] + DETECTION_METRICS


def frame(preds: Iterable[Prediction]) -> pd.DataFrame:
    """One row per question with the fields scoring needs."""
    rows = [{"id": p.id, "image": p.image, "dataset": p.dataset, "category": p.category, "task": p.task,
             "is_normal": p.is_normal, "answer": p.answer, "choice": p.choice,
             "valid": p.choice is not None, "error": p.error is not None, "correct": p.correct,
             "variant": p.variant, "base_id": p.base_id}
            for p in preds]
    cols = ["id", "image", "dataset", "category", "task", "is_normal", "answer", "choice", "valid", "error", "correct",
            "variant", "base_id"]
    return pd.DataFrame(rows, columns=cols)


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """The benchmark's own questions, without rotations and probes."""
    return df[df["variant"].isna()] if "variant" in df else df


def _balanced(group: pd.DataFrame) -> float:
    halves = group.groupby("is_normal")["correct"].mean()
    return float(100 * halves.mean()) if len(halves) else np.nan


def _detection(ad: pd.DataFrame) -> dict[str, float]:
    anom, norm = ad[~ad["is_normal"]], ad[ad["is_normal"]]
    tp = int(anom["correct"].sum())
    fn = len(anom) - tp
    fp = len(norm) - int(norm["correct"].sum())
    recall = 100 * tp / (tp + fn) if tp + fn else np.nan
    precision = 100 * tp / (tp + fp) if tp + fp else np.nan
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else (0.0 if tp + fn and tp + fp else np.nan)
    return {"Recall": recall, "Precision": precision, "F1": f1,
            "Overkill": 100 * fp / len(norm) if len(norm) else np.nan,
            "Miss": 100 * fn / len(anom) if len(anom) else np.nan}


def score_row(df: pd.DataFrame) -> dict[str, float]:
    """Scores of one dataset's questions."""
    row: dict[str, float] = {}
    for task in task_registry.all_tasks():
        sub = df[df["task"] == task.name]
        if sub.empty:
            row[task.name] = np.nan
        elif task.scoring == "balanced":
            row[task.name] = _balanced(sub)
        else:
            row[task.name] = float(100 * sub["correct"].mean())
    row["Average"] = float(np.nanmean([row[t] for t in task_registry.task_names()])) if any(
        not np.isnan(row[t]) for t in task_registry.task_names()) else np.nan
    row.update(_detection(df[df["task"] == task_registry.detection_task()]))
    for extra in extra_tasks(df):  # types outside the registry (--allow-unknown-types): shown, not averaged
        sub = df[df["task"] == extra]
        row[extra] = float(100 * sub["correct"].mean()) if len(sub) else np.nan
    return row


def extra_tasks(df: pd.DataFrame) -> list[str]:
    known = set(task_registry.task_names())
    return [t for t in dict.fromkeys(df["task"]) if t not in known]


def score_table(df: pd.DataFrame, *, drop_invalid: bool = False) -> pd.DataFrame:
    """Dataset x metric table with an ``Average`` row; tasks absent from a dataset are NaN, not 0."""
    df = plain(df)
    if drop_invalid:
        df = df[df["valid"]]
    datasets = list(dict.fromkeys(df["dataset"]))
    table = pd.DataFrame([score_row(df[df["dataset"] == d]) for d in datasets], index=datasets,
                         columns=columns() + extra_tasks(df))
    table.loc["Average"] = table.mean(axis=0, skipna=True)
    table.index.name = "dataset"
    return table


def counts(df: pd.DataFrame) -> dict[str, object]:
    """How many questions, invalid answers and errors, per task and in all."""
    df = plain(df)
    per_task = (df.groupby("task", sort=False)
                .agg(questions=("id", "size"), invalid=("valid", lambda v: int((~v).sum())),
                     errors=("error", "sum"), correct=("correct", "sum")))
    return {
        "questions": int(len(df)),
        "invalid": int((~df["valid"]).sum()),
        "errors": int(df["error"].sum()),
        "images": int(df["image"].nunique()),
        "per_task": {t: {k: int(v) for k, v in r.items()} for t, r in per_task.iterrows()},
    }
