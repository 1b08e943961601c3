"""Analyses of a run beyond the score table: hallucination, uncertainty, calibration, latency, robustness.

Every function takes predictions (:class:`mmeval.predictions.Prediction`) or a run directory and
returns plain numbers, dicts or DataFrames; nothing here writes files. Definitions, precisely:

Hallucination (:func:`hallucination`)
    *Overkill*: share of normal images' Anomaly Detection questions not answered "no defect"
    (an invalid answer counts, as in scores.csv). *Miss*: share of anomalous images' Anomaly
    Detection questions not answered "defect". *Fabrication*: among defect probes (variant
    ``probe``: a normal image, options = its category's defect types + "There is no defect.")
    answered with a valid letter, the share that picked a defect. Invalid probe answers are
    counted apart, not in the denominator.

Self-inconsistency (:func:`self_inconsistency`), per image, from the image's plain Anomaly
Detection answer(s) ("AD says no" = every valid AD answer of the image chose the option meaning
No / no defect; "AD says yes" likewise with Yes):
    *denied_but_described*: an anomalous image where AD says no, yet at least one of the image's
    defect questions (the tasks asked only about anomalous images: classification, localization,
    description, analysis) was answered correctly. Denominator: anomalous images where AD says no
    and at least one defect question was asked. The defect-question accuracy on such images is
    reported beside the accuracy on images where AD says yes: if they are alike, the AD answer is
    disconnected from what the model sees.
    *probe_contradiction*: a normal image where AD says no, yet the probe picked a defect.
    Denominator: normal images where AD says no with a valid probe answer.
    *probe_reverse*: a normal image where AD says yes (overkill), yet the probe answered "There is
    no defect.". Denominator: normal images where AD says yes with a valid probe answer.

Position bias (:func:`position_bias`): per task, how often each letter is chosen (of the valid
answers) against how often it is the correct answer (of all questions).

Bootstrap (:func:`bootstrap_ci`): images are resampled with replacement within each dataset
(stratified, so every dataset row keeps its size), all the image's questions go with it, and the
score table is recomputed exactly as :mod:`mmeval.scoring` does (balanced Anomaly Detection,
dataset Average = mean of its tasks, Average row = mean of datasets). Percentile interval; seeded.

McNemar (:func:`paired_mcnemar`): questions paired by id (and the same correct option text), per
task; b = A right and B wrong, c = A wrong and B right. Exact two-sided binomial test (scipy
``binomtest(b, b + c, 0.5)``) when b + c < 25, else the chi-squared test with continuity
correction. Per-task verdicts use Holm-adjusted p-values across the tasks; "All" pools every task.

Scores (runs whose model gives per-option log-probabilities): *P(defect)* of an Anomaly Detection
question = softmax of the option scores, summed over options whose text means Yes (the question is
"is there any defect"); image-level P = mean over the image's AD questions; AUROC (rank / Mann-Whitney
form, ties count half) and AUPR (average precision, step-wise, as scikit-learn) with "anomalous" as
the positive class. *ECE*: confidence = softmax probability of the chosen option, 10 equal-width bins
over [0, 1], ECE = sum over bins of (bin share) x |accuracy - mean confidence|.

Latency (:func:`latency`): from timings.jsonl; per question = seconds since the previous answer of
its batch (with batches > 1 the first answer carries the batch's compute); per image = the sum over
the image's questions in the run; throughput = answered questions / summed batch time.

CircularEval (:func:`circular`): a question counts only if it and all its option rotations are right.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mmeval import references, scoring, task_registry
from mmeval.errors import InputError
from mmeval.predictions import Prediction, read_predictions

PROBE = "probe"
MCNEMAR_EXACT_BELOW = 25


# ----------------------------------------------------------------------------------------------- helpers


def detection_task() -> str | None:
    """The task scored as balanced accuracy (Anomaly Detection)."""
    return next((t.name for t in task_registry.all_tasks() if t.scoring == "balanced"), None)


def defect_tasks() -> list[str]:
    """Tasks asked only about anomalous images: their questions presuppose a defect."""
    return [t.name for t in task_registry.all_tasks() if t.asked_about == "anomalous"]


def plain_preds(preds: Iterable[Prediction]) -> list[Prediction]:
    return [p for p in preds if p.variant is None]


def probe_preds(preds: Iterable[Prediction]) -> list[Prediction]:
    return [p for p in preds if p.variant == PROBE]


_WORD = re.compile(r"[a-z]+")


def polarity(text: str) -> str | None:
    """'yes' or 'no' when an option's text means Yes / No (``Yes.``, ``no``, ``No, it is fine``)."""
    m = _WORD.search(text.strip().lower())
    if not m:
        return None
    return m.group(0) if m.group(0) in ("yes", "no") else None


