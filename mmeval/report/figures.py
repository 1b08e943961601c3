"""Figures of the reports, as SVG written from jinja2 templates, and thumbnails for self-contained pages.

Why SVG and not matplotlib: every ``mmeval run`` writes its report, and importing matplotlib and drawing two
figures cost about a second, more than the rest of a one-question run. jinja2 is loaded for the pages anyway;
an SVG is text it writes in milliseconds, the pages embed it inline (they stay self-contained and open
offline), and it scales without blurring. The SVG templates autoescape like the pages, so a dataset or
category name from the data renders as text, never as markup.

Nothing here measures fonts: a text is taken as 0.6 x its font size wide per character (a little wider than
DejaVu Sans or Arial on average), and every layout leaves room by that estimate.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mmeval import scoring
from mmeval.report import references
from mmeval.report.colours import ACCURACY, TAB10, VMAX, VMIN, Scale, is_dark, scale, to_hex

THUMB_PX = 96
FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"
PAD = 10
#: font sizes: titles, cell values and row labels, axis and column labels, legend
TITLE_PX, TEXT_PX, SMALL_PX, LEGEND_PX = 14, 12, 10.5, 11
HEATMAP_TEMPLATE, BARS_TEMPLATE = "heatmap.svg.j2", "bars.svg.j2"
HUMAN_FILL, HUMAN_EDGE = "#d9d9d9", "#444444"
#: width of a heatmap's colour bar, and the gap between it and the grid
BAR_W, BAR_GAP = 14.0, 18.0


def text_width(text: str, size: float) -> float:
    """Estimated width of ``text`` at font size ``size`` (no font metrics here: 0.6 em a character)."""
    return 0.6 * size * len(text)


def wrap(label: str) -> list[str]:
    """A column label, one word a line (task names are two or three short words)."""
    return str(label).split() or [""]


def fit_lines(text: str, size: float, width: float) -> list[str]:
    """``text`` wrapped at spaces into lines of at most ``width`` (a longer word gets a line of its own)."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}", size) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def r1(x: float) -> float:
    """Coordinates to 0.1 px: short SVG text, no visible rounding."""
    return round(x, 1)


def render_svg(template: str, **context: Any) -> str:
    """An SVG template rendered with the pages' autoescaping environment."""
    from mmeval.report.html import render

    return render(template, font=FONT, **context)


# --- heatmaps -------------------------------------------------------------------------------------------------


def heatmap(table: pd.DataFrame, path: Path, title: str) -> str:
    """Rows x task columns (plus Average), annotated with the percentage, on the fixed 0-100 scale.

    Writes the SVG to ``path`` and returns its text, for a page to embed."""
    cols = scoring.task_columns(table) + [scoring.AVERAGE]
    return annotated_heatmap(table[cols].astype(float), path, title=title, fmt=".1f", cmap=ACCURACY.name,
                             vmin=VMIN, vmax=VMAX, label="accuracy (%)")


@dataclass(frozen=True)
class Grid:
    """Where a heatmap's parts go: cell size, grid origin, colour bar, and the picture's size."""

    cell_w: float
    cell_h: float
    x: float
    y: float
    rows: int
    cols: int
    col_lines: int
    bar_h: float
    tick_w: float
    label_lines: tuple[str, ...]
    title_w: float

    @property
    def bottom(self) -> float:
        return self.y + self.rows * self.cell_h

    @property
    def right(self) -> float:
        return self.x + self.cols * self.cell_w

    @property
    def bar_x(self) -> float:
        return self.right + BAR_GAP

    @property
    def label_x(self) -> float:
        """Centre line of the first line of the colour bar's (rotated) label."""
        return self.bar_x + BAR_W + 6 + self.tick_w + 8 + SMALL_PX / 2

    @property
    def width(self) -> float:
        label_right = self.label_x + (len(self.label_lines) - 0.5) * SMALL_PX * 1.2
        return max(label_right + PAD, self.title_w + 2 * PAD)

    @property
    def height(self) -> float:
        labels = self.bottom + 6 + self.col_lines * SMALL_PX * 1.2
        return max(labels, self.y + self.bar_h) + PAD


