"""Run reports: scores.csv, scores.json and an annotated heatmap in the run directory."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from mmeval import scoring, task_registry
from mmeval.errors import InputError
from mmeval.predictions import read_predictions

#: one fixed colour scale for every heatmap, so two heatmaps can be compared by eye
VMIN, VMAX, CMAP = 0.0, 100.0, "RdYlGn"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


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
    payload = {"title": title, "scores": _clean(table.to_dict(orient="index")),
               "counts": scoring.counts(df), **extra}
    (out / "scores.json").write_text(json.dumps(_clean(payload), indent=2, ensure_ascii=False, default=str),
                                     encoding="utf-8")
    heatmap(table, out / "heatmap.png", title)
    return table


def write_run_report(run_dir: Path) -> pd.DataFrame:
    """Score a run directory (predictions.jsonl + run.json) into its report files."""
    pred_path = run_dir / "predictions.jsonl"
    if not pred_path.is_file():
        raise InputError(f"{run_dir}: no predictions.jsonl (is this a run directory?)")
    preds = read_predictions(pred_path)
    if not preds:
        raise InputError(f"{pred_path}: no predictions yet")
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8")) if (run_dir / "run.json").exists() else {}
    skipped = (json.loads((run_dir / "skipped.json").read_text(encoding="utf-8"))
               if (run_dir / "skipped.json").exists() else [])
    cfg = run.get("config", {})
    title = f"{cfg.get('model', preds[0].model)} · {cfg.get('shots', '?')}-shot · seed {cfg.get('seed', '?')}"
    extra = {"run": run, "skipped": {"count": len(skipped), "records": skipped}}
    return write_tables(scoring.frame(preds), run_dir, title, extra)