def says_defect(pred: Prediction) -> bool | None:
    """For an Anomaly Detection answer: True = chose Yes (defect), False = chose No, None = invalid/other."""
    if pred.choice is None or pred.choice not in pred.options:
        return None
    pol = polarity(pred.options[pred.choice])
    return None if pol is None else pol == "yes"


def softmax(scores: dict[str, float], keys: Iterable[str] | None = None) -> dict[str, float]:
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
    yes = [k for k, t in pred.options.items() if polarity(t) == "yes"]
    if not probs or not yes or any(k not in probs for k in pred.options):
        return None
    return float(sum(probs[k] for k in yes))


def chosen_confidence(pred: Prediction) -> float | None:
    """Softmax probability of the chosen option; None without scores or a valid choice."""
    if not pred.scores or pred.choice is None:
        return None
    probs = softmax(pred.scores, pred.options)
    return probs.get(pred.choice)


def _pct(num: float, den: float) -> float:
    return 100.0 * num / den if den else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); NaN for no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


# ------------------------------------------------------------------------------------------ hallucination


def _ad_by_image(preds: Sequence[Prediction]) -> dict[str, list[Prediction]]:
    ad = detection_task()
    out: dict[str, list[Prediction]] = defaultdict(list)
    for p in preds:
        if p.variant is None and p.task == ad:
            out[p.image].append(p)
    return out


def ad_verdict(answers: Sequence[Prediction]) -> bool | None:
    """An image's AD verdict: True when every valid answer says defect, False when every one says no."""
    said = [s for s in (says_defect(p) for p in answers) if s is not None]
    if not said:
        return None
    if all(said):
        return True
    if not any(said):
        return False
    return None


def fabrication(preds: Iterable[Prediction]) -> dict[str, Any]:
    """Defect probes: how often a defect was picked on a normal image (of the valid answers)."""
    probes = probe_preds(preds)
    valid = [p for p in probes if p.choice is not None]
    fabricated = [p for p in valid if p.choice != p.answer]
    return {"probes": len(probes), "valid": len(valid), "invalid": len(probes) - len(valid),
            "fabricated": len(fabricated), "rate": _pct(len(fabricated), len(valid))}


def self_inconsistency(preds: Iterable[Prediction]) -> dict[str, Any]:
    """Contradictions between an image's AD answer and its other answers (module docstring)."""
    preds = list(preds)
    ad = _ad_by_image(preds)
    dtasks = set(defect_tasks())
    defect_q: dict[str, list[Prediction]] = defaultdict(list)
    probe: dict[str, Prediction] = {}
    for p in preds:
        if p.variant is None and p.task in dtasks:
            defect_q[p.image].append(p)
        elif p.variant == PROBE:
            probe[p.image] = p
    denied_n = denied_hit = 0
    acc = {"denied": [0, 0], "detected": [0, 0]}  # correct, asked
    contra_n = contra_hit = reverse_n = reverse_hit = 0
    for image, answers in ad.items():
        verdict = ad_verdict(answers)
        if verdict is None:
            continue
        normal = answers[0].is_normal
        if not normal and defect_q.get(image):
            qs = defect_q[image]
            right = sum(q.correct for q in qs)
            bucket = acc["detected" if verdict else "denied"]
            bucket[0] += right
            bucket[1] += len(qs)
            if not verdict:
                denied_n += 1
                denied_hit += right > 0
        pr = probe.get(image)
        if normal and pr is not None and pr.choice is not None:
            picked_defect = pr.choice != pr.answer
            if not verdict:
                contra_n += 1
                contra_hit += picked_defect
            else:
                reverse_n += 1
                reverse_hit += not picked_defect
    total_n = denied_n + contra_n + reverse_n
    total_hit = denied_hit + contra_hit + reverse_hit
    return {
        "denied_but_described": {"images": denied_n, "inconsistent": denied_hit, "rate": _pct(denied_hit, denied_n)},
        "defect_accuracy_when_denied": _pct(*acc["denied"]), "defect_questions_when_denied": acc["denied"][1],
        "defect_accuracy_when_detected": _pct(*acc["detected"]), "defect_questions_when_detected": acc["detected"][1],
        "probe_contradiction": {"images": contra_n, "inconsistent": contra_hit, "rate": _pct(contra_hit, contra_n)},
        "probe_reverse": {"images": reverse_n, "inconsistent": reverse_hit, "rate": _pct(reverse_hit, reverse_n)},
        "all": {"images": total_n, "inconsistent": total_hit, "rate": _pct(total_hit, total_n)},
    }


