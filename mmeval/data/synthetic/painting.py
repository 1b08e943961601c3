"""Defects painted onto a normal scene, inside a grid cell chosen beforehand.

The cell comes first (uniformly, by the caller), then the defect is placed in it: so every region of
the 3x3 grid is the Localization answer equally often, whatever the product. Defects are painted
in the product's own shades (the palette of :meth:`Scene.shade`) or by removing material (what lies
beneath shows through), never in colours foreign to the product, so a colour histogram does not
give them away; every defect keeps a minimum contrast to the picture it was painted on, so a careful
human always can.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import ImageDraw

from mmeval.data.synthetic import board
from mmeval.data.synthetic.raster import (
    SIZE,
    Array,
    Point,
    blend,
    blob_points,
    blur,
    dilate,
    erode,
    line_alpha,
    poly_alpha,
    shape,
)
from mmeval.data.synthetic.scenes import DARK, LIGHT, Scene
from mmeval.regions import cell_of

Cell = tuple[int, int]
Painted = tuple[Array, Array]  # (image, binary mask)
Painter = Callable[[Scene, np.random.Generator, Cell], Painted]

MIN_AREA, MAX_AREA = 0.005, 0.06  # defect mask area, as a fraction of the image
MIN_CONTRAST = 30.0  # grey levels: the most changed tenth of a defect's pixels differs at least this much
IN_CELL = 0.6  # at least this share of a defect's mask lies inside its cell
MARGIN = 5  # px: a defect's anchor point stays this far inside its cell
CELL = SIZE / 3


def _in_cell(cell: Cell, margin: float) -> Array:
    row, col = cell
    y0, x0 = row * CELL + margin, col * CELL + margin
    box = np.zeros((SIZE, SIZE), bool)
    box[math.ceil(y0):math.floor(y0 + CELL - 2 * margin), math.ceil(x0):math.floor(x0 + CELL - 2 * margin)] = True
    return box


def _pick(where: Array, rng: np.random.Generator) -> Point:
    ys, xs = np.nonzero(where)
    if not len(xs):
        raise ValueError("no room for a defect in this cell")
    i = int(rng.integers(len(xs)))
    return float(xs[i] + rng.uniform(0, 1)), float(ys[i] + rng.uniform(0, 1))


def anchor(scene: Scene, rng: np.random.Generator, cell: Cell) -> Point:
    """A point on the product's surface inside the cell."""
    return _pick(erode(scene.support > 0.9, 5) & _in_cell(cell, MARGIN), rng)


def _colour(scene: Scene, rng: np.random.Generator, p_light: float) -> Array:
    return scene.shade(LIGHT if rng.random() < p_light else DARK)


def _fill(scene: Scene, colour: Array) -> Array:
    return np.broadcast_to(colour, scene.image.shape)


def scratch(scene: Scene, rng: np.random.Generator, cell: Cell) -> Painted:
    cx, cy = anchor(scene, rng, cell)
    length, ang = rng.uniform(12, 26), rng.uniform(0, math.pi)
    ux, uy = math.cos(ang), math.sin(ang)
    bend = rng.uniform(-3, 3)
    pts = [(cx - ux * length / 2, cy - uy * length / 2), (cx - uy * bend, cy + ux * bend),
           (cx + ux * length / 2, cy + uy * length / 2)]
    width = rng.uniform(1.0, 1.8)
    alpha = line_alpha(pts, width) * scene.support * rng.uniform(0.7, 1.0)
    img = blend(scene.image, alpha, _fill(scene, _colour(scene, rng, 0.55)))
    return img, dilate(line_alpha(pts, width + 2.0) * scene.support > 0.3)


def hole(scene: Scene, rng: np.random.Generator, cell: Cell) -> Painted:
    cx, cy = anchor(scene, rng, cell)
    alpha = poly_alpha(blob_points(cx, cy, rng.uniform(3.5, 7), rng))
    img = blend(scene.image, blur(alpha, 0.8) * rng.uniform(0.8, 1.0), _fill(scene, scene.shade(DARK)))
    return img, dilate(alpha > 0.3)


def stain(scene: Scene, rng: np.random.Generator, cell: Cell) -> Painted:
    cx, cy = anchor(scene, rng, cell)
    r = rng.uniform(6, 11)
    alpha = blur(poly_alpha(blob_points(cx, cy, r, rng, rough=0.3)), r / 3) * scene.support
    factor = rng.uniform(0.58, 0.68) if rng.random() < 0.6 else rng.uniform(1.3, 1.4)
    img = blend(scene.image, alpha * rng.uniform(0.85, 1.0), np.clip(scene.image * np.float32(factor), 0, 255))
    return img, alpha > 0.15


