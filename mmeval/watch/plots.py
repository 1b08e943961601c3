"""The curve drawn: ``curve.svg`` (matplotlib) and ``curve.html``, a self-contained page embedding it.

One panel per task the data asks plus the Average: accuracy against step with its 95% band, the base
(step 0) drawn as a hollow marker, the best step (highest Average) marked in every panel, and, on MMAD's
own data, the approximate human expert and the chosen published models as horizontal lines (on other
data they are left out: they were measured on other questions). The page adds the table of points and
the skipped steps; it loads nothing from anywhere (no script, font or image outside the file).
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from mmeval.report import references
from mmeval.report.colours import TAB10
from mmeval.watch.curve import AVERAGE, CurvePoint, CurveRecord, frame

CURVE_SVG, CURVE_HTML = "curve.svg", "curve.html"
#: published models drawn beside the human expert by default
DEFAULT_REFERENCES = ("gpt-4o",)


def reference_lines(names: tuple[str, ...]) -> list[tuple[str, dict[str, float], str]]:
    """(label, task -> accuracy, line style) of the human expert and the named published models."""
    lines = [(references.reference_row(references.HUMAN).label, references.human_expert(), "--")]
    for name in names:
        row = references.reference_row(name)
        lines.append((row.label, row.scores, ":"))
    return lines


def _panels(points: list[CurvePoint]) -> dict[str, list[CurvePoint]]:
    by_task: dict[str, list[CurvePoint]] = defaultdict(list)
    for p in points:
        by_task[p.task].append(p)
    order = [t for t in dict.fromkeys(p.task for p in points) if t != AVERAGE]
    return {t: sorted(by_task[t], key=lambda p: p.step) for t in [*order, AVERAGE] if t in by_task}


def draw_svg(record: CurveRecord, refs: tuple[str, ...] = DEFAULT_REFERENCES) -> str:
    """The figure as SVG text (text as text in a generic font family, no date: the same curve gives the same bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(record.points)
    lines = reference_lines(refs) if record.on_mmad else []
    n = max(1, len(panels))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    with matplotlib.rc_context({"svg.hashsalt": "mmeval-curve", "svg.fonttype": "none", "font.size": 9}):
        height = 2.7 * rows + 0.5
        fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, height), squeeze=False, sharey=True)
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        for ax, (task, pts) in zip(axes.flat, panels.items(), strict=False):
            _panel(ax, task, pts, record.best_step, lines)
        if lines or record.best_step is not None:
            handles, labels = axes.flat[n - 1].get_legend_handles_labels()
            fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), frameon=False, fontsize=8)
        # fixed margins (tight_layout measures every text and costs more than the drawing)
        fig.subplots_adjust(left=0.6 / (3.3 * cols), right=0.98, top=1 - 0.3 / height, bottom=0.9 / height,
                            wspace=0.12, hspace=0.45)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
    return buf.getvalue()


def _panel(ax: Any, task: str, pts: list[CurvePoint], best: int | None,
           lines: list[tuple[str, dict[str, float], str]]) -> None:
    steps = [p.step for p in pts]
    acc = [p.accuracy for p in pts]
    colour = TAB10[0] if task != AVERAGE else "#1f2d3d"
    ax.fill_between(steps, [p.ci_low for p in pts], [p.ci_high for p in pts], color=colour, alpha=0.18, linewidth=0,
                    label="95% interval")
    ax.plot(steps, acc, "-o", color=colour, markersize=3.5, linewidth=1.4, label="accuracy")
    base = [p for p in pts if p.step == 0]
    if base:
        ax.plot([0], [base[0].accuracy], "o", markerfacecolor="white", markeredgecolor=colour, markersize=7,
                label="base (step 0)")
    for i, (label, scores, style) in enumerate(lines):
        value = scores.get(task, math.nan)
        if not math.isnan(value):
            ax.axhline(value, linestyle=style, linewidth=1, color=TAB10[(i + 1) % len(TAB10)], label=label)
    if best is not None:
        ax.axvline(best, color="#b3261e", linewidth=0.9, alpha=0.7, label=f"best step ({best})")
    ax.set_title(task, fontsize=9.5)
    ax.set_xlabel("step")
    if ax.get_subplotspec().is_first_col():
        ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)


def write_html(path: Path, record: CurveRecord, svg: str, title: str, refs: tuple[str, ...]) -> Path:
    """curve.html: the figure inline, the points and the skipped steps (autoescaped jinja2)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("mmeval.watch", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda v, d=1: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"
    table = frame(record.points)
    steps = sorted(set(table["step"]))
    tasks_ = list(_panels(record.points))
    cells = {(r.step, r.task): r for r in record.points}
    html = env.get_template("curve.html.j2").render(
        title=title, svg=_strip_prolog(svg), steps=steps, tasks=tasks_, cells=cells, record=record,
        skipped=[s for s in record.steps if s.status == "skipped"],
        refs=[label for label, _, _ in reference_lines(refs)] if record.on_mmad else [])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def _strip_prolog(svg: str) -> str:
    """The SVG element alone (no XML declaration or doctype), to sit inside the page."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def write_figures(out: Path, record: CurveRecord, title: str, refs: tuple[str, ...] = DEFAULT_REFERENCES) -> None:
    svg = draw_svg(record, refs)
    tmp = out / (CURVE_SVG + ".tmp")
    tmp.write_text(svg, encoding="utf-8")
    tmp.replace(out / CURVE_SVG)
    write_html(out / CURVE_HTML, record, svg, title, refs)
