"""Normal images of the five drawn products (the circuit board lives in :mod:`.board`).

Each renderer takes the product variant (0-3, see :mod:`.catalogue`) and a random generator and
returns a :class:`Scene`: the picture plus what a defect painter needs to know about it (where the
product's surface is, what shows through where material is missing, where its edges are). Every draw
varies harmlessly: position or phase, a slight turn, lighting, a tint, sensor noise and a few isolated
specks in the product's own darker and lighter shades. The specks matter: they put the shades that
defects are painted in into normal images too, so a colour histogram cannot tell the two apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmeval.data.synthetic.raster import (
    SIZE,
    XX,
    YY,
    Array,
    blend,
    dilate,
    disc_alpha,
    finish,
    lighting,
    polygon_distance,
    rotated,
    smooth,
    tint,
)

DARK, LIGHT = 0.4, 1.45  # the product's own deep and light shades, as factors of its colour


@dataclass
class Scene:
    """A rendered normal image and what defect painters need to know about it."""

    image: Array  # H x W x 3 float, 0-255
    support: Array  # H x W in [0, 1]: the product's surface (surface defects stay on it)
    colour: Array  # (3,) the product's main colour in this image, lighting included
    rims: Array | None = None  # H x W bool: edges a piece can break off (object outlines, tile joints)
    solid: Array | None = None  # H x W in [0, 1]: the material a broken-off piece removes
    beneath: Array | None = None  # H x W x 3: what a broken-off piece exposes
    params: dict[str, Any] = field(default_factory=dict)

    def shade(self, factor: float) -> Array:
        """A shade of the product's own colour: the palette every surface defect is painted from."""
        return np.clip(self.colour * np.float32(factor), 0, 255)


Specks = list[tuple[Array, Array]]  # (coverage, colour) of each speck


def draw_specks(where: Array, colour: Array, rng: np.random.Generator) -> Specks:
    """A few isolated specks (1-3 px) in the product's dark or light shade: harmless, and on every image."""
    ys, xs = np.nonzero(where > 0.9)
    out = []
    for _ in range(int(rng.integers(2, 7))):
        i = int(rng.integers(len(xs)))
        alpha = disc_alpha(xs[i] + 0.5, ys[i] + 0.5, rng.uniform(0.6, 1.1)) * rng.uniform(0.7, 1.0) * where
        out.append((alpha, np.clip(colour * (DARK if rng.random() < 0.6 else LIGHT), 0, 255)))
    return out


def apply_specks(img: Array, layers: Specks) -> Array:
    for alpha, colour in layers:
        img = blend(img, alpha, np.broadcast_to(colour, img.shape))
    return img


def specks(img: Array, where: Array, colour: Array, rng: np.random.Generator) -> Array:
    return apply_specks(img, draw_specks(where, colour, rng))


def _surface(img: Array, colour: Array, rng: np.random.Generator, **extra: Any) -> Scene:
    """A texture filling the frame: specks, sensor noise, the whole image as support."""
    full = np.ones((SIZE, SIZE), np.float32)
    return Scene(finish(specks(img, full, colour, rng), rng), full, colour, **extra)


# ------------------------------------------------------------------------------------------ textures

CARPET_COLOURS = ((146, 64, 58), (62, 84, 140), (64, 112, 70), (176, 150, 112))


def carpet(variant: int, rng: np.random.Generator) -> Scene:
    u, v = rotated(rng.uniform(-3, 3), *rng.uniform(0, 20, 2))
    period = rng.uniform(4.8, 5.4)
    weave = (np.sin(2 * math.pi * u / period) * np.sin(2 * math.pi * v / period),  # criss-cross
             np.sin(2 * math.pi * (u + v) / (1.4 * period)),  # diagonal twill
             np.sin(2 * math.pi * v / period),  # horizontal ribs
             np.sin(2 * math.pi * u / period))[variant]  # vertical ribs
    light = lighting(rng)
    colour = np.array(CARPET_COLOURS[variant], np.float32) + tint(rng, 6)
    img = colour * (1 + 0.16 * weave[..., None] + 0.05 * smooth(rng, 10)[..., None]) * light
    return _surface(img, colour * float(light.mean()), rng)