def _hallucination_row(preds: Sequence[Prediction]) -> dict[str, Any]:
    ad = detection_task()
    ad_q = [p for p in preds if p.variant is None and p.task == ad]
    normal = [p for p in ad_q if p.is_normal]
    anom = [p for p in ad_q if not p.is_normal]
    overkill = sum(not p.correct for p in normal)
    miss = sum(not p.correct for p in anom)
    fab = fabrication(preds)
    inc = self_inconsistency(preds)
    return {
        "normal_questions": len(normal), "overkill_n": overkill, "overkill": _pct(overkill, len(normal)),
        "anomalous_questions": len(anom), "miss_n": miss, "miss": _pct(miss, len(anom)),
        "ad_invalid": sum(p.choice is None for p in ad_q),
        "probes": fab["probes"], "probes_valid": fab["valid"], "fabricated_n": fab["fabricated"],
        "fabrication": fab["rate"],
        "denied_but_described_n": inc["denied_but_described"]["inconsistent"],
        "denied_images": inc["denied_but_described"]["images"],
        "denied_but_described": inc["denied_but_described"]["rate"],
        "probe_contradiction_n": inc["probe_contradiction"]["inconsistent"],
        "probe_contradiction_images": inc["probe_contradiction"]["images"],
        "probe_contradiction": inc["probe_contradiction"]["rate"],
    }


def hallucination(preds: Iterable[Prediction]) -> pd.DataFrame:
    """Per dataset and category, then per dataset (category ``*``) and overall (``*``, ``*``)."""
    preds = list(preds)
    groups: dict[tuple[str, str], list[Prediction]] = defaultdict(list)
    by_ds: dict[str, list[Prediction]] = defaultdict(list)
    for p in preds:
        groups[(p.dataset, p.category)].append(p)
        by_ds[p.dataset].append(p)
    rows = []
    for ds, ds_preds in by_ds.items():
        for (d, cat), sub in groups.items():
            if d == ds:
                rows.append({"dataset": ds, "category": cat, **_hallucination_row(sub)})
        rows.append({"dataset": ds, "category": "*", **_hallucination_row(ds_preds)})
    rows.append({"dataset": "*", "category": "*", **_hallucination_row(preds)})
    return pd.DataFrame(rows)


def invalid_rates(preds: Iterable[Prediction]) -> pd.DataFrame:
    """Answers that name no option, per task (plain questions), for the probes and for the rotations."""
    preds = list(preds)
    rows = []
    order = task_registry.task_names()
    plain = plain_preds(preds)
    tasks = [t for t in order if any(p.task == t for p in plain)] + sorted(
        {p.task for p in plain} - set(order))
    groups = [(t, [p for p in plain if p.task == t]) for t in tasks]
    groups.append(("All questions", plain))
    probes = probe_preds(preds)
    if probes:
        groups.append(("Defect probes", probes))
    rots = [p for p in preds if p.variant not in (None, PROBE)]
    if rots:
        groups.append(("Rotations (CircularEval)", rots))
    for name, sub in groups:
        invalid = sum(p.choice is None for p in sub)
        errors = sum(p.error is not None for p in sub)
        rows.append({"task": name, "questions": len(sub), "invalid": invalid, "errors": errors,
                     "invalid_rate": _pct(invalid, len(sub))})
    return pd.DataFrame(rows, columns=["task", "questions", "invalid", "errors", "invalid_rate"])


