"""What each boost changes: runs of the same model and data with different boosts, against the plain run.

``mmeval run --boost none,rag,agent,rag+agent`` answers each variant into its own directory (sharing every
cache) and then writes, into ``OUT/ablation/``: per dataset and task, each variant's accuracy (as
scores.csv computes it) beside the baseline's, the difference in points and a paired McNemar test on
the questions both answered (exact for small counts; Holm-adjusted across tasks within a variant),
and a heatmap of the differences on a diverging scale centred at 0. The baseline is the variant
``none`` when it is listed, else the first.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from mmeval import scoring, tasks
from mmeval.jsonsafe import json_safe
from mmeval.predictions import Prediction
from mmeval.report import analysis, references
from mmeval.report.analysis import RunData
from mmeval.report.csvsafe import write_csv
from mmeval.report.figures import annotated_heatmap
from mmeval.report.html import write_page

ABLATION_SCHEMA_VERSION = 1
TEMPLATE = "ablation.html.j2"


class AblationCell(BaseModel):
    variant: str
    dataset: str  # a dataset, or "Average" (the mean over datasets, as the score table's last row)
    task: str  # a task, or "Average"
    accuracy: float
    baseline: float
    difference: float
    paired: int | None = None  # questions both runs answered (None for Average cells)
    p: float | None = None
    p_holm: float | None = None


class AblationRecord(BaseModel):
    version: int = ABLATION_SCHEMA_VERSION
    baseline: str
    variants: dict[str, str]  # variant -> run directory
    cells: list[AblationCell]


@dataclass(frozen=True)
class Ablation:
    baseline: str
    runs: dict[str, RunData]
    cells: list[AblationCell]
    tasks: list[str]  # the task columns: those the runs ask, in report order

    @property
    def frame(self) -> pd.DataFrame:
        """The cells as a table, one row each (for the CSV, the pivots and the page)."""
        return pd.DataFrame([c.model_dump() for c in self.cells], columns=list(AblationCell.model_fields))

    def record(self) -> AblationRecord:
        return AblationRecord(baseline=self.baseline, variants={v: str(r.path) for v, r in self.runs.items()},
                              cells=self.cells)


def _tests(base: list[Prediction], other: list[Prediction]) -> dict[str, dict[str, Any]]:
    table = analysis.paired_mcnemar(base, other)
    return {str(r["task"]): {str(k): v for k, v in r.items()} for r in table.to_dict(orient="records")}


def _cell(table: pd.DataFrame, dataset: str, task: str) -> float:
    """One score-table cell; NaN where the table has no such row or column (the run asks no such question)."""
    return scoring.table_row(table, dataset).get(task, math.nan)


def ablation(runs: dict[str, RunData], baseline: str) -> Ablation:
    """Every variant's score table against the baseline's, with paired tests per dataset and task.

    The tasks are those the runs ask (a benchmark built from a user's images may ask four of MMAD's seven); a
    dataset gets no cell for a task neither run asks there.
    """
    tables = {v: scoring.score_table(scoring.frame(r.preds)) for v, r in runs.items()}
    base_table, base_run = tables[baseline], runs[baseline]
    asked = tasks.in_order(t for table in tables.values() for t in scoring.task_columns(table))
    cells = []
    for variant, table in tables.items():
        if variant == baseline:
            continue
        for dataset in [str(d) for d in table.index if d in base_table.index]:
            if dataset == scoring.AVERAGE:
                tests = _tests(base_run.preds, runs[variant].preds)
            else:
                tests = _tests([p for p in base_run.preds if p.dataset == dataset],
                               [p for p in runs[variant].preds if p.dataset == dataset])
            for task in asked + [scoring.AVERAGE]:
                acc, ref = _cell(table, dataset, task), _cell(base_table, dataset, task)
                if math.isnan(acc) and math.isnan(ref):
                    continue
                test = tests.get(task if task != scoring.AVERAGE else "All", {})
                cells.append(AblationCell(variant=variant, dataset=dataset, task=task, accuracy=acc, baseline=ref,
                                          difference=acc - ref, paired=test.get("paired"), p=test.get("p"),
                                          p_holm=test.get("p_holm")))
    return Ablation(baseline, runs, cells, asked)


def difference_heatmap(ab: Ablation, path: Path) -> str:
    """Variants x tasks (Average over datasets): the change in points, on a diverging scale centred at 0.
    Written as SVG to ``path``; returns its text."""
    cells = ab.frame
    avg = cells[cells["dataset"] == scoring.AVERAGE]
    data = avg.pivot(index="variant", columns="task", values="difference").reindex(
        columns=ab.tasks + [scoring.AVERAGE]).astype(float)
    data = data.reindex([v for v in ab.runs if v != ab.baseline])
    limit = max(5.0, float(data.abs().max().max()) if data.size else 5.0)
    return annotated_heatmap(data, path, title=f"What each boost changes (Average over datasets) vs {ab.baseline}",
                      fmt="+.1f", cmap="RdBu", vmin=-limit, vmax=limit,
                      label=f"accuracy change vs {ab.baseline} (points)")


def write_ablation(ab: Ablation, out: Path) -> dict[str, Path]:
    """ablation.csv, ablation.json, ablation_heatmap.svg and ablation.html in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": out / "ablation.csv", "json": out / "ablation.json", "heatmap": out / "ablation_heatmap.svg",
             "html": out / "ablation.html"}
    cells = ab.frame
    write_csv(cells, files["csv"], index=False, float_format="%.4f")
    files["json"].write_text(json.dumps(json_safe(ab.record().model_dump()), indent=1), encoding="utf-8")
    heatmap_svg = difference_heatmap(ab, files["heatmap"])
    average = cells[cells["dataset"] == scoring.AVERAGE]
    per_dataset = cells[cells["dataset"] != scoring.AVERAGE]
    write_page(files["html"], TEMPLATE, {
        "title": f"Boost ablation: {next(iter(ab.runs.values())).model}", "baseline": ab.baseline,
        "runs": [{"variant": v, "dir": str(r.path), "report": str(r.path / "report.html")} for v, r in ab.runs.items()],
        "average": average.to_dict(orient="records"), "per_dataset": per_dataset.to_dict(orient="records"),
        "heatmap": heatmap_svg, "thumb_css": [], "reference_source": references.SOURCE})
    return files


def text_summary(ab: Ablation) -> str:
    cells = ab.frame
    avg = cells[cells["dataset"] == scoring.AVERAGE]
    view = avg.pivot(index="variant", columns="task", values="difference")
    cols = [c for c in ab.tasks + [scoring.AVERAGE] if c in view.columns]
    return f"accuracy change vs {ab.baseline} (points, Average over datasets):\n" + view[cols].round(1).to_string()
