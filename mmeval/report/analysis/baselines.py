"""The run against reference baselines: the approximate human expert and GPT-4o."""

from __future__ import annotations

import pandas as pd

from mmeval import tasks as task_registry
from mmeval.report import references


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