def position_bias(preds: Iterable[Prediction]) -> pd.DataFrame:
    """Per task (plain questions) and letter: times chosen vs times correct, in counts and percent.

    ``chosen_pct`` is of the valid answers, ``correct_pct`` of all questions; ``ratio`` = chosen_pct /
    correct_pct (1 = no preference for the position).
    """
    plain = plain_preds(preds)
    order = task_registry.task_names()
    tasks = [t for t in order if any(p.task == t for p in plain)]
    rows = []
    for name, sub in [(t, [p for p in plain if p.task == t]) for t in tasks] + [("All", plain)]:
        if not sub:
            continue
        letters = sorted({p.answer for p in sub} | {p.choice for p in sub if p.choice} |
                         {k for p in sub for k in p.options})
        valid = sum(p.choice is not None for p in sub)
        for letter in letters:
            chosen = sum(p.choice == letter for p in sub)
            correct = sum(p.answer == letter for p in sub)
            cp, rp = _pct(chosen, valid), _pct(correct, len(sub))
            rows.append({"task": name, "letter": letter, "chosen": chosen, "correct": correct,
                         "chosen_pct": cp, "correct_pct": rp,
                         "ratio": cp / rp if rp and not math.isnan(cp) else float("nan")})
    return pd.DataFrame(rows, columns=["task", "letter", "chosen", "correct", "chosen_pct", "correct_pct", "ratio"])


# --------------------------------------------------------------------------------------------- bootstrap


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


# ----------------------------------------------------------------------------------------------- McNemar


def mcnemar(b: int, c: int) -> tuple[float, str]:
    """Two-sided McNemar p-value from the discordant counts, and the method used."""
    n = b + c
    if n == 0:
        return 1.0, "none"
    if n < MCNEMAR_EXACT_BELOW:
        return float(stats.binomtest(min(b, c), n, 0.5, alternative="two-sided").pvalue), "exact"
    stat = (abs(b - c) - 1) ** 2 / n
    return float(stats.chi2.sf(stat, 1)), "chi2-cc"


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN)."""
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    out = [float("nan")] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[i]))
        out[i] = running
    return out


def paired_mcnemar(a: Iterable[Prediction], b: Iterable[Prediction], *, alpha: float = 0.05) -> pd.DataFrame:
    """Per task, and pooled ("All"): paired accuracy of A and B and McNemar's test (module docstring)."""
    pa = {p.id: p for p in plain_preds(a)}
    pb = {p.id: p for p in plain_preds(b)}
    pairs: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for qid, x in pa.items():
        y = pb.get(qid)
        if y is None or x.options.get(x.answer, "").strip() != y.options.get(y.answer, "").strip():
            continue
        pairs[x.task].append((x.correct, y.correct))
    order = task_registry.task_names()
    tasks = [t for t in order if t in pairs] + sorted(set(pairs) - set(order))
    rows = []
    for name, data in [(t, pairs[t]) for t in tasks] + [("All", [v for t in tasks for v in pairs[t]])]:
        n = len(data)
        both = sum(x and y for x, y in data)
        b_ = sum(x and not y for x, y in data)
        c_ = sum(y and not x for x, y in data)
        p, method = mcnemar(b_, c_)
        rows.append({"task": name, "paired": n, "acc_a": _pct(sum(x for x, _ in data), n),
                     "acc_b": _pct(sum(y for _, y in data), n), "both_right": both, "a_only": b_, "b_only": c_,
                     "both_wrong": n - both - b_ - c_, "p": p, "method": method})
    table = pd.DataFrame(rows, columns=["task", "paired", "acc_a", "acc_b", "both_right", "a_only", "b_only",
                                        "both_wrong", "p", "method"])
    if table.empty:
        table["p_holm"] = []
        table["verdict"] = []
        return table
    per_task = table["task"] != "All"
    adj = holm(table.loc[per_task, "p"].tolist())
    table["p_holm"] = np.nan
    table.loc[per_task, "p_holm"] = adj
    table.loc[~per_task, "p_holm"] = table.loc[~per_task, "p"]

    def verdict(r: Any) -> str:
        if r.paired == 0:
            return "no paired questions"
        if r.p_holm < alpha and r.b_only != r.a_only:
            return "B better" if r.b_only > r.a_only else "A better"
        return "no significant difference"

    table["verdict"] = [verdict(r) for r in table.itertuples()]
    return table


