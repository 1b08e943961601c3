"""Figures and images of the reports: the one colour scale, heatmaps, bars against the human expert,
base64 PNGs and thumbnails for self-contained pages."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mmeval import scoring, tasks
from mmeval.report import references

#: one fixed colour scale for every heatmap and coloured table cell, so two of them compare by eye
VMIN, VMAX, CMAP = 0.0, 100.0, "RdYlGn"
THUMB_PX = 96


def heatmap(table: pd.DataFrame, path: Path, title: str) -> None:
    """Rows x task columns (plus Average), annotated with the percentage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    cols = [c for c in tasks.task_names() + [scoring.AVERAGE] if c in table.columns]
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


def cell_colour(value: Any) -> str:
    """Background colour of a 0-100 value on the heatmaps' fixed scale (empty for missing values)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    if math.isnan(v):
        return ""
    import matplotlib

    cmap = matplotlib.colormaps[CMAP]
    r, g, b, _ = cmap(min(max((v - VMIN) / (VMAX - VMIN), 0.0), 1.0))
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


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

        with Image.open(path) as opened:
            im = opened.convert("RGB")
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

    cols = tasks.task_names() + [scoring.AVERAGE]
    human = references.human_expert()
    unc = references.human_baseline()["uncertainty"].to_dict()
    all_series = list(series) + [{"label": "human expert (approx.)", "values": human, "human": True}]
    n = len(all_series)
    width = 0.8 / n
    x = np.arange(len(cols))
    fig, ax = plt.subplots(figsize=(max(9.0, 1.3 * len(cols) + 0.25 * n * len(cols) / 3), 4.6 + 0.2 * (n // 4)))
    palette = plt.get_cmap("tab10")
    for i, s in enumerate(all_series):
        vals = np.array([float(s["values"].get(t, np.nan)) for t in cols])
        offs = x - 0.4 + width * (i + 0.5)
        if s.get("human"):
            ax.bar(offs, vals, width, label=s["label"], color="#d9d9d9", edgecolor="#444444", hatch="//",
                   yerr=[unc.get(t, 0) for t in cols], capsize=2)
            continue
        yerr = None
        if s.get("lo") and s.get("hi"):
            lo = np.array([float(s["lo"].get(t, np.nan)) for t in cols])
            hi = np.array([float(s["hi"].get(t, np.nan)) for t in cols])
            yerr = np.nan_to_num(np.vstack([vals - lo, hi - vals]), nan=0.0).clip(min=0)
        ax.bar(offs, vals, width, label=s["label"], color=palette(i % 10), yerr=yerr, capsize=2)
    ax.set_xticks(x)
    ax.set_xticklabels([t.replace(" ", "\n") for t in cols], fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.axhline(50, color="#999999", lw=0.5, ls=":")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(n, 4), frameon=False)
    fig.tight_layout()
    return fig_b64(fig)