def _jagged(cx: float, cy: float, rng: np.random.Generator) -> list[Point]:
    ang = rng.uniform(0, 2 * math.pi)
    pts = [(cx, cy)]
    for _ in range(int(rng.integers(5, 8))):
        ang += rng.uniform(-0.8, 0.8)
        step = rng.uniform(3, 5)
        x, y = pts[-1]
        pts.append((x + step * math.cos(ang), y + step * math.sin(ang)))
    mx, my = float(np.mean([p[0] for p in pts])), float(np.mean([p[1] for p in pts]))
    return [(x - mx + cx, y - my + cy) for x, y in pts]  # centred on the anchor


def crack(scene: Scene, rng: np.random.Generator, cell: Cell) -> Painted:
    pts = _jagged(*anchor(scene, rng, cell), rng)
    width = rng.uniform(1.0, 1.6)
    alpha = line_alpha(pts, width) * scene.support * rng.uniform(0.75, 1.0)
    img = blend(scene.image, alpha, _fill(scene, scene.shade(DARK)))
    return img, dilate(line_alpha(pts, width + 2.0) * scene.support > 0.3)


def cut(scene: Scene, rng: np.random.Generator, cell: Cell) -> Painted:
    cx, cy = anchor(scene, rng, cell)
    length, ang = rng.uniform(10, 20), rng.uniform(0, math.pi)
    ux, uy = math.cos(ang), math.sin(ang)
    pts = [(cx - ux * length / 2, cy - uy * length / 2), (cx + ux * length / 2, cy + uy * length / 2)]
    width = rng.uniform(1.8, 2.8)
    fringe = line_alpha(pts, width + 2.0)
    img = blend(scene.image, fringe * 0.5, _fill(scene, scene.shade(LIGHT)))
    img = blend(img, line_alpha(pts, width) * rng.uniform(0.8, 1.0), _fill(scene, scene.shade(DARK)))
    return img, dilate(fringe > 0.3)


def thread(scene: Scene, rng: np.random.Generator, cell: Cell) -> Painted:
    cx, cy = anchor(scene, rng, cell)
    ang = rng.uniform(0, 2 * math.pi)
    pts = [(0.0, 0.0)]
    for _ in range(8):
        ang += rng.uniform(-0.5, 0.5)
        x, y = pts[-1]
        pts.append((x + 3.5 * math.cos(ang), y + 3.5 * math.sin(ang)))
    mx, my = float(np.mean([p[0] for p in pts])), float(np.mean([p[1] for p in pts]))
    pts = [(x - mx + cx, y - my + cy) for x, y in pts]
    width = rng.uniform(1.1, 1.6)
    img = blend(scene.image, line_alpha(pts, width) * rng.uniform(0.75, 1.0), _fill(scene, _colour(scene, rng, 0.7)))
    return img, dilate(line_alpha(pts, width + 2.0) > 0.3)


def contamination(scene: Scene, rng: np.random.Generator, cell: Cell) -> Painted:
    cx, cy = anchor(scene, rng, cell)
    spread = rng.uniform(2.5, 4.5)
    strokes = []
    for _ in range(int(rng.integers(4, 8))):
        x, y = cx + rng.normal(0, spread), cy + rng.normal(0, spread)
        a, ln = rng.uniform(0, math.pi), rng.uniform(0.5, 3.5)
        strokes.append(((x - ln * math.cos(a), y - ln * math.sin(a)), (x + ln * math.cos(a), y + ln * math.sin(a)),
                        rng.uniform(1.2, 2.4)))

    def draw(d: ImageDraw.ImageDraw, s: float) -> None:
        for (x0, y0), (x1, y1), w in strokes:
            d.line([(x0 * s, y0 * s), (x1 * s, y1 * s)], fill=255, width=max(1, round(w * s)))
            r = w * s / 2
            for px, py in ((x0 * s, y0 * s), (x1 * s, y1 * s)):
                d.ellipse((px - r, py - r, px + r, py + r), fill=255)

    alpha = shape(draw) * np.clip(scene.support * 2, 0, 1)
    img = blend(scene.image, alpha * rng.uniform(0.8, 1.0), _fill(scene, _colour(scene, rng, 0.3)))
    return img, blur(alpha, 2.0) > 0.12