# ------------------------------------------------------------------------------- scores: AUROC, AUPR, ECE


def auroc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve (positives = 1); ties count half; NaN with a single class."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


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


def detection_scores(preds: Iterable[Prediction]) -> dict[str, Any]:
    """Image-level AUROC / AUPR of anomaly detection from P(defect); ``available`` False without scores."""
    per_image: dict[str, list[float]] = defaultdict(list)
    label: dict[str, bool] = {}
    for p in _iter_ad(preds):
        pd_ = p_defect(p)
        if pd_ is not None:
            per_image[p.image].append(pd_)
            label[p.image] = not p.is_normal
    if not per_image:
        return {"available": False, "images": 0}
    images = list(per_image)
    y = [int(label[i]) for i in images]
    s = [float(np.mean(per_image[i])) for i in images]
    return {"available": True, "images": len(images), "anomalous": sum(y), "normal": len(y) - sum(y),
            "auroc": auroc(y, s), "aupr": average_precision(y, s), "prevalence": _pct(sum(y), len(y)) / 100}


def _iter_ad(preds: Iterable[Prediction]) -> Iterable[Prediction]:
    ad = detection_task()
    return (p for p in preds if p.variant is None and p.task == ad)


def ece(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error with equal-width bins over [0, 1] (a confidence of 1 goes in the last bin)."""
    conf = np.asarray(confidence, dtype=float)
    acc = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return float("nan"), []
    idx = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    total, bins = 0.0, []
    for b in range(n_bins):
        mask = idx == b
        n = int(mask.sum())
        if not n:
            continue
        c, a = float(conf[mask].mean()), float(acc[mask].mean())
        total += n / conf.size * abs(a - c)
        bins.append({"lo": b / n_bins, "hi": (b + 1) / n_bins, "n": n, "confidence": c, "accuracy": a})
    return float(total), bins


def calibration(preds: Iterable[Prediction], n_bins: int = 10) -> dict[str, Any]:
    """ECE of the chosen option's probability over the plain questions that have option scores."""
    conf, right = [], []
    for p in plain_preds(preds):
        c = chosen_confidence(p)
        if c is not None:
            conf.append(c)
            right.append(p.correct)
    if not conf:
        return {"available": False, "questions": 0}
    value, bins = ece(conf, right, n_bins)
    return {"available": True, "questions": len(conf), "ece": value, "mean_confidence": float(np.mean(conf)),
            "accuracy": float(np.mean(right)), "bins": bins}


# ----------------------------------------------------------------------------------------------- latency


def read_timings(run_dir: Path) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(question id -> seconds, last line per id wins; batch lines) from timings*.jsonl of a run dir."""
    per_q: dict[str, float] = {}
    batches: list[dict[str, Any]] = []
    files = [run_dir / "timings.jsonl"] + sorted(run_dir.glob("timings.rank*.jsonl"))
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:  # a torn last line of an interrupted run
                continue
            if "id" in rec and "seconds" in rec:
                per_q[str(rec["id"])] = float(rec["seconds"])
            elif "batch_seconds" in rec:
                batches.append(rec)
    return per_q, batches


def latency(per_question: dict[str, float], batches: Sequence[dict[str, Any]], image_of: dict[str, str],
            cycle_ms: float | None = None) -> dict[str, Any]:
    """Latency percentiles (ms), throughput and, with a line cycle time, whether the model keeps up.

    Only questions present in ``image_of`` (the run's predictions) count. ``keeps_up``: "yes" when the
    95th percentile of per-image time fits in the cycle, "on average only" when the mean does but the
    p95 does not, "no" otherwise.
    """
    ids = [q for q in per_question if q in image_of]
    if not ids:
        return {"available": False, "cycle_ms": cycle_ms}
    q_ms = [1000 * per_question[q] for q in ids]
    per_image: dict[str, float] = defaultdict(float)
    for q in ids:
        per_image[image_of[q]] += 1000 * per_question[q]
    img_ms = list(per_image.values())
    total_s = sum(float(b["batch_seconds"]) for b in batches) if batches else sum(q_ms) / 1000
    sizes = [int(b.get("batch_size", 1)) for b in batches]
    out: dict[str, Any] = {
        "available": True, "questions": len(ids), "images": len(img_ms),
        "question_p50_ms": percentile(q_ms, 50), "question_p95_ms": percentile(q_ms, 95),
        "question_mean_ms": float(np.mean(q_ms)),
        "image_p50_ms": percentile(img_ms, 50), "image_p95_ms": percentile(img_ms, 95),
        "image_mean_ms": float(np.mean(img_ms)),
        "total_seconds": total_s,
        "questions_per_second": len(ids) / total_s if total_s > 0 else float("nan"),
        "images_per_second": len(img_ms) / total_s if total_s > 0 else float("nan"),
        "max_batch_size": max(sizes) if sizes else 1,
        "cycle_ms": cycle_ms,
    }
    if cycle_ms:
        p95, mean = out["image_p95_ms"], out["image_mean_ms"]
        out["keeps_up"] = "yes" if p95 <= cycle_ms else ("on average only" if mean <= cycle_ms else "no")
        out["headroom"] = cycle_ms / p95 if p95 > 0 else float("inf")
    return out


# --------------------------------------------------------------------------------------------- circular


def circular(preds: Iterable[Prediction]) -> pd.DataFrame:
    """Per task: plain vs CircularEval accuracy on the questions asked with all their rotations.

    A question is included when every rotation (options - 1 of them) is in the run; it counts under
    CircularEval only if it and all its rotations are correct. Empty without rotations. ``Average``
    is the mean over tasks.
    """
    preds = list(preds)
    rots: dict[str, list[Prediction]] = defaultdict(list)
    for p in preds:
        if p.variant and p.variant != PROBE and p.base_id:
            rots[p.base_id].append(p)
    cols = ["task", "questions", "incomplete", "plain", "circular", "drop"]
    if not rots:
        return pd.DataFrame(columns=cols)
    per_task: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    incomplete: dict[str, int] = defaultdict(int)
    for p in plain_preds(preds):
        rs = rots.get(p.id)
        if rs is None:
            continue
        if len({r.variant for r in rs}) < len(p.options) - 1:
            incomplete[p.task] += 1
            continue
        per_task[p.task].append((p.correct, p.correct and all(r.correct for r in rs)))
    order = task_registry.task_names()
    tasks = [t for t in order if t in per_task or t in incomplete] + sorted(
        (set(per_task) | set(incomplete)) - set(order))
    rows = []
    for t in tasks:
        data = per_task.get(t, [])
        plain_acc = _pct(sum(a for a, _ in data), len(data))
        circ = _pct(sum(c for _, c in data), len(data))
        rows.append({"task": t, "questions": len(data), "incomplete": incomplete.get(t, 0), "plain": plain_acc,
                     "circular": circ, "drop": plain_acc - circ})
    table = pd.DataFrame(rows, columns=cols)
    if not table.empty:
        table.loc[len(table)] = {"task": "Average", "questions": int(table["questions"].sum()),
                                 "incomplete": int(table["incomplete"].sum()),
                                 "plain": table["plain"].mean(), "circular": table["circular"].mean(),
                                 "drop": table["drop"].mean()}
    return table


# ------------------------------------------------------------------------------------------- references


def human_gap(table: pd.DataFrame, ci: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per task (and Average): the run's Average-row accuracy, its CI, the approximate human expert, the gap."""
    human = references.human_baseline()
    gpt = references.reference_row("gpt-4o")
    rows = []
    for t in task_registry.task_names() + ["Average"]:
        value = float(table.loc["Average", t]) if "Average" in table.index and t in table.columns else float("nan")
        lo = hi = float("nan")
        if ci is not None and not ci.empty:
            hit = ci[(ci["dataset"] == "Average") & (ci["metric"] == t)]
            if not hit.empty:
                lo, hi = float(hit["lo"].iloc[0]), float(hit["hi"].iloc[0])
        expert = float(human.loc[t, "expert"]) if t in human.index else float("nan")
        unc = float(human.loc[t, "uncertainty"]) if t in human.index else float("nan")
        rows.append({"task": t, "run": value, "lo": lo, "hi": hi, "human_expert": expert, "human_uncertainty": unc,
                     "gap": value - expert, "gpt-4o": float(gpt.get(t, float("nan")))})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- a run


@dataclass
class RunData:
    """A run directory's contents."""

    path: Path
    preds: list[Prediction]
    run: dict[str, Any] = field(default_factory=dict)
    usage: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Any] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        return self.run.get("config", {}) or {}

    @property
    def model(self) -> str:
        return str(self.config.get("model") or (self.preds[0].model if self.preds else "?"))

    @property
    def label(self) -> str:
        shots = self.config.get("shots")
        return f"{self.model} ({shots}-shot)" if shots is not None else self.model

    @property
    def title(self) -> str:
        cfg = self.config
        return f"{self.model} · {cfg.get('shots', '?')}-shot · seed {cfg.get('seed', '?')}"

    def image_root(self) -> Path | None:
        cfg = self.config
        if cfg.get("image_root"):
            return Path(cfg["image_root"])
        src = self.run.get("source")
        return Path(src).parent if src else None


def load_run(run_dir: Path) -> RunData:
    run_dir = Path(run_dir)
    pred_path = run_dir / "predictions.jsonl"
    if not pred_path.is_file():
        raise InputError(f"{run_dir}: no predictions.jsonl (is this a run directory?)")
    preds = read_predictions(pred_path)
    if not preds:
        raise InputError(f"{pred_path}: no predictions yet")

    def _json(name: str, default: Any) -> Any:
        path = run_dir / name
        if not path.is_file():
            return default
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise InputError(f"{path}: not valid JSON") from None

    usage = []
    if (run_dir / "usage.jsonl").is_file():
        for line in (run_dir / "usage.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                usage.append(json.loads(line))
            except ValueError:
                continue
    return RunData(run_dir, preds, _json("run.json", {}), usage, _json("skipped.json", []))


def analyse(preds: Sequence[Prediction], *, run_dir: Path | None = None, cycle_ms: float | None = None,
            n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Every analysis of one run, as DataFrames and dicts (see :func:`to_jsonable`)."""
    df = scoring.frame(preds)
    table = scoring.score_table(df)
    ci = bootstrap_ci(df, n_boot=n_boot, seed=seed)
    per_q, batches = read_timings(run_dir) if run_dir is not None else ({}, [])
    image_of = {p.id: p.image for p in preds}
    return {
        "table": table,
        "counts": scoring.counts(df),
        "ci": ci,
        "human_gap": human_gap(table, ci),
        "hallucination": hallucination(preds),
        "self_inconsistency": self_inconsistency(preds),
        "fabrication": fabrication(preds),
        "invalid": invalid_rates(preds),
        "position_bias": position_bias(preds),
        "detection_scores": detection_scores(preds),
        "calibration": calibration(preds),
        "latency": latency(per_q, batches, image_of, cycle_ms),
        "circular": circular(preds),
        "bootstrap": {"resamples": n_boot, "seed": seed, "level": 0.95, "unit": "image, within dataset"},
    }


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, (np.floating,)):
        return _clean(float(value))
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_jsonable(result: dict[str, Any]) -> dict[str, Any]:
    """DataFrames become lists of records (the score table: dataset -> metric -> value); NaN -> null."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        if key == "table":
            out[key] = value.to_dict(orient="index")
        elif isinstance(value, pd.DataFrame):
            out[key] = value.to_dict(orient="records")
        else:
            out[key] = value
    return _clean(out)