WOOD_COLOURS = ((206, 170, 120), (160, 92, 60), (108, 74, 50), (150, 146, 136))
WOOD_ANGLES = (0.0, 90.0, -45.0, 45.0)  # grain top-bottom, left-right, falling, rising


def wood(variant: int, rng: np.random.Generator) -> Scene:
    u, v = rotated(WOOD_ANGLES[variant] + rng.uniform(-4, 4), *rng.uniform(0, 40, 2))
    warp = 5 * smooth(rng, 40) + 2 * np.sin(v / rng.uniform(14, 22))
    period = rng.uniform(7, 9.5)
    phase = u + warp
    grain = 0.6 * np.sin(2 * math.pi * phase / period) ** 3 + 0.4 * np.sin(2 * math.pi * phase / (period * 3.3))
    light = lighting(rng)
    colour = np.array(WOOD_COLOURS[variant], np.float32) + tint(rng, 8)
    img = colour * (1 + 0.11 * grain[..., None] + 0.03 * smooth(rng, 12)[..., None]) * light
    return _surface(img, colour * float(light.mean()), rng)


TILE_COLOURS = ((92, 122, 152), (110, 140, 104), (176, 100, 70), (196, 160, 70))
# width, height, row offset (fraction of the width), turn in degrees
TILE_LAYOUTS = ((32.0, 32.0, 0.0, 0.0), (40.0, 20.0, 0.5, 0.0), (30.0, 30.0, 0.0, 45.0), (64.0, 16.0, 0.0, 0.0))
JOINT = np.array([196, 196, 190], np.float32)
BODY = np.array([214, 204, 186], np.float32)  # the pale fired body under the glaze


def tile(variant: int, rng: np.random.Generator) -> Scene:
    pw, ph, offset, turn = TILE_LAYOUTS[variant]
    u, v = rotated(turn + rng.uniform(-2, 2), *rng.uniform(0, 64, 2))
    row = np.floor(v / ph)
    u = u + (row % 2) * offset * pw
    col = np.floor(u / pw)
    fu, fv = u - col * pw, v - row * ph
    glaze = np.clip(np.minimum(np.minimum(fu, pw - fu), np.minimum(fv, ph - fv)) - 1.2, 0, 1)  # 0 in a joint
    shade = np.sin(col * 12.9898 + row * 78.233 + rng.uniform(0, 6.3)) * 0.06  # per-tile shade
    light = lighting(rng, 0.08)
    colour = np.array(TILE_COLOURS[variant], np.float32) + tint(rng, 6)
    tiles = colour * (1 + shade[..., None] + 0.04 * smooth(rng, 3)[..., None])
    img = (tiles * glaze[..., None] + JOINT * (1 - glaze[..., None])) * light
    rims = (glaze > 0.5) & dilate(glaze < 0.5)  # glaze pixels touching a joint: where a chip starts
    beneath = BODY * (1 + 0.05 * smooth(rng, 2)[..., None]) * light
    return _surface(img, colour * float(light.mean()), rng, rims=rims, solid=glaze, beneath=beneath)


# ------------------------------------------------------------------------------------------- objects

BACKGROUND = np.array([32, 33, 38], np.float32)


def _background(rng: np.random.Generator) -> Array:
    return (BACKGROUND + tint(rng, 3)) * (1 + 0.06 * smooth(rng, 24)[..., None]) * lighting(rng, 0.2)


def _object(obj: Array, alpha: Array, face: Array, colour: Array, rng: np.random.Generator) -> Scene:
    """An object on the dark background: specks on its face, its outline as rims, the background beneath."""
    bg = _background(rng)
    img = specks(obj * alpha[..., None] + bg * (1 - alpha[..., None]), face, colour, rng)
    solid = alpha > 0.5
    return Scene(finish(img, rng), face, colour, rims=solid & dilate(~solid), solid=alpha, beneath=bg)


