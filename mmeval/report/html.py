"""Self-contained HTML reports (run and comparison): jinja2 templates with autoescaping, figures and
thumbnails embedded as base64, no external resource, so a report opens offline and can be mailed.

Everything a model wrote (responses, and the question texts from the data) goes through jinja2's
autoescaping: a response ``<script>`` renders as text.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mmeval import tasks as task_registry
from mmeval.predictions import Prediction
from mmeval.report import references
from mmeval.report import run_report as reports
from mmeval.report.analysis import RunData

THUMB_PX = 96
MAX_WRONG = 400
MAX_RESPONSE_CHARS = 2000


# --------------------------------------------------------------------------------------------- jinja


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞"
    return f"{v:.{digits}f}"


def _pval(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    v = float(value)
    return "< 0.0001" if v < 1e-4 else f"{v:.4f}"


def _signed(value: Any, digits: int = 1) -> str:
    s = _fmt(value, digits)
    return s if s == "–" or s.startswith("-") else "+" + s


def cell_colour(value: Any) -> str:
    """Background colour of a 0-100 value on the heatmaps' fixed scale (empty for missing values)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    if math.isnan(v):
        return ""
    import matplotlib

    cmap = matplotlib.colormaps[reports.CMAP]
    r, g, b, _ = cmap(min(max((v - reports.VMIN) / (reports.VMAX - reports.VMIN), 0.0), 1.0))
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("mmeval.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["f1"] = _fmt
    env.filters["f2"] = lambda v: _fmt(v, 2)
    env.filters["f3"] = lambda v: _fmt(v, 3)
    env.filters["pct"] = lambda v: (lambda t: t if t == "–" else t + "%")(_fmt(v))
    env.filters["pval"] = _pval
    env.filters["signed"] = _signed
    env.filters["colour"] = cell_colour
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


# -------------------------------------------------------------------------------------------- images


def png_b64(path: Path) -> str | None:
    return base64.b64encode(path.read_bytes()).decode("ascii") if path and path.is_file() else None


def fig_b64(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail_b64(path: Path, size: int = THUMB_PX) -> str | None:
    """A small JPEG of the image, base64; None when it cannot be read."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=75)
        return base64.b64encode(buf.getvalue()).decode("ascii")
    except Exception:  # noqa: BLE001 - a thumbnail must never break a report
        return None


def bars_vs_human(series: Sequence[dict[str, Any]], title: str) -> str:
    """Grouped bars per task: each series (label, values, optional lo/hi) beside the human expert (approx.).

    ``series``: dicts with ``label``, ``values`` (task -> %), optional ``lo``/``hi`` (task -> %).
    Returns a base64 PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = task_registry.task_names() + ["Average"]
    human = references.human_expert()
    unc = references.human_baseline()["uncertainty"].to_dict()
    all_series = list(series) + [{"label": "human expert (approx.)", "values": human, "human": True}]
    n = len(all_series)
    width = 0.8 / n
    x = np.arange(len(tasks))
    fig, ax = plt.subplots(figsize=(max(9.0, 1.3 * len(tasks) + 0.25 * n * len(tasks) / 3), 4.6 + 0.2 * (n // 4)))
    palette = plt.get_cmap("tab10")
    for i, s in enumerate(all_series):
        vals = np.array([float(s["values"].get(t, np.nan)) for t in tasks])
        offs = x - 0.4 + width * (i + 0.5)
        if s.get("human"):
            ax.bar(offs, vals, width, label=s["label"], color="#d9d9d9", edgecolor="#444444", hatch="//",
                   yerr=[unc.get(t, 0) for t in tasks], capsize=2)
            continue
        yerr = None
        if s.get("lo") and s.get("hi"):
            lo = np.array([float(s["lo"].get(t, np.nan)) for t in tasks])
            hi = np.array([float(s["hi"].get(t, np.nan)) for t in tasks])
            yerr = np.nan_to_num(np.vstack([vals - lo, hi - vals]), nan=0.0).clip(min=0)
        ax.bar(offs, vals, width, label=s["label"], color=palette(i % 10), yerr=yerr, capsize=2)
    ax.set_xticks(x)
    ax.set_xticklabels([t.replace(" ", "\n") for t in tasks], fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.axhline(50, color="#999999", lw=0.5, ls=":")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(n, 4), frameon=False)
    fig.tight_layout()
    return fig_b64(fig)


# ------------------------------------------------------------------------------------- wrong answers


def _image_path(root: Path | None, image: str) -> Path | None:
    if root is None:
        return None
    path = Path(image)
    return path if path.is_absolute() else root / path


def _answer_rows(preds: Iterable[Prediction], root: Path | None, thumbs: dict[str, tuple[str, str | None]],
                 limit: int, extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Rows of a wrong-answer table; ``thumbs`` collects image -> (css class, base64) across tables."""
    rows = []
    for p in preds:
        if len(rows) >= limit:
            break
        if p.image not in thumbs:
            path = _image_path(root, p.image)
            thumbs[p.image] = (f"im{len(thumbs)}", thumbnail_b64(path) if path else None)
        response = p.response or ""
        rows.append({
            "id": p.id, "image": p.image, "thumb": thumbs[p.image][0] if thumbs[p.image][1] else None,
            "dataset": p.dataset, "category": p.category, "task": p.task, "normal": p.is_normal,
            "question": p.question, "options": list(p.options.items()), "answer": p.answer,
            "answer_text": p.options.get(p.answer, ""), "choice": p.choice,
            "choice_text": p.options.get(p.choice, "") if p.choice else "",
            "response": response[:MAX_RESPONSE_CHARS] + (" …" if len(response) > MAX_RESPONSE_CHARS else ""),
            "error": p.error, "variant": p.variant or "", **(extra or {})})
    return rows


def wrong_answers(preds: Iterable[Prediction], limit: int = MAX_WRONG) -> tuple[list[Prediction], int]:
    """The plain questions and probes answered wrong (or invalid), in file order; and how many in all."""
    wrong = [p for p in preds if (p.variant is None or p.variant == "probe") and not p.correct]
    return wrong[:limit], len(wrong)


def thumb_css(thumbs: dict[str, tuple[str, str | None]]) -> list[tuple[str, str]]:
    return [(cls, b64) for cls, b64 in thumbs.values() if b64]


# ------------------------------------------------------------------------------------------- reports


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return df.to_dict(orient="records") if df is not None and not df.empty else []


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


def write_run_html(rd: RunData, res: dict[str, Any], path: Path, *, heatmap_png: Path | None = None,
                   files: Sequence[str] = (), max_wrong: int = MAX_WRONG) -> Path:
    """report.html for one run."""
    table: pd.DataFrame = res["table"]
    tasks = task_registry.task_names()
    score_cols = [c for c in tasks + ["Average"] + ["Recall", "Precision", "F1", "Overkill", "Miss"] if c in table]
    gap = res["human_gap"]
    ci_metrics, ci_rows = _ci_rows(res["ci"])
    avg_row = table.loc["Average"] if "Average" in table.index else pd.Series(dtype=float)
    avg_ci = res["ci"][(res["ci"]["dataset"] == "Average") & (res["ci"]["metric"] == "Average")] \
        if not res["ci"].empty else pd.DataFrame()
    bars = bars_vs_human([{"label": rd.label, "values": dict(zip(gap["task"], gap["run"])),
                           "lo": dict(zip(gap["task"], gap["lo"])), "hi": dict(zip(gap["task"], gap["hi"]))}],
                         f"{rd.title}: accuracy per task (95% bootstrap CI) vs human expert (approx.)")
    thumbs: dict[str, tuple[str, str | None]] = {}
    wrong, n_wrong = wrong_answers(rd.preds, max_wrong)
    rows = _answer_rows(wrong, rd.image_root(), thumbs, max_wrong)
    hall = res["hallucination"]
    overall = hall[(hall["dataset"] == "*") & (hall["category"] == "*")].iloc[0].to_dict() if not hall.empty else {}
    pb = res["position_bias"]
    context = {
        "title": f"MMAD report: {rd.title}",
        "run": rd, "config": rd.config, "source": rd.run.get("source", ""), "counts": res["counts"],
        "skipped": len(rd.skipped), "usage": rd.usage, "files": list(files),
        "average": float(avg_row.get("Average", float("nan"))),
        "average_ci": (avg_ci[["lo", "hi"]].iloc[0].tolist() if not avg_ci.empty else [None, None]),
        "human_average": references.human_expert().get("Average"),
        "score_cols": score_cols, "score_rows": _score_rows(table, score_cols), "tasks": tasks,
        "heatmap": png_b64(heatmap_png) if heatmap_png else None,
        "bars": bars, "gap": _records(gap), "human_caveat": references.HUMAN_CAVEAT,
        "reference_source": references.SOURCE,
        "ci_metrics": ci_metrics, "ci_rows": ci_rows, "bootstrap": res["bootstrap"],
        "hall_rows": _records(hall), "hall": overall, "inconsistency": res["self_inconsistency"],
        "fabrication": res["fabrication"], "invalid": _records(res["invalid"]),
        "pb_rows": _records(pb), "pb_letters": list(dict.fromkeys(pb["letter"])) if not pb.empty else [],
        "det": res["detection_scores"], "cal": res["calibration"], "lat": res["latency"],
        "circular": _records(res["circular"]),
        "wrong_rows": rows, "wrong_total": n_wrong, "wrong_shown": len(rows), "thumb_css": thumb_css(thumbs),
        "wrong_tasks": list(dict.fromkeys(r["task"] for r in rows)),
    }
    path.write_text(render("run_report.html.j2", **context), encoding="utf-8")
    return path


def write_compare_html(path: Path, context: dict[str, Any]) -> Path:
    """compare.html from the context :mod:`mmeval.report.compare` builds."""
    path.write_text(render("compare_report.html.j2", **context), encoding="utf-8")
    return path

