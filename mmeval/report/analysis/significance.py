"""Paired significance tests between two runs: McNemar per task, Holm-adjusted.

McNemar (:func:`paired_mcnemar`): questions paired by id (and the same correct option text), per
task; b = A right and B wrong, c = A wrong and B right. Exact two-sided binomial test (scipy
``binomtest(b, b + c, 0.5)``) when b + c < 25, else the chi-squared test with continuity
correction. Per-task verdicts use Holm-adjusted p-values across the tasks; "All" pools every task.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmeval import tasks
from mmeval.predictions import Prediction
from mmeval.report.analysis.questions import pct, plain_preds

MCNEMAR_EXACT_BELOW = 25


def mcnemar(b: int, c: int) -> tuple[float, str]:
    """Two-sided McNemar p-value from the discordant counts, and the method used."""
    from scipy import stats  # imported here: a plain report does not pay for scipy.stats

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
    asked = tasks.in_order(pairs)
    rows = []
    for name, data in [(t, pairs[t]) for t in asked] + [("All", [v for t in asked for v in pairs[t]])]:
        n = len(data)
        both = sum(x and y for x, y in data)
        b_ = sum(x and not y for x, y in data)
        c_ = sum(y and not x for x, y in data)
        p, method = mcnemar(b_, c_)
        rows.append({"task": name, "paired": n, "acc_a": pct(sum(x for x, _ in data), n),
                     "acc_b": pct(sum(y for _, y in data), n), "both_right": both, "a_only": b_, "b_only": c_,
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
