"""The circuit board: a part in each ninth of the image, four layouts, drawn after a small rigid move.

A board is described by its parameters (layout, parts, colour, lighting, noise, specks), and
:func:`draw` renders them; a defect is painted by changing the parameters (a part removed, added,
moved) and drawing again, so the defective board differs from its normal self only where the
change is. Every layout holds each kind of part in every slot exactly once across the four layouts,
so "what sits in the top left part?" is answered by each kind equally often.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mmeval.data.synthetic.raster import SIZE, SS, Array, Point, lighting, shape, smooth, tint
from mmeval.data.synthetic.scenes import Scene, apply_specks, draw_specks

KINDS = ("chip", "cap", "res", "conn")  # in the order of the Object Structure answers
# kind of the part in slot s (row-major, top left first) on layout l: KINDS[(OFFSETS[s] + l) % 4]
OFFSETS = (0, 1, 2, 3, 2, 0, 1, 3, 1)
SIZES = {"chip": (18.0, 12.0), "cap": (12.0, 12.0), "res": (12.0, 5.0), "conn": (16.0, 8.0)}
BOARD_COLOURS = ((38, 112, 62), (40, 72, 132), (132, 42, 44), (92, 52, 112))
PAD = (196, 196, 188)
CELL = SIZE / 3


def slot_centre(slot: int) -> Point:
    row, col = divmod(slot, 3)
    return (col + 0.5) * CELL, (row + 0.5) * CELL


def kind_at(slot: int, layout: int) -> str:
    """The kind of part in a slot (0-8, row-major from the top left) on a layout."""
    return KINDS[(OFFSETS[slot] + layout) % 4]


def layout_parts(layout: int) -> list[dict[str, Any]]:
    parts = []
    for slot in range(9):
        kind = kind_at(slot, layout)
        x, y = slot_centre(slot)
        w, h = SIZES[kind]
        parts.append({"kind": kind, "x": x, "y": y, "w": w, "h": h, "rot": 0.0, "slot": slot})
    return parts


def _rect(x: float, y: float, rot: float) -> Callable[[float, float, float, float], list[Point]]:
    """Corners of a rectangle given in part coordinates (centre offset, half sizes), turned with the part."""
    c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))

    def rect(px: float, py: float, hw: float, hh: float) -> list[Point]:
        return [(x + (px + ex) * c - (py + ey) * s, y + (px + ex) * s + (py + ey) * c)
                for ex, ey in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))]

    return rect


def part_polys(p: dict[str, Any]) -> dict[str, list[list[Point]]]:
    """Polygons (board coordinates) of one part: body, metal (pins and ends) and footprint (for masks)."""
    rect = _rect(p["x"], p["y"], p["rot"])
    hw, hh = p["w"] / 2, p["h"] / 2
    out: dict[str, list[list[Point]]] = {"body": [], "metal": [], "footprint": [rect(0, 0, hw + 1.5, hh + 3.0)]}
    if p["kind"] == "chip":
        out["body"].append(rect(0, 0, hw, hh))
        for i in range(3):
            px = -hw + (i + 0.5) * p["w"] / 3
            out["metal"] += [rect(px, -hh - 1.4, 1.2, 1.5), rect(px, hh + 1.4, 1.2, 1.5)]
    elif p["kind"] == "res":
        out["body"].append(rect(0, 0, hw, hh))
        out["metal"] += [rect(-hw + 1.5, 0, 1.5, hh), rect(hw - 1.5, 0, 1.5, hh)]
    elif p["kind"] == "conn":
        out["body"].append(rect(0, 0, hw, hh))
        out["metal"] += [rect(px, hh + 1.2, 1.3, 1.3) for px in (-hw + 3, 0.0, hw - 3)]
    else:  # cap: drawn as circles, its pad as a strip below
        out["metal"].append(rect(0, hh - 1.0, hw + 1.0, 2.0))
    return out


def pads_of(p: dict[str, Any]) -> list[list[Point]]:
    """The solder pads a part sits on: its metal at the nominal place, slightly larger."""
    nominal = dict(p, rot=0.0)
    nominal["x"], nominal["y"] = slot_centre(p["slot"]) if p.get("slot") is not None else (p["x"], p["y"])
    return part_polys(nominal)["metal"]


def new_board(layout: int, rng: np.random.Generator) -> dict[str, Any]:
    parts = layout_parts(layout)
    colour = np.array(BOARD_COLOURS[layout], np.float32) + tint(rng, 6)
    params: dict[str, Any] = {
        "dx": float(rng.uniform(-3, 3)), "dy": float(rng.uniform(-3, 3)), "rot": float(rng.uniform(-2, 2)),
        "parts": parts, "pads": [poly for p in parts for poly in pads_of(p)],
        "light": lighting(rng, 0.1), "noise": smooth(rng, 6), "colour": colour,
        "grain": rng.normal(0, 1.5, (SIZE, SIZE, 1)).astype(np.float32),
    }
    params["specks"] = draw_specks(np.ones((SIZE, SIZE), np.float32), colour, rng)
    return params


def transform(params: dict[str, Any]) -> Callable[[list[Point], float], list[Point]]:
    t = math.radians(params["rot"])
    c, s = math.cos(t), math.sin(t)
    h = SIZE / 2

    def apply(points: list[Point], scale: float) -> list[Point]:
        return [((h + (x - h) * c - (y - h) * s + params["dx"]) * scale,
                 (h + (x - h) * s + (y - h) * c + params["dy"]) * scale) for x, y in points]

    return apply


def _traces() -> list[list[Point]]:
    """Traces joining neighbouring slots, the same on every layout."""
    lines = []
    for k in range(3):
        c = (k + 0.5) * CELL
        lines.append([(0.5 * CELL, c), (2.5 * CELL, c)])
        lines.append([(c, 0.5 * CELL), (c, 2.5 * CELL)])
    return lines


def _draw_part(d: ImageDraw.ImageDraw, p: dict[str, Any], tf: Callable[[list[Point], float], list[Point]]) -> None:
    polys = part_polys(p)
    for poly in polys["metal"]:
        d.polygon(tf(poly, SS), fill=(200, 200, 200))
    if p["kind"] == "cap":
        ((cx, cy),) = tf([(p["x"], p["y"])], SS)
        r = p["w"] / 2 * SS
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(176, 164, 140))
        d.ellipse((cx - 0.7 * r, cy - 0.7 * r, cx + 0.7 * r, cy + 0.7 * r), fill=(70, 70, 84))
        return
    body = {"chip": (28, 28, 32), "res": (132, 86, 52), "conn": (226, 220, 200)}[p["kind"]]
    for poly in polys["body"]:
        d.polygon(tf(poly, SS), fill=body)
    if p["kind"] == "conn":  # three dark sockets along the body
        for px in (-p["w"] / 2 + 3, 0.0, p["w"] / 2 - 3):
            hole = _rect(p["x"], p["y"], p["rot"])(px, 0, 1.4, 1.4)
            d.polygon(tf(hole, SS), fill=(60, 58, 56))


def draw(params: dict[str, Any]) -> Array:
    """Render a board from its parameters (the same parameters give the same pixels)."""
    tf = transform(params)
    board = tuple(int(v) for v in params["colour"])
    trace = tuple(int(min(255, v * 1.3 + 12)) for v in params["colour"])
    im = Image.new("RGB", (SIZE * SS, SIZE * SS), board)
    d = ImageDraw.Draw(im)
    for line in _traces():
        d.line(tf(line, SS), fill=trace, width=2 * SS)
    for poly in params["pads"]:
        d.polygon(tf(poly, SS), fill=PAD)
    for p in params["parts"]:
        _draw_part(d, p, tf)
    arr = np.asarray(im.resize((SIZE, SIZE), Image.Resampling.BOX), dtype=np.float32)
    arr = apply_specks(arr * (1 + 0.04 * params["noise"][..., None]) * params["light"], params["specks"])
    return np.clip(arr + params["grain"], 0, 255)


def footprint(params: dict[str, Any], part: dict[str, Any]) -> Array:
    tf = transform(params)
    polys = part_polys(part)["footprint"]

    def paint(d: ImageDraw.ImageDraw, s: float) -> None:
        for poly in polys:
            d.polygon(tf(poly, s), fill=255)

    return shape(paint)


def board(variant: int, rng: np.random.Generator) -> Scene:
    params = new_board(variant, rng)
    return Scene(draw(params), np.ones((SIZE, SIZE), np.float32), params["colour"], params=params)
