"""The report figures' colours: the same as matplotlib's maps, without importing it."""

from __future__ import annotations

import pytest

from mmeval.report import colours

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
