"""What report.html shows of one run: the context of its template, from the run and its analysis."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mmeval import scoring
from mmeval.errors import InputError
from mmeval.report import references
from mmeval.report.analysis import Analysis, RunData
from mmeval.report.answer_rows import MAX_WRONG, Thumbnails, answer_rows, row_tasks, wrong_answers
from mmeval.report.figures import bars_vs_human
from mmeval.report.human_panel import HumanPanel, page_rows


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in df.to_dict(orient="records")]


def _score_rows(table: pd.DataFrame, cols: list[str]) -> list[dict[str, Any]]:
    return [{"name": idx, "cells": [row.get(c, float("nan")) for c in cols]} for idx, row in table.iterrows()]


def _ci_rows(ci: pd.DataFrame) -> tuple[list[str], list[dict[str, Any]]]:
    if ci.empty:
        return [], []
    metrics = list(dict.fromkeys(ci["metric"]))
    rows = []
    for ds in dict.fromkeys(ci["dataset"]):
        sub = ci[ci["dataset"] == ds].set_index("metric")
        rows.append({"name": ds, "images": int(sub["images"].iloc[0]),
                     "cells": [sub.loc[m, ["value", "lo", "hi"]].tolist() if m in sub.index else [None] * 3
                               for m in metrics]})
    return metrics, rows


def run_page(rd: RunData, res: Analysis, *, heatmap_svg: str | None = None, files: Sequence[str] = (),
             max_wrong: int = MAX_WRONG, panel: HumanPanel | None = None) -> dict[str, Any]:
    """What report.html shows of one run (the context of its template); ``heatmap_svg``: the heatmap, as
    :func:`mmeval.report.figures.heatmap` wrote it, embedded inline; ``panel``: people measured on the same sample."""
    table = res.table
    task_cols = scoring.task_columns(table)
    avg = scoring.AVERAGE
    score_cols = [str(c) for c in table.columns]
    ci_metrics, ci_rows = _ci_rows(res.ci)
    bars = bars_vs_human([res.gap_series(rd.label)],
                         f"{rd.title}: accuracy per task (95% bootstrap CI) vs human expert (approx.)", task_cols)
    thumbs = Thumbnails()
    wrong, n_wrong = wrong_answers(rd.preds, max_wrong)
    rows = answer_rows(wrong, rd.image_root(), thumbs, max_wrong)
    pb = res.position_bias
    datasets = {p.dataset for p in rd.preds}
    return {
        "title": f"MMAD report: {rd.title}",
        "run": rd, "config": rd.config, "source": rd.record.source, "counts": res.counts,
        "skipped": len(rd.skipped), "usage": rd.usage, "files": list(files),
        "average": scoring.table_row(table, avg).get(avg, float("nan")),
        "average_ci": list(res.ci_of(avg, avg)),
        "human_average": references.reference_row(references.HUMAN).over(task_cols)[avg],
        "score_cols": score_cols, "score_rows": _score_rows(table, score_cols), "tasks": task_cols,
        "heatmap": heatmap_svg,
        "bars": bars, "gap": _records(res.human_gap), "human_caveat": references.HUMAN_CAVEAT,
        "reference_source": references.SOURCE,
        "ci_metrics": ci_metrics, "ci_rows": ci_rows, "bootstrap": res.bootstrap,
        "hall_rows": _records(res.hallucination), "hall": res.overall_hallucination(),
        "inconsistency": res.self_inconsistency, "fabrication": res.fabrication, "invalid": _records(res.invalid),
        "pb_rows": _records(pb), "pb_letters": list(dict.fromkeys(pb["letter"])) if not pb.empty else [],
        "det": res.detection_scores, "cal": res.calibration, "lat": res.latency,
        "circular": _records(res.circular), "loc": res.localisation,
        "wrong_rows": rows, "wrong_total": n_wrong, "wrong_shown": len(rows), "thumb_css": thumbs.css(),
        "wrong_tasks": row_tasks(rows),
        "comparable": references.measured_on_mmad(datasets), "not_comparable": references.NOT_COMPARABLE,
        "cache_hits": sum(int(u.get("cache_hits") or 0) for u in rd.usage),
        "changes": rd.changes, "data_check": _data_check(rd), "boosts": res.boosts, "boost_records": rd.record.boosts,
        "status": rd.status,
        "panel": page_rows(panel) if panel is not None else None,
    }


def _data_check(rd: RunData) -> dict[str, Any] | None:
    """The validity check written beside the run's data, if any: its verdicts, for the page to show."""
    from mmeval.report.data_check import load_data_check

    if not rd.record.source:
        return None
    try:
        check = load_data_check(Path(rd.record.source))
    except InputError as exc:
        return {"error": str(exc)}
    if check is None:
        return None
    return {"error": None, "verdicts": check.verdicts, "blind_average": check.blind_average,
            "chance_average": check.chance_average}
