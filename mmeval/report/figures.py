"""Figures and images of the reports: the one colour scale, heatmaps, bars against the human expert,
base64 PNGs and thumbnails for self-contained pages."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mmeval import scoring, tasks
from mmeval.report import references
from mmeval.report.colours import ACCURACY, VMAX, VMIN

CMAP = ACCURACY.name
THUMB_PX = 96


def heatmap(table: pd.DataFrame, path: Path, title: str) -> None:
    """Rows x task columns (plus Average), annotated with the percentage."""
    cols = [c for c in tasks.task_names() + [scoring.AVERAGE] if c in table.columns]
    annotated_heatmap(table[cols].astype(float), path, title=title, fmt=".1f", cmap=CMAP, vmin=VMIN, vmax=VMAX,
                      label="accuracy (%)")


def new_figure(width: float, height: float) -> Any:
    """A matplotlib figure drawn without pyplot (no global state, and pyplot's import is not paid for)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def annotated_heatmap(data: pd.DataFrame, path: Path, *, title: str, fmt: str, cmap: str, vmin: float, vmax: float,
                      label: str) -> None:
    """One heatmap style for every table drawn: cells coloured on a fixed scale, each annotated with its value,
    missing cells left blank, column names wrapped at spaces. Saved as a PNG."""
    import numpy as np

    values = data.to_numpy(dtype=float)
    n_rows, n_cols = values.shape
    fig = new_figure(1.15 * n_cols + 2.5, 0.55 * n_rows + 1.8)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            r, g, b, _ = image.cmap(image.norm(v))
            dark = 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.45
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=9, color="white" if dark else "black")
    ax.set_xticks(range(n_cols), [str(c).replace(" ", "\n") for c in data.columns], fontsize=8)
    ax.set_yticks(range(n_rows), [str(r) for r in data.index])
    ax.set_xticks(np.arange(n_cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n_rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=0.5)
    ax.tick_params(which="both", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.colorbar(image, ax=ax, label=label)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def png_b64(path: Path) -> str | None:
    return base64.b64encode(path.read_bytes()).decode("ascii") if path and path.is_file() else None


def fig_b64(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
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
    import numpy as np

    cols = tasks.task_names() + [scoring.AVERAGE]
    human = references.human_expert()
    unc = references.human_baseline()["uncertainty"].to_dict()
    all_series = list(series) + [{"label": "human expert (approx.)", "values": human, "human": True}]
    n = len(all_series)
    width = 0.8 / n
    x = np.arange(len(cols))
    fig = new_figure(max(9.0, 1.3 * len(cols) + 0.25 * n * len(cols) / 3), 4.6 + 0.2 * (n // 4))
    ax = fig.add_subplot()
    palette = matplotlib.colormaps["tab10"]
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
