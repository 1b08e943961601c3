"""The run against reference baselines: the approximate human expert and GPT-4o."""

from __future__ import annotations

import pandas as pd

from mmeval import scoring
from mmeval.report import references


def human_gap(table: pd.DataFrame, ci: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per task the run asks (and Average): the run's Average-row accuracy, its CI, the approximate human expert
    (its Average over the same tasks), the gap."""
    asked = scoring.task_columns(table)
    expert = references.reference_row(references.HUMAN).over(asked)
    uncertainty = references.human_baseline()["uncertainty"].astype(float)
    gpt = references.reference_row("gpt-4o").over(asked)
    avg = scoring.AVERAGE
    run = scoring.table_row(table, avg)
    rows = []
    for t in asked + [avg]:
        value = run.get(t, float("nan"))
        lo = hi = float("nan")
        if ci is not None and not ci.empty:
            hit = ci[(ci["dataset"] == avg) & (ci["metric"] == t)]
            if not hit.empty:
                lo, hi = float(hit["lo"].iloc[0]), float(hit["hi"].iloc[0])
        exp = expert.get(t, float("nan"))
        unc = float(uncertainty[t]) if t in uncertainty.index else float("nan")
        rows.append({"task": t, "run": value, "lo": lo, "hi": hi, "human_expert": exp, "human_uncertainty": unc,
                     "gap": value - exp, "gpt-4o": gpt.get(t, float("nan"))})
    return pd.DataFrame(rows)
