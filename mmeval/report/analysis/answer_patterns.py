"""Patterns in which option the answers name: invalid answers per task, and position bias.

Position bias (:func:`position_bias`): per task, how often each letter is chosen (of the valid
answers) against how often it is the correct answer (of all questions).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable

import pandas as pd

from mmeval import tasks
from mmeval.predictions import Prediction
from mmeval.report.analysis.questions import PROBE, pct, plain_preds, probe_preds


def invalid_rates(preds: Iterable[Prediction]) -> pd.DataFrame:
    """Answers that name no option, per task (plain questions), for the probes and for the rotations."""
    preds = list(preds)
    rows = []
    plain = plain_preds(preds)
    by_task: dict[str, list[Prediction]] = defaultdict(list)
    for p in plain:
        by_task[p.task].append(p)
    groups = [(t, by_task[t]) for t in tasks.in_order(by_task)]
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
                     "invalid_rate": pct(invalid, len(sub))})
    return pd.DataFrame(rows, columns=["task", "questions", "invalid", "errors", "invalid_rate"])


def position_bias(preds: Iterable[Prediction]) -> pd.DataFrame:
    """Per task (plain questions) and letter: times chosen vs times correct, in counts and percent.

    ``chosen_pct`` is of the valid answers, ``correct_pct`` of all questions; ``ratio`` = chosen_pct /
    correct_pct (1 = no preference for the position).
    """
    plain = plain_preds(preds)
    by_task: dict[str, list[Prediction]] = defaultdict(list)
    for p in plain:
        by_task[p.task].append(p)
    rows = []
    for name, sub in [(t, by_task[t]) for t in tasks.in_order(by_task)] + [("All", plain)]:
        if not sub:
            continue
        chosen_n = Counter(p.choice for p in sub)
        correct_n = Counter(p.answer for p in sub)
        offered = set().union(*{tuple(p.options) for p in sub})
        letters = sorted(set(correct_n) | {c for c in chosen_n if c} | offered)
        valid = len(sub) - chosen_n[None]
        for letter in letters:
            chosen, correct = chosen_n[letter], correct_n[letter]
            cp, rp = pct(chosen, valid), pct(correct, len(sub))
            rows.append({"task": name, "letter": letter, "chosen": chosen, "correct": correct,
                         "chosen_pct": cp, "correct_pct": rp,
                         "ratio": cp / rp if rp and not math.isnan(cp) else float("nan")})
    return pd.DataFrame(rows, columns=["task", "letter", "chosen", "correct", "chosen_pct", "correct_pct", "ratio"])
