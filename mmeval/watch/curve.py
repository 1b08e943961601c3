"""The curve: accuracy against training step, one point per evaluated step and task (and their Average).

Each point is read from that step's run directory by the report's own rules: accuracy is the score table's
``Average`` row (so Anomaly Detection is balanced as everywhere), the 95% interval the report's bootstrap
(images resampled within datasets, seeded), ``n`` the questions asked, the invalid rate the share of
answers naming no option. ``p_correct`` is the mean over questions of the probability the model gives the
correct option (a softmax over its option scores; likelihood mode, or an API's logprobs): it moves with
training before accuracy does. ``mcnemar_p`` compares the step with the one before on the same questions
(McNemar's test, exact for small counts; the Average row pools every task).

``curve.csv`` holds the points; ``curve.json`` (:class:`CurveRecord`, versioned) the points, the steps
(with those skipped and why) and the best step (highest Average accuracy, the earliest of ties).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mmeval import scoring, tasks
from mmeval.config import RunConfig
from mmeval.predictions import Prediction
from mmeval.report.analysis import bootstrap_ci, paired_mcnemar, pct, plain_preds, softmax
from mmeval.scoring import Figure

CURVE_SCHEMA_VERSION = 1
CURVE_CSV, CURVE_JSON = "curve.csv", "curve.json"
AVERAGE = scoring.AVERAGE
COLUMNS = ["step", "checkpoint", "task", "accuracy", "ci_low", "ci_high", "n", "p_correct", "invalid_rate",
           "mcnemar_p"]
#: bootstrap resamples per step (seeded by the run's seed, as the run's own report)
N_BOOT = 1000


class CurvePoint(BaseModel):
    """One task (or the Average) at one step."""

    model_config = ConfigDict(frozen=True)

    step: int
    checkpoint: str
    task: str
    accuracy: Figure
    ci_low: Figure
    ci_high: Figure
    n: int
    p_correct: Figure = Field(description="mean probability of the correct option (NaN without option scores)")
    invalid_rate: Figure
    mcnemar_p: Figure = Field(description="McNemar's p against the previous step (NaN at the first)")


class StepEntry(BaseModel):
    """A step of the watch: evaluated (with its run directory) or skipped (with the reason)."""

    model_config = ConfigDict(frozen=True)

    step: int
    checkpoint: str
    kind: str
    status: str  # "done" | "skipped"
    run_dir: str = ""
    digest: str = ""
    reason: str = ""
    #: wall seconds the evaluation took (swapping or loading the weights, answering, the step's report)
    seconds: float | None = None


class CurveRecord(BaseModel):
    """curve.json: the points, the steps and the best one."""

    version: int = CURVE_SCHEMA_VERSION
    points: list[CurvePoint]
    steps: list[StepEntry]
    best_step: int | None
    on_mmad: bool = Field(description="whether the data is MMAD's, so that its human and published figures compare")
    setup: str = Field("", description="digest of what every step shares (data, sample, shots, seed, answer mode, "
                                       "options): steps of another setup never join the curve")


def setup_digest(config: RunConfig) -> str:
    """The digest of a run config without what changes from step to step (model, weights, adapter, processor)."""
    args = {k: v for k, v in config.model_args.items() if k not in ("adapter", "processor")}
    return config.model_copy(update={"model": "", "weights": None, "model_args": args}).digest()


def _p_correct(preds: Sequence[Prediction]) -> float:
    probs = []
    for p in preds:
        if p.scores:
            probs.append(softmax(p.scores, p.options).get(p.answer, 0.0))
    return sum(probs) / len(probs) if probs else math.nan


def step_points(step: int, checkpoint: str, preds: Sequence[Prediction], previous: Sequence[Prediction] | None,
                seed: int) -> list[CurvePoint]:
    """The points of one step (every task it asked, then the Average), from its predictions."""
    df = scoring.frame(preds)
    row = scoring.table_row(scoring.score_table(df))
    ci = bootstrap_ci(df, n_boot=N_BOOT, seed=seed)
    ci = ci[ci["dataset"] == AVERAGE]
    bounds = {str(m): (float(lo), float(hi)) for m, lo, hi in zip(ci["metric"], ci["lo"], ci["hi"], strict=True)}
    plain = plain_preds(preds)
    asked = {p.task for p in plain}
    order = [t for t in tasks.task_names() if t in asked] + sorted(asked - set(tasks.task_names()))
    tests = paired_mcnemar(previous, preds) if previous is not None else None
    p_values = {str(t): float(p) for t, p in zip(tests["task"], tests["p"], strict=True)} if tests is not None else {}
    points = []
    for task in [*order, AVERAGE]:
        sub = plain if task == AVERAGE else [p for p in plain if p.task == task]
        key = "All" if task == AVERAGE else task
        p_value = p_values.get(key, math.nan)
        lo, hi = bounds.get(task, (math.nan, math.nan))
        points.append(CurvePoint(step=step, checkpoint=checkpoint, task=task, accuracy=row.get(task, math.nan),
                                 ci_low=lo, ci_high=hi, n=len(sub), p_correct=_p_correct(sub),
                                 invalid_rate=pct(sum(p.choice is None for p in sub), len(sub)), mcnemar_p=p_value))
    return points


def best_step(points: Sequence[CurvePoint]) -> int | None:
    """The step with the highest Average accuracy (the earliest of ties); None before any."""
    best: tuple[float, int] | None = None
    for p in points:
        if p.task == AVERAGE and not math.isnan(p.accuracy) and (best is None or p.accuracy > best[0]):
            best = (p.accuracy, p.step)
    return best[1] if best else None


def frame(points: Sequence[CurvePoint]) -> pd.DataFrame:
    return pd.DataFrame([p.model_dump() for p in points], columns=COLUMNS)


def write_curve(out: Path, record: CurveRecord) -> Path:
    """curve.csv and curve.json into ``out`` (each written whole, then renamed: a reader never sees half)."""
    out.mkdir(parents=True, exist_ok=True)
    csv = frame(record.points).to_csv(index=False, float_format="%.6f", lineterminator="\n")
    for name, text in ((CURVE_CSV, csv), (CURVE_JSON, record.model_dump_json(indent=1))):
        tmp = out / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
    return out / CURVE_CSV
