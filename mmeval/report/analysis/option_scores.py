"""Analyses of per-option scores: P(defect), AUROC / AUPR of anomaly detection, calibration (ECE).

Scores (runs whose model gives per-option log-probabilities): *P(defect)* of an Anomaly Detection
question = softmax of the option scores, summed over options whose text means Yes (the question is
"is there any defect"); image-level P = mean over the image's AD questions; AUROC (rank / Mann-Whitney
form, ties count half) and AUPR (average precision, step-wise, as scikit-learn) with "anomalous" as
the positive class. *ECE*: confidence = softmax probability of the chosen option, 10 equal-width bins
over [0, 1], ECE = sum over bins of (bin share) x |accuracy - mean confidence|.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from mmeval.experts.metrics import auroc
from mmeval.predictions import Prediction
from mmeval.report.analysis.questions import pct, plain_preds
from mmeval.tasks import detection_task, option_polarity


class DetectionScores(BaseModel):
    """Image-level anomaly detection from P(defect); the figures are None when ``available`` is False."""

    model_config = ConfigDict(frozen=True)

    available: bool
    images: int
    anomalous: int | None = None
    normal: int | None = None
    auroc: float | None = None
    aupr: float | None = None
    prevalence: float | None = None


class CalibrationBin(BaseModel):
    model_config = ConfigDict(frozen=True)

    lo: float
    hi: float
    n: int
    confidence: float
    accuracy: float


class Calibration(BaseModel):
    """Expected calibration error of the chosen option's probability; figures None when ``available`` is False."""

    model_config = ConfigDict(frozen=True)

    available: bool
    questions: int
    ece: float | None = None
    mean_confidence: float | None = None
    accuracy: float | None = None
    bins: list[CalibrationBin] | None = None


def softmax(scores: Mapping[str, float | None], keys: Iterable[str] | None = None) -> dict[str, float]:
    """Softmax over ``scores`` (restricted to ``keys`` when given), numerically stable."""
    items = {k: float(v) for k, v in scores.items() if (keys is None or k in keys) and v is not None
             and math.isfinite(float(v))}
    if not items:
        return {}
    top = max(items.values())
    exp = {k: math.exp(v - top) for k, v in items.items()}
    total = sum(exp.values())
    return {k: v / total for k, v in exp.items()}


def p_defect(pred: Prediction) -> float | None:
    """P(defect) of an Anomaly Detection answer from its option scores; None without scores or a Yes option."""
    if not pred.scores:
        return None
    probs = softmax(pred.scores, pred.options)
    yes = [k for k, t in pred.options.items() if option_polarity(t) == "yes"]
    if not probs or not yes or any(k not in probs for k in pred.options):
        return None
    return float(sum(probs[k] for k in yes))


def chosen_confidence(pred: Prediction) -> float | None:
    """Softmax probability of the chosen option; None without scores or a valid choice."""
    if not pred.scores or pred.choice is None:
        return None
    probs = softmax(pred.scores, pred.options)
    return probs.get(pred.choice)


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the precision-recall curve as average precision (step-wise, scikit-learn's definition)."""
    y = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    cut = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[cut]
    fps = cut + 1 - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def detection_scores(preds: Iterable[Prediction]) -> DetectionScores:
    """Image-level AUROC / AUPR of anomaly detection from P(defect); ``available`` False without scores."""
    per_image: dict[str, list[float]] = defaultdict(list)
    label: dict[str, bool] = {}
    for p in _iter_ad(preds):
        pd_ = p_defect(p)
        if pd_ is not None:
            per_image[p.image].append(pd_)
            label[p.image] = not p.is_normal
    if not per_image:
        return DetectionScores(available=False, images=0)
    images = list(per_image)
    y = [int(label[i]) for i in images]
    s = [float(np.mean(per_image[i])) for i in images]
    return DetectionScores(available=True, images=len(images), anomalous=sum(y), normal=len(y) - sum(y),
                           auroc=auroc(y, s), aupr=average_precision(y, s), prevalence=pct(sum(y), len(y)) / 100)


def _iter_ad(preds: Iterable[Prediction]) -> Iterable[Prediction]:
    ad = detection_task()
    return (p for p in preds if p.variant is None and p.task == ad)


def ece(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> tuple[float, list[CalibrationBin]]:
    """Expected calibration error with equal-width bins over [0, 1] (a confidence of 1 goes in the last bin)."""
    conf = np.asarray(confidence, dtype=float)
    acc = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return float("nan"), []
    idx = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    total = 0.0
    bins: list[CalibrationBin] = []
    for b in range(n_bins):
        mask = idx == b
        n = int(mask.sum())
        if not n:
            continue
        c, a = float(conf[mask].mean()), float(acc[mask].mean())
        total += n / conf.size * abs(a - c)
        bins.append(CalibrationBin(lo=b / n_bins, hi=(b + 1) / n_bins, n=n, confidence=c, accuracy=a))
    return float(total), bins


def calibration(preds: Iterable[Prediction], n_bins: int = 10) -> Calibration:
    """ECE of the chosen option's probability over the plain questions that have option scores."""
    conf, right = [], []
    for p in plain_preds(preds):
        c = chosen_confidence(p)
        if c is not None:
            conf.append(c)
            right.append(p.correct)
    if not conf:
        return Calibration(available=False, questions=0)
    value, bins = ece(conf, right, n_bins)
    return Calibration(available=True, questions=len(conf), ece=value, mean_confidence=float(np.mean(conf)),
                       accuracy=float(np.mean(right)), bins=bins)