def bite(scene: Scene, rng: np.random.Generator, cell: Cell) -> Painted:
    """A piece broken off an edge inside the cell: what lies beneath shows through (notch, chip)."""
    assert scene.rims is not None and scene.solid is not None and scene.beneath is not None
    bx, by = _pick(scene.rims & _in_cell(cell, MARGIN), rng)
    piece = poly_alpha(blob_points(bx, by, rng.uniform(4.5, 7.5), rng, rough=0.2)) * scene.solid
    img = blend(scene.image, piece, scene.beneath)
    return img, dilate(piece > 0.3)


# --------------------------------------------------------------------------------- circuit board parts

def _board_change(change: Callable[[dict, dict, np.random.Generator], Array]) -> Painter:
    """A painter that edits the board's parameters (the part in the cell) and draws it again."""

    def paint(scene: Scene, rng: np.random.Generator, cell: Cell) -> Painted:
        params = dict(scene.params)
        params["parts"] = [dict(q) for q in scene.params["parts"]]
        part = next(q for q in params["parts"] if q["slot"] == cell[0] * 3 + cell[1])
        mask = change(params, part, rng)
        return board.draw(params), mask > 0.3

    return paint


def _missing(params: dict, part: dict, rng: np.random.Generator) -> Array:
    params["parts"].remove(part)
    return board.footprint(params, part)


def _extra(params: dict, part: dict, rng: np.random.Generator) -> Array:
    sx, sy = rng.choice([-1, 1], 2)
    x, y = part["x"] + sx * 13.5 + rng.uniform(-1.5, 1.5), part["y"] + sy * 13.5 + rng.uniform(-1.5, 1.5)
    if rng.random() < 0.5:
        extra = {"kind": "res", "x": x, "y": y, "w": 8.0, "h": 3.5, "rot": float(rng.choice([0.0, 90.0])), "slot": None}
    else:
        extra = {"kind": "cap", "x": x, "y": y, "w": 7.0, "h": 7.0, "rot": 0.0, "slot": None}
    params["parts"].append(extra)
    return board.footprint(params, extra)


def _misplaced(params: dict, part: dict, rng: np.random.Generator) -> Array:
    old = dict(part)
    step, ang = rng.uniform(3.5, 6), rng.uniform(0, 2 * math.pi)
    part["x"], part["y"] = old["x"] + step * math.cos(ang), old["y"] + step * math.sin(ang)
    part["rot"] = float(rng.choice([-1, 1]) * rng.uniform(14, 32))
    return np.maximum(board.footprint(params, old), board.footprint(params, part))


PAINTERS: dict[str, Painter] = {
    "scratch": scratch, "hole": hole, "stain": stain, "crack": crack, "cut": cut, "thread": thread,
    "contamination": contamination, "notch": bite, "chip": bite,
    "missing_component": _board_change(_missing),
    "extra_component": _board_change(_extra),
    "misplaced_component": _board_change(_misplaced),
}


# ------------------------------------------------------------------------------------------ checks

def contrast(before: Array, after: Array, mask: Array) -> float:
    """How strongly a defect shows: the change (largest channel) that its most changed tenth reaches.

    At least a dozen pixels count, so a defect cannot pass on a single bright pixel; a tenth, not more,
    because masks are drawn a little wider than thin defects (a scratch's mask includes its margins).
    """
    delta = np.sort(np.abs(after - before).max(axis=2)[mask])[::-1]
    k = max(12, delta.size // 10)
    return float(delta[k - 1]) if delta.size >= k else 0.0


def placed_well(before: Array, after: Array, mask: Array, cell: Cell) -> bool:
    """Small, visible, and clearly in its cell: the centroid away from the cell's borders, most of it inside."""
    area = float(mask.mean())
    if not MIN_AREA <= area <= MAX_AREA:
        return False
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean() + 0.5, xs.mean() + 0.5
    if cell_of(cy, cx, SIZE, SIZE) != cell or any(abs(v - k * CELL) < 3 for v in (cx, cy) for k in (1, 2)):
        return False
    return float(_in_cell(cell, 0)[mask].mean()) >= IN_CELL and contrast(before, after, mask) >= MIN_CONTRAST


def paint(render: Callable[[], Scene], defect: str, cell: Cell, rng: np.random.Generator,
          tries: int = 80) -> Painted:
    """A defective image and its mask, in the given cell; redrawn until small, visible and clearly placed."""
    scene = render()
    for attempt in range(tries):
        if attempt and attempt % 10 == 0:
            scene = render()
        try:
            img, mask = PAINTERS[defect](scene, rng, cell)
        except ValueError:  # no room for this defect in this cell on this draw
            continue
        if placed_well(scene.image, img, mask, cell):
            return img, mask
    raise RuntimeError(f"could not place a {defect} in cell {cell} in {tries} tries")