def heatmap_grid(data: pd.DataFrame, values: list[str], ticks: list[str], *, title: str, label: str) -> Grid:
    """The layout of a heatmap, wide enough for its longest row name, column word, value and tick; cells at least
    120 px tall together, so that the colour bar beside them (as tall) reads."""
    words = [w for c in data.columns for w in wrap(c)]
    cell_w = max(64.0, max((text_width(w, SMALL_PX) for w in words), default=0) + 10,
                 max((text_width(v, TEXT_PX) for v in values), default=0) + 10)
    row_w = max((text_width(str(r), TEXT_PX) for r in data.index), default=0)
    rows, cols = data.shape
    cell_h = max(30.0, 120.0 / max(rows, 1))
    bar_h = max(rows * cell_h, max(text_width(w, SMALL_PX) for w in label.split() or [""]) + 10)
    return Grid(cell_w=cell_w, cell_h=cell_h, x=PAD + row_w + 8, y=PAD + TITLE_PX + 14, rows=rows, cols=cols,
                col_lines=max((len(wrap(c)) for c in data.columns), default=1),
                bar_h=bar_h, label_lines=tuple(fit_lines(label, SMALL_PX, bar_h - 10)),
                tick_w=max(text_width(t, SMALL_PX) for t in ticks), title_w=text_width(title, TITLE_PX))


