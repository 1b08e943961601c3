"""The report figures as SVG: well-formed, one coloured cell per value on the same colours as matplotlib's maps,
annotated, names from the data escaped, bars per series with their error bars, and laid out without overlaps."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from mmeval import scoring
from mmeval.report import colours, figures, references

NS = "{http://www.w3.org/2000/svg}"
XSS = "<script>alert(1)</script>"
#: the tasks the human expert was measured on (the tasks of the runs these figures draw)
ASKED = [t for t in references.human_expert() if t != scoring.AVERAGE]
COLS = ASKED + [scoring.AVERAGE]
AD, DC = "Anomaly Detection", "Defect Classification"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def by_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(NS + tag) if cls in (e.get("class") or "").split()]


def text_of(e: ET.Element) -> str:
    return "".join(e.itertext())


# --- colours ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["RdYlGn", "RdBu"])
@pytest.mark.parametrize("x", [0.0, 0.03, 0.1, 0.2345, 0.5, 0.61, 0.777, 0.95, 0.999, 1.0])
def test_scales_match_matplotlib(name: str, x: float) -> None:
    import matplotlib

    want = matplotlib.colormaps[name](x)[:3]
    got = colours.scale(name).at(x)
    assert max(abs(a - b) for a, b in zip(want, got, strict=True)) <= 1 / 255


def test_palette_is_tab10() -> None:
    import matplotlib

    assert list(colours.TAB10) == [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab10"].colors]


def test_cell_colour_on_the_fixed_scale() -> None:
    assert colours.cell_colour(100) == "#006837"  # RdYlGn's darkest green
    assert colours.cell_colour(0) == "#a50026"  # and darkest red
    assert colours.cell_colour(150) == "#006837" and colours.cell_colour(-3) == "#a50026"  # clipped
    assert [colours.cell_colour(v) for v in (float("nan"), None, "x")] == ["", "", ""]
    mid = colours.rgb(colours.cell_colour(62.5))
    assert mid != colours.rgb(colours.cell_colour(60))
    assert abs(mid[1] - colours.RD_YL_GN.at(0.625)[1]) <= 1 / 255


def test_unknown_scale_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="RdYlGn"):
        colours.scale("viridis")


# --- heatmaps --------------------------------------------------------------------------------------------------


@pytest.fixture
def table() -> pd.DataFrame:
    t = pd.DataFrame(float("nan"), index=["MVTec-AD", XSS, scoring.AVERAGE], columns=COLS)
    t.loc["MVTec-AD", [AD, DC, scoring.AVERAGE]] = [100.0, 0.0, 50.0]
    t.loc[XSS, [AD, scoring.AVERAGE]] = [42.25, 42.25]
    t.loc[scoring.AVERAGE, [AD, DC, scoring.AVERAGE]] = [71.125, 0.0, 46.1]
    return t


def test_heatmap_cells_are_coloured_and_annotated(table: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "heatmap.svg"
    svg = figures.heatmap(table, path, "model · 1-shot")
    assert path.read_text(encoding="utf-8") == svg
    root = parse(svg)
    cells = by_class(root, "rect", "cell")
    assert len(cells) == int(table.notna().sum().sum()) == 8
    fills = {text_of(c.find(NS + "title")): c.get("fill") for c in cells}
    assert fills[f"MVTec-AD · {AD}: 100.0"] == "#006837"
    assert fills[f"MVTec-AD · {DC}: 0.0"] == "#a50026"
    values = by_class(root, "text", "value")
    assert sorted(text_of(v) for v in values) == sorted(["100.0", "0.0", "50.0", "42.2", "42.2", "71.1", "0.0",
                                                         "46.1"])
    ink = {text_of(v): v.get("fill") for v in values}
    assert ink["100.0"] == "#ffffff" and ink["50.0"] == "#000000"  # white on dark green, black on pale yellow
    assert [text_of(t) for t in by_class(root, "text", "tick")] == ["0", "20", "40", "60", "80", "100"]
    title = root.find(NS + "title")
    assert title is not None and text_of(title) == "model · 1-shot"


def test_heatmap_leaves_missing_cells_blank(table: pd.DataFrame, tmp_path: Path) -> None:
    root = parse(figures.heatmap(table, tmp_path / "h.svg", "t"))
    cells = by_class(root, "rect", "cell")
    xs = sorted({float(c.get("x")) for c in cells})
    ys = sorted({float(c.get("y")) for c in cells})
    w, h = float(cells[0].get("width")), float(cells[0].get("height"))
    # MVTec-AD has Defect Localization missing: no cell and no text at that place
    x_dl, y_row = xs[0] + 2 * w, ys[0]
    assert not [c for c in cells if (float(c.get("x")), float(c.get("y"))) == (x_dl, y_row)]
    centres = {(float(v.get("x")), float(v.get("y"))) for v in by_class(root, "text", "value")}
    assert (round(x_dl + w / 2, 1), round(y_row + h / 2, 1)) not in centres
    assert len(centres) == len(cells)


def test_heatmap_escapes_names_from_the_data(table: pd.DataFrame, tmp_path: Path) -> None:
    svg = figures.heatmap(table, tmp_path / "h.svg", f"title {XSS}")
    assert "<script" not in svg and "&lt;script&gt;" in svg
    root = parse(svg)
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    assert XSS in [text_of(r) for r in by_class(root, "text", "row")]  # shown as text, as written


def test_heatmap_wraps_column_names_and_fits_long_row_names(tmp_path: Path) -> None:
    long = "a-very-long-dataset-name-from-somebody-s-data"
    t = pd.DataFrame([[55.0] * len(COLS)], index=[long], columns=COLS)
    root = parse(figures.heatmap(t, tmp_path / "h.svg", "t"))
    columns = by_class(root, "text", "column")
    assert [s.text for s in columns[0]] == ["Anomaly", "Detection"]
    row = by_class(root, "text", "row")[0]
    assert float(row.get("x")) - figures.text_width(long, figures.TEXT_PX) >= 0  # not cut off on the left
    cells = by_class(root, "rect", "cell")
    assert min(float(c.get("x")) for c in cells) > float(row.get("x"))
    width, height = float(root.get("width")), float(root.get("height"))
    bar = by_class(root, "rect", "scale")[0]
    right = max(float(c.get("x")) + float(c.get("width")) for c in cells)
    assert float(bar.get("x")) > right  # the colour bar beside the grid, not over it
    for label in by_class(root, "text", "label"):  # rotated, so the label runs along the bar
        assert float(label.get("x")) + figures.SMALL_PX / 2 <= width
    bottom = max(float(c.get("y")) + float(c.get("height")) for c in cells)
    assert bottom + 2 * figures.SMALL_PX * 1.2 <= height  # two lines of column names below the grid


def test_value_text_fits_in_its_cell(table: pd.DataFrame, tmp_path: Path) -> None:
    root = parse(figures.heatmap(table, tmp_path / "h.svg", "t"))
    w = float(by_class(root, "rect", "cell")[0].get("width"))
    assert all(figures.text_width(text_of(v), figures.TEXT_PX) < w for v in by_class(root, "text", "value"))


def test_diverging_heatmap(tmp_path: Path) -> None:
    data = pd.DataFrame([[5.0, -3.0, 0.0], [10.0, -10.0, float("nan")]], index=["rag", "agent"],
                        columns=[AD, DC, scoring.AVERAGE])
    root = parse(figures.annotated_heatmap(data, tmp_path / "a.svg", title="changes", fmt="+.1f", cmap="RdBu",
                                           vmin=-10, vmax=10, label="accuracy change vs none (points)"))
    assert sorted(text_of(v) for v in by_class(root, "text", "value")) == sorted(
        ["+5.0", "-3.0", "+0.0", "+10.0", "-10.0"])
    fills = {text_of(c.find(NS + "title")): c.get("fill") for c in by_class(root, "rect", "cell")}
    assert fills[f"agent · {AD}: +10.0"] == "#053061" and fills[f"agent · {DC}: -10.0"] == "#67001f"
    assert fills[f"rag · {scoring.AVERAGE}: +0.0"] == colours.to_hex(colours.RD_BU.at(0.5))
    assert [text_of(t) for t in by_class(root, "text", "tick")] == ["-10", "-5", "0", "5", "10"]
    assert " ".join(text_of(t) for t in by_class(root, "text", "label")) == "accuracy change vs none (points)"


# --- bars against the human expert -----------------------------------------------------------------------------


def series(label: str, value: float, ci: bool) -> dict:
    s: dict = {"label": label, "values": {c: value for c in COLS}}
    if ci:
        s["lo"] = {c: value - 5 for c in COLS}
        s["hi"] = {c: value + 5 for c in COLS}
    return s


def test_bars_per_series_and_task_with_error_bars() -> None:
    without = series("published", 30.0, ci=False)
    without["values"][DC] = float("nan")  # not published: no bar
    root = parse(figures.bars_vs_human([series("run A", 50.0, ci=True), without], "vs human", ASKED))
    groups = by_class(root, "g", "series")
    assert len(groups) == 3 and "human" in groups[2].get("class")
    bars = [by_class(g, "rect", "bar") for g in groups]
    assert [len(b) for b in bars] == [len(COLS), len(COLS) - 1, len(COLS)]
    assert {b.get("fill") for b in bars[0]} == {colours.TAB10[0]} and {b.get("fill") for b in bars[1]} == {
        colours.TAB10[1]}
    assert {b.get("fill") for b in bars[2]} == {"url(#mmeval-hatch)"}
    assert [p.get("id") for p in root.iter(NS + "pattern")] == ["mmeval-hatch"]
    errors = [by_class(g, "path", "err") for g in groups]
    assert [len(e) for e in errors] == [len(COLS), 0, len(COLS)]  # the run's CI and the human uncertainty
    frame = by_class(root, "rect", "frame")[0]
    top, height = float(frame.get("y")), float(frame.get("height"))
    assert all(math.isclose(float(b.get("height")), height / 2, abs_tol=0.15) for b in bars[0])  # 50 % is half
    assert by_class(root, "line", "half")  # the gridline at 50
    legend = [text_of(t) for t in root.find(f"{NS}g[@class='legend']").iter(NS + "text")]
    assert legend == ["run A", "published", "human expert (approx.)"]
    swatches = by_class(root, "rect", "swatch")
    assert min(float(s.get("y")) for s in swatches) > top + height  # the legend is below the bars
    assert max(float(s.get("y")) + 12 for s in swatches) <= float(root.get("height"))


def test_bars_for_the_tasks_asked_and_a_human_average_over_them() -> None:
    """A run asking some of the tasks, and one of a type the human expert was never measured on."""
    some = ASKED[:3]
    root = parse(figures.bars_vs_human([series("run A", 50.0, ci=True)], "some", some))
    human = [b for g in by_class(root, "g", "series") if "human" in g.get("class") for b in by_class(g, "rect", "bar")]
    assert [b.findtext(NS + "title").split(": ")[0] for b in human] == [
        f"human expert (approx.) · {t}" for t in some + [scoring.AVERAGE]]
    expected = sum(references.human_expert()[t] for t in some) / len(some)
    assert float(human[-1].findtext(NS + "title").split(": ")[1]) == pytest.approx(expected, abs=0.05)
    new = "Surface Finish"
    root = parse(figures.bars_vs_human([{"label": "run B", "values": {new: 70.0, **{t: 60.0 for t in some}}}],
                                       "new type", [*some, new]))
    groups = by_class(root, "g", "series")
    assert len(by_class(groups[0], "rect", "bar")) == len(some) + 1  # the run: every task it asks (no Average given)
    # the human expert: the tasks it was measured on, and no Average (it cannot average a task it never did)
    assert len(by_class(groups[1], "rect", "bar")) == len(some)


def test_bars_escape_labels() -> None:
    svg = figures.bars_vs_human([series(XSS, 60.0, ci=True)], f"{XSS} vs human", ASKED)
    assert "<script" not in svg
    root = parse(svg)
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    assert XSS in [text_of(t) for t in root.find(f"{NS}g[@class='legend']").iter(NS + "text")]


def test_bars_make_room_for_many_series() -> None:
    many = [series(f"model number {k} (1-shot, published)", 40.0 + k, ci=False) for k in range(9)]
    root = parse(figures.bars_vs_human(many, "nine", ASKED))
    bars = by_class(root, "rect", "bar")
    assert len(bars) == 10 * len(COLS)
    frame = by_class(root, "rect", "frame")[0]
    left, right = float(frame.get("x")), float(frame.get("x")) + float(frame.get("width"))
    assert all(left <= float(b.get("x")) and float(b.get("x")) + float(b.get("width")) <= right + 0.2 for b in bars)
    width = float(root.get("width"))
    for t in root.find(f"{NS}g[@class='legend']").iter(NS + "text"):  # every legend label inside the picture
        assert float(t.get("x")) + figures.text_width(text_of(t), figures.LEGEND_PX) <= width
