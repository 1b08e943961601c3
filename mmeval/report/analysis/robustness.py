"""Robustness to the order of the options: CircularEval.

CircularEval (:func:`circular`): a question counts only if it and all its option rotations are right.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import pandas as pd

from mmeval import tasks
from mmeval.predictions import Prediction
from mmeval.report.analysis.questions import PROBE, pct, plain_preds


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
    asked = tasks.in_order([*per_task, *incomplete])
    rows = []
    for t in asked:
        data = per_task.get(t, [])
        plain_acc = pct(sum(a for a, _ in data), len(data))
        circ = pct(sum(c for _, c in data), len(data))
        rows.append({"task": t, "questions": len(data), "incomplete": incomplete.get(t, 0), "plain": plain_acc,
                     "circular": circ, "drop": plain_acc - circ})
    table = pd.DataFrame(rows, columns=cols)
    if not table.empty:
        table.loc[len(table)] = {"task": "Average", "questions": int(table["questions"].sum()),
                                 "incomplete": int(table["incomplete"].sum()),
                                 "plain": table["plain"].mean(), "circular": table["circular"].mean(),
                                 "drop": table["drop"].mean()}
    return table