def colour_ticks(vmin: float, vmax: float) -> list[float]:
    """Ticks of a colour bar: 0, 20, ... 100 on the accuracy scale; else five, the limits and the middle included."""
    if (vmin, vmax) == (VMIN, VMAX):
        return [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    return [vmin + (vmax - vmin) * k / 4 for k in range(5)]


def tick_label(value: float) -> str:
    return f"{round(value, 1):g}"


def heatmap_cells(data: pd.DataFrame, grid: Grid, colours: Scale, *, fmt: str, vmin: float,
                  vmax: float) -> list[dict[str, Any]]:
    """One coloured, annotated cell per value; missing values have none (they stay blank)."""
    cells = []
    for i, (row, values) in enumerate(data.iterrows()):
        for j, (col, v) in enumerate(values.items()):
            if not math.isfinite(float(v)):
                continue
            fill = colours.colour(float(v), vmin, vmax)
            cells.append({"x": r1(grid.x + j * grid.cell_w), "y": r1(grid.y + i * grid.cell_h),
                          "cx": r1(grid.x + (j + 0.5) * grid.cell_w), "cy": r1(grid.y + (i + 0.5) * grid.cell_h),
                          "fill": to_hex(fill), "ink": "#ffffff" if is_dark(fill) else "#000000",
                          "text": format(float(v), fmt), "tip": f"{row} · {col}: {format(float(v), fmt)}"})
    return cells


def colour_bar(grid: Grid, colours: Scale, *, vmin: float, vmax: float) -> dict[str, Any]:
    """The colour bar right of the grid: its gradient (the scale's anchors), ticks and label."""
    n = len(colours.anchors) - 1
    ticks = [{"y": r1(grid.y + grid.bar_h * (1 - (t - vmin) / (vmax - vmin))), "text": tick_label(t)}
             for t in colour_ticks(vmin, vmax)]
    return {"id": f"mmeval-scale-{colours.name}", "x": r1(grid.bar_x), "y": r1(grid.y), "w": BAR_W,
            "h": r1(grid.bar_h), "tick_x": r1(grid.bar_x + BAR_W + 6), "mark_x1": r1(grid.bar_x + BAR_W),
            "mark_x2": r1(grid.bar_x + BAR_W + 4), "ticks": ticks,
            "label_lines": [{"x": r1(grid.label_x + k * SMALL_PX * 1.2), "text": line}
                            for k, line in enumerate(grid.label_lines)],
            "label_y": r1(grid.y + grid.bar_h / 2),
            "stops": [{"offset": round(k / n, 4), "colour": a} for k, a in enumerate(colours.anchors)]}


def annotated_heatmap(data: pd.DataFrame, path: Path, *, title: str, fmt: str, cmap: str, vmin: float, vmax: float,
                      label: str) -> str:
    """One heatmap style for every table drawn: cells coloured on a fixed scale, each annotated with its value,
    missing cells left blank, column names wrapped at spaces, a colour bar. Written as SVG to ``path``; returns
    the SVG text."""
    colours = scale(cmap)
    values = [format(float(v), fmt) for v in data.to_numpy(dtype=float).ravel() if math.isfinite(v)]
    ticks = [tick_label(t) for t in colour_ticks(vmin, vmax)]
    grid = heatmap_grid(data, values, ticks, title=title, label=label)
    columns = [{"x": r1(grid.x + (j + 0.5) * grid.cell_w), "lines": wrap(c)} for j, c in enumerate(data.columns)]
    rows = [{"x": r1(grid.x - 8), "y": r1(grid.y + (i + 0.5) * grid.cell_h), "text": str(r)}
            for i, r in enumerate(data.index)]
    svg = render_svg(HEATMAP_TEMPLATE, w=r1(grid.width), h=r1(grid.height), title=title,
                     title_x=r1(_centred((grid.x + grid.right) / 2, grid.title_w, grid.width)),
                     title_y=r1(PAD + TITLE_PX), small=SMALL_PX, text=TEXT_PX, title_px=TITLE_PX,
                     cell_w=r1(grid.cell_w), cell_h=r1(grid.cell_h), col_y=r1(grid.bottom + 6 + SMALL_PX),
                     cells=heatmap_cells(data, grid, colours, fmt=fmt, vmin=vmin, vmax=vmax), columns=columns,
                     rows=rows, bar=colour_bar(grid, colours, vmin=vmin, vmax=vmax))
    path.write_text(svg, encoding="utf-8")
    return svg


def _centred(centre: float, width: float, total: float) -> float:
    """A centre for a text of ``width``, moved in just enough to stay inside 0-``total`` with the padding."""
    return min(max(centre, PAD + width / 2), total - PAD - width / 2)


# --- bars against the human expert ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plot:
    """Where the bar chart's parts go: the plot area (area_w x area_h at x, y), its groups, the legend below."""

    x: float
    y: float
    group_w: float
    groups: int
    series: int
    label_lines: int
    legend_cols: int
    legend_item_w: float
    title_w: float
    area_h: float = 240.0

    @property
    def area_w(self) -> float:
        return self.groups * self.group_w

    @property
    def bar_w(self) -> float:
        return 0.8 * self.group_w / self.series

    def bar_x(self, group: int, series: int) -> float:
        return self.x + self.group_w * (group + 0.1) + self.bar_w * series

    def y_of(self, value: float) -> float:
        return self.y + self.area_h * (1 - min(max(value, 0.0), 100.0) / 100)

    @property
    def legend_y(self) -> float:
        return self.y + self.area_h + 6 + self.label_lines * SMALL_PX * 1.2 + 14

    @property
    def legend_rows(self) -> int:
        return math.ceil(self.series / self.legend_cols)

    @property
    def width(self) -> float:
        return max(self.x + self.area_w + PAD, self.legend_cols * self.legend_item_w + 2 * PAD,
                   self.title_w + 2 * PAD)

    @property
    def height(self) -> float:
        return self.legend_y + self.legend_rows * LEGEND_PX * 1.6 + PAD


def bar_plot(cols: list[str], labels: list[str], title: str) -> Plot:
    """The layout of the bar chart: groups wide enough for their bars and column words, a legend of up to four
    columns wide enough for its longest label."""
    n = len(labels)
    words = [w for c in cols for w in wrap(c)]
    group_w = max(84.0, 12 * n / 0.8, max(text_width(w, SMALL_PX) for w in words) + 10)
    return Plot(x=PAD + SMALL_PX + 6 + text_width("100", SMALL_PX) + 6, y=PAD + TITLE_PX + 14, group_w=group_w,
                groups=len(cols), series=n, label_lines=max(len(wrap(c)) for c in cols), legend_cols=min(n, 4),
                legend_item_w=max(text_width(s, LEGEND_PX) for s in labels) + 12 + 6 + 18,
                title_w=text_width(title, TITLE_PX))


def _value(values: Any, task: str) -> float:
    try:
        return float(values.get(task, math.nan))
    except (TypeError, ValueError):
        return math.nan


def error_bar(plot: Plot, x: float, lo: float, hi: float) -> dict[str, float]:
    """A vertical line from lo to hi with caps, at ``x``."""
    return {"x": r1(x), "y1": r1(plot.y_of(lo)), "y2": r1(plot.y_of(hi)), "c1": r1(x - 2), "c2": r1(x + 2)}


def series_bars(plot: Plot, cols: list[str], s: dict[str, Any], i: int,
                unc: dict[str, float]) -> tuple[list[dict[str, Any]], list[dict[str, float]]]:
    """The bars of one series (none where its value is missing) and their error bars: the series' lo/hi
    when both are given, the uncertainty for the human expert."""
    bars, errors = [], []
    human = bool(s.get("human"))
    has_ci = bool(s.get("lo")) and bool(s.get("hi"))
    for g, task in enumerate(cols):
        v = _value(s["values"], task)
        if not math.isfinite(v):
            continue
        x, top = plot.bar_x(g, i), plot.y_of(v)
        bars.append({"x": r1(x), "y": r1(top), "w": r1(plot.bar_w), "h": r1(plot.y_of(0) - top),
                     "tip": f"{s['label']} · {task}: {v:.1f}"})
        if human:
            lo, hi = v - unc.get(task, 0.0), v + unc.get(task, 0.0)
        elif has_ci:
            lo, hi = _value(s["lo"], task), _value(s["hi"], task)
            lo = min(lo, v) if math.isfinite(lo) else v
            hi = max(hi, v) if math.isfinite(hi) else v
        else:
            continue
        errors.append(error_bar(plot, x + plot.bar_w / 2, lo, hi))
    return bars, errors


def legend(plot: Plot, drawn: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Legend entries below the plot (each series' swatch and label), row by row, centred under it."""
    total = plot.legend_cols * plot.legend_item_w
    left = _centred(plot.x + plot.area_w / 2, total, plot.width) - total / 2
    out = []
    for k, s in enumerate(drawn):
        row, col = divmod(k, plot.legend_cols)
        x, y = left + col * plot.legend_item_w, plot.legend_y + row * LEGEND_PX * 1.6
        out.append({"x": r1(x), "y": r1(y), "text_x": r1(x + 18), "text_y": r1(y + 6), "text": s["label"],
                    "human": s["human"], "fill": s["fill"]})
    return out


def bars_vs_human(series: Sequence[dict[str, Any]], title: str, asked: Sequence[str]) -> str:
    """Grouped bars per task: each series (label, values, optional lo/hi) beside the human expert (approx.).

    ``series``: dicts with ``label``, ``values`` (task -> %), optional ``lo``/``hi`` (task -> %); ``asked``: the
    tasks drawn (those the runs ask), then their Average. The human expert has a bar where the paper gives a
    figure, and an Average over the same tasks. Returns the SVG text, for a page to embed inline.
    """
    cols = list(asked) + [scoring.AVERAGE]
    unc = {str(k): float(v) for k, v in references.human_baseline()["uncertainty"].to_dict().items()}
    expert = references.reference_row(references.HUMAN).over(list(asked))
    all_series = list(series) + [{"label": "human expert (approx.)", "values": expert, "human": True}]
    labels = [str(s["label"]) for s in all_series]
    plot = bar_plot(cols, labels, title)
    drawn = []
    for i, s in enumerate(all_series):
        bars, errors = series_bars(plot, cols, s, i, unc)
        human = bool(s.get("human"))
        drawn.append({"label": labels[i], "human": human, "fill": HUMAN_FILL if human else TAB10[i % len(TAB10)],
                      "bars": bars, "errors": errors})
    y_ticks = [{"y": r1(plot.y_of(t)), "text": str(t)} for t in range(0, 101, 20)]
    columns = [{"x": r1(plot.x + (g + 0.5) * plot.group_w), "lines": wrap(c)} for g, c in enumerate(cols)]
    return render_svg(BARS_TEMPLATE, w=r1(plot.width), h=r1(plot.height), title=title,
                      title_x=r1(_centred(plot.x + plot.area_w / 2, plot.title_w, plot.width)),
                      title_y=r1(PAD + TITLE_PX), small=SMALL_PX, legend_px=LEGEND_PX, title_px=TITLE_PX,
                      px=r1(plot.x), py=r1(plot.y), pw=r1(plot.area_w), ph=r1(plot.area_h),
                      tick_x1=r1(plot.x - 4), tick_x=r1(plot.x - 6), right=r1(plot.x + plot.area_w),
                      mid_y=r1(plot.y_of(50)), y_ticks=y_ticks, columns=columns,
                      col_y=r1(plot.y + plot.area_h + 6 + SMALL_PX), series=drawn,
                      legend=legend(plot, drawn), human_fill=HUMAN_FILL, human_edge=HUMAN_EDGE,
                      ylabel_x=r1(PAD + SMALL_PX / 2), ylabel_y=r1(plot.y + plot.area_h / 2))


# --- thumbnails -----------------------------------------------------------------------------------------------


def thumbnail_b64(path: Path, size: int = THUMB_PX) -> str | None:
    """A small JPEG of the image, base64; None when it cannot be read.

    A JPEG is decoded at 1/2, 1/4 or 1/8 of its size when that still leaves twice the thumbnail's (``draft``,
    as ``Image.thumbnail`` does on an image not yet loaded): MMAD's photographs run to several megapixels and a
    report embeds hundreds of them. Other formats are decoded whole.
    """
    try:
        from PIL import Image

        with Image.open(path) as opened:
            opened.draft(None, (2 * size, 2 * size))
            im = opened.convert("RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=75)
        return base64.b64encode(buf.getvalue()).decode("ascii")
    except Exception:  # noqa: BLE001 - a thumbnail must never break a report
        return None