WASHER_COLOURS = ((176, 176, 182), (196, 168, 96), (184, 112, 80), (100, 100, 106))
# sides of the opening (0: round), its apothem (inradius) and the angle of its first corner in degrees
WASHER_OPENINGS = ((0, 18.0, 0.0), (4, 15.0, 45.0), (6, 16.5, 0.0), (3, 11.0, -90.0))


def washer(variant: int, rng: np.random.Generator) -> Scene:
    cx, cy = SIZE / 2 + rng.uniform(-3, 3, 2)
    r_out = rng.uniform(47, 50)
    sides, apothem, corner = WASHER_OPENINGS[variant]
    dx, dy = XX - cx, YY - cy
    r, theta = np.hypot(dx, dy), np.arctan2(dy, dx)
    turn = math.radians(corner + rng.uniform(-6, 6))
    inner = polygon_distance(dx, dy, sides, apothem * rng.uniform(0.97, 1.03), turn)
    alpha = np.clip(r_out - r + 0.5, 0, 1) * np.clip(inner + 0.5, 0, 1)
    light = math.radians(rng.uniform(200, 250))  # lit from the upper left
    colour = np.array(WASHER_COLOURS[variant], np.float32) + tint(rng, 8)
    shade = 1 + 0.16 * np.cos(theta - light) + 0.03 * np.sin(r * rng.uniform(2.2, 2.8) + rng.uniform(0, 6.3))
    edge = np.clip(np.minimum(r_out - r, inner) / 3, 0, 1)  # rounded rims are darker
    obj = colour * (shade * (0.78 + 0.22 * edge))[..., None]
    return _object(obj, alpha, alpha, colour, rng)


NUT_COLOURS = ((152, 152, 146), (200, 172, 80), (70, 80, 118), (150, 104, 62))
NUT_SHAPES = ((4, 45.0), (5, -90.0), (6, 0.0), (8, 22.5))  # sides, angle of the first corner


def nut(variant: int, rng: np.random.Generator) -> Scene:
    cx, cy = SIZE / 2 + rng.uniform(-3, 3, 2)
    sides, corner = NUT_SHAPES[variant]
    radius, phi = rng.uniform(49, 51), math.radians(corner + rng.uniform(-6, 6))
    apothem = radius * math.cos(math.pi / sides)
    dx, dy = XX - cx, YY - cy
    normals = [phi + math.pi / sides + k * 2 * math.pi / sides for k in range(sides)]
    proj = np.stack([dx * math.cos(a) + dy * math.sin(a) for a in normals])
    dist = proj.max(0) - apothem  # signed distance to the outline (negative inside)
    facet = np.array(normals, np.float32)[proj.argmax(0)]  # the edge each pixel faces
    r = np.hypot(dx, dy)
    hole_r = rng.uniform(14, 16)
    alpha = np.clip(-dist + 0.5, 0, 1) * np.clip(r - (hole_r - 4) + 0.5, 0, 1)  # the bore shows the background
    light = math.radians(rng.uniform(200, 250))
    colour = np.array(NUT_COLOURS[variant], np.float32) + tint(rng, 8)
    chamfer = np.clip(-dist / 4, 0, 1)
    facets = chamfer + (1 - chamfer) * (0.72 + 0.22 * np.cos(facet - light))
    shade = (1 + 0.06 * np.cos(np.arctan2(dy, dx) - light)) * facets
    thread = 0.5 + 0.2 * np.sin(r * 2.4 + rng.uniform(0, 6.3))
    body = np.where(r < hole_r, thread, shade)
    face = alpha * np.clip(r - hole_r - 0.5, 0, 1)
    return _object(colour * body[..., None], alpha, face, colour, rng)


RENDERERS: dict[str, Callable[[int, np.random.Generator], Scene]] = {
    "carpet": carpet, "wood": wood, "tile": tile, "washer": washer, "nut": nut,
}
