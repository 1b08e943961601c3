"""Run reports: scores.csv, scores.json and an annotated heatmap in the run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from mmeval import scoring
from mmeval import tasks as task_registry
from mmeval.jsonsafe import json_safe

#: one fixed colour scale for every heatmap, so two heatmaps can be compared by eye
VMIN, VMAX, CMAP = 0.0, 100.0, "RdYlGn"


def heatmap(table: pd.DataFrame, path: Path, title: str) -> None:
    """Rows x task columns (plus Average), annotated with the percentage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    cols = [c for c in task_registry.task_names() + ["Average"] if c in table.columns]
    data = table[cols].astype(float)
    fig, ax = plt.subplots(figsize=(1.15 * len(cols) + 2.5, 0.55 * len(data) + 1.8))
    sns.heatmap(data, annot=True, fmt=".1f", vmin=VMIN, vmax=VMAX, cmap=CMAP, cbar_kws={"label": "accuracy (%)"},
                linewidths=0.5, ax=ax)
    ax.set_title(title)
    ax.set_xticklabels([c.replace(" ", "\n") for c in cols], rotation=0, fontsize=8)
    ax.set_ylabel("")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_tables(df: pd.DataFrame, out: Path, title: str, extra: dict[str, Any]) -> pd.DataFrame:
    """scores.csv, scores.json and heatmap.png from a per-question frame."""
    out.mkdir(parents=True, exist_ok=True)
    table = scoring.score_table(df)
    table.to_csv(out / "scores.csv", float_format="%.4f")
    payload = {"title": title, "scores": json_safe(table.to_dict(orient="index")),
               "counts": scoring.counts(df), **extra}
    (out / "scores.json").write_text(json.dumps(json_safe(payload), indent=2, ensure_ascii=False, default=str),
                                     encoding="utf-8")
    heatmap(table, out / "heatmap.png", title)
    return table


#: usage fields that are counts or money, so adding them over processes and resumed sessions makes sense
_ADDITIVE = ("questions", "requests", "retries", "rate_limited", "errors", "refusals", "empty", "cache_hits",
             "prompt_tokens", "completion_tokens", "total_tokens", "estimated_cost_usd", "model_seconds",
             "answered_by_detector", "answered_by_chance")


def usage_totals(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """Token usage, requests and estimated cost summed over every process and resumed session."""
    totals: dict[str, Any] = {}
    for info in sessions:
        for key in _ADDITIVE:
            value = info.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    if any(info.get("estimated_cost_usd", 0) is None for info in sessions):
        totals["estimated_cost_usd"] = None  # an unknown price anywhere makes the total unknown
    return {"totals": totals, "sessions": len(sessions)}


def write_run_report(run_dir: Path, *, cycle_ms: float | None = None, html: bool = True,
                     n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Score a run directory (predictions.jsonl + run.json) into its report files.

    scores.csv, scores.json, heatmap.png (as before), plus analysis.json (hallucination, bootstrap CIs,
    calibration, latency, CircularEval: see :mod:`mmeval.report.analysis`), ci.csv, mmad_answers.json (the
    benchmark questions in the official MMAD answers format) and report.html.
    """
    from mmeval.report import analysis
    from mmeval.report.official import export_answers

    rd = analysis.load_run(run_dir)
    preds = rd.preds
    extra = {"run": rd.run, "skipped": {"count": len(rd.skipped), "records": rd.skipped},
             "usage": usage_totals(rd.usage)}
    table = write_tables(scoring.frame(preds), run_dir, rd.title, extra)
    res = analysis.analyse(preds, run_dir=run_dir, cycle_ms=cycle_ms, n_boot=n_boot, seed=seed)
    (run_dir / "analysis.json").write_text(
        json.dumps({"title": rd.title, **analysis.to_jsonable(res)}, indent=1, ensure_ascii=False, default=str),
        encoding="utf-8")
    res["ci"].to_csv(run_dir / "ci.csv", index=False, float_format="%.4f")
    export_answers(analysis.plain_preds(preds), run_dir / "mmad_answers.json")
    if html:
        from mmeval.report.html import write_run_html

        files = ["scores.csv", "scores.json", "ci.csv", "analysis.json", "mmad_answers.json", "heatmap.png"]
        write_run_html(rd, res, run_dir / "report.html", heatmap_png=run_dir / "heatmap.png", files=files)
    return table
