"""The expert's map drawn for an MLLM, in the five notations MMAD tried.

- ``bbox``: red boxes around the marked regions, on the query image;
- ``contour``: the marked regions' outlines in red;
- ``highlight``: the marked regions tinted, the rest of the image as it is;
- ``mask``: the marked regions in white on black, nothing of the image;
- ``heatmap``: the raw map (not binarised) as colours blended over the image.

Drawn on the query resized so its long side is at most ``max_side`` pixels (512 as in MMAD).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from mmeval.experts.binarise import Binarisation, binarise, boxes, normalise

Notation = Literal["bbox", "contour", "highlight", "mask", "heatmap"]
NOTATIONS: tuple[Notation, ...] = ("bbox", "contour", "highlight", "mask", "heatmap")
RED = (255, 0, 0)
HIGHLIGHT = np.array([253, 231, 37], dtype=np.float32)  # the bright end of viridis


def _resized(image: Image.Image, max_side: int) -> Image.Image:
    w, h = image.size
    scale = min(1.0, max_side / max(w, h))
    if scale < 1.0:
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)
    return image


def fitted(query_path: str, full_map: np.ndarray, max_side: int = 512) -> tuple[Image.Image, np.ndarray]:
    """The query resized for drawing, and ``full_map`` (at the query's pixel size) resized to match it."""
    with Image.open(query_path) as im:
        base = _resized(im.convert("RGB"), max_side)
    amap = np.asarray(Image.fromarray(np.asarray(full_map, dtype=np.float32)).resize(base.size,
                                                                                    Image.Resampling.BILINEAR))
    return base, amap


def marks_anything(amap: np.ndarray, notation: Notation, rule: Binarisation) -> bool:
    """Whether the overlay of ``amap`` (as :func:`fitted` gives it) shows any mark: a marked region, or for
    the heat map a map that is not the same everywhere."""
    if notation == "heatmap":
        return bool(normalise(amap).any())
    return bool(binarise(amap, rule).any())


def draw(query_path: str, full_map: np.ndarray, notation: Notation, rule: Binarisation,
         max_side: int = 512) -> Image.Image:
    """The overlay of ``full_map`` (already at the query's pixel size) in ``notation``."""
    return render(*fitted(query_path, full_map, max_side), notation, rule)


def render(base: Image.Image, amap: np.ndarray, notation: Notation, rule: Binarisation) -> Image.Image:
    """The overlay of ``amap`` on ``base`` (both as :func:`fitted` gives them) in ``notation``."""
    if notation == "heatmap":
        import matplotlib

        colours = matplotlib.colormaps["jet"](normalise(amap))[..., :3] * 255
        blend = 0.5 * np.asarray(base, dtype=np.float32) + 0.5 * colours
        return Image.fromarray(blend.clip(0, 255).astype(np.uint8))
    marked = binarise(amap, rule)
    if notation == "mask":
        return Image.fromarray((marked * 255).astype(np.uint8)).convert("RGB")
    if notation == "highlight":
        arr = np.asarray(base, dtype=np.float32).copy()
        arr[marked] = 0.45 * arr[marked] + 0.55 * HIGHLIGHT
        return Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    out = base.copy()
    if notation == "contour":
        edge = marked & ~ndimage.binary_erosion(marked, iterations=2)
        arr = np.asarray(out).copy()
        arr[edge] = RED
        return Image.fromarray(arr)
    pen = ImageDraw.Draw(out)
    for top, left, bottom, right in boxes(marked, rule.max_boxes):
        pen.rectangle((left, top, right - 1, bottom - 1), outline=RED, width=2)
    return out


def montage(query_path: str, full_map: np.ndarray, rule: Binarisation, side: int = 256) -> Image.Image:
    """The query and its five notations side by side, labelled: what ``--boost agent`` can show a model."""
    from PIL import ImageFont

    panels = [("query", Image.open(query_path).convert("RGB"))]
    panels += [(n, draw(query_path, full_map, n, rule)) for n in NOTATIONS]
    label_h = 22
    sheet = Image.new("RGB", (side * len(panels), side + label_h), "white")
    pen = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, (name, panel) in enumerate(panels):
        scale = side / max(panel.size)
        panel = panel.resize((round(panel.width * scale), round(panel.height * scale)), Image.Resampling.BICUBIC)
        sheet.paste(panel, (i * side + (side - panel.width) // 2, label_h + (side - panel.height) // 2))
        pen.text((i * side + 6, 4), name, fill="black", font=font)
    return sheet
