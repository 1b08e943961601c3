"""Drawing primitives shared by the scenes and the defect painters: numpy arrays, Pillow shapes.

Images are float arrays (H x W x 3, 0-255) until they are written; shapes are anti-aliased by drawing
them ``SS`` times larger and box-filtering down, so thin lines and small blobs keep soft, honest edges.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 128  # image side in pixels
SS = 4  # supersampling factor for anti-aliased shapes

Array = np.ndarray
Point = tuple[float, float]
YY, XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5


def smooth(rng: np.random.Generator, scale: float) -> Array:
    """Smooth zero-mean noise with unit standard deviation and a feature size of about ``scale`` px."""
    n = int(SIZE / scale) + 4
    small = Image.fromarray(rng.standard_normal((n, n)).astype(np.float32))
    resized = small.resize((SIZE, SIZE), Image.Resampling.BICUBIC, box=(1.5, 1.5, n - 2.5, n - 2.5))
    arr = np.asarray(resized, dtype=np.float32)
    return (arr - arr.mean()) / (arr.std() + 1e-6)


def shape(draw: Callable[[ImageDraw.ImageDraw, float], None]) -> Array:
    """Anti-aliased coverage in [0, 1] of whatever ``draw`` paints (coordinates in image pixels * s)."""
    im = Image.new("L", (SIZE * SS, SIZE * SS), 0)
    draw(ImageDraw.Draw(im), SS)
    return np.asarray(im.resize((SIZE, SIZE), Image.Resampling.BOX), dtype=np.float32) / 255.0


def scaled(points: list[Point], s: float) -> list[Point]:
    return [(x * s, y * s) for x, y in points]


def line_alpha(points: list[Point], width: float) -> Array:
    return shape(lambda d, s: d.line(scaled(points, s), fill=255, width=max(1, round(width * s)), joint="curve"))


def poly_alpha(points: list[Point]) -> Array:
    return shape(lambda d, s: d.polygon(scaled(points, s), fill=255))


def disc_alpha(cx: float, cy: float, r: float) -> Array:
    return shape(lambda d, s: d.ellipse(((cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s), fill=255))


def blur(alpha: Array, radius: float) -> Array:
    im = Image.fromarray(np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(im.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0


def dilate(mask: Array, size: int = 3) -> Array:
    im = Image.fromarray((mask > 0).astype(np.uint8) * 255)
    return np.asarray(im.filter(ImageFilter.MaxFilter(size)), dtype=np.float32) > 0


def erode(mask: Array, size: int = 3) -> Array:
    im = Image.fromarray((mask > 0).astype(np.uint8) * 255)
    return np.asarray(im.filter(ImageFilter.MinFilter(size)), dtype=np.float32) > 0


def blob_points(cx: float, cy: float, r: float, rng: np.random.Generator, rough: float = 0.25,
                n: int = 18) -> list[Point]:
    """An irregular, roughly round outline of radius ``r``."""
    phase = rng.uniform(0, 2 * math.pi)
    wobble = 0.6 * np.sin(np.arange(n) * 2 * math.pi / n * 2 + phase) + 0.4 * rng.uniform(-1, 1, n)
    radii = r * (1 + rough * wobble)
    return [(cx + rr * math.cos(2 * math.pi * i / n), cy + rr * math.sin(2 * math.pi * i / n))
            for i, rr in enumerate(radii)]


def lighting(rng: np.random.Generator, strength: float = 0.12) -> Array:
    """A per-image exposure and a gentle gradient (H x W x 1): harmless, but it moves every colour a little."""
    a, b = rng.uniform(-strength, strength, 2)
    gain = rng.uniform(0.92, 1.08)
    return (gain * (1 + a * (XX / SIZE - 0.5) + b * (YY / SIZE - 0.5)))[..., None]


def tint(rng: np.random.Generator, spread: float) -> Array:
    """A per-image colour offset: mostly brightness, a little hue."""
    return np.float32(rng.uniform(-spread, spread)) + rng.uniform(-2, 2, 3).astype(np.float32)


def finish(img: Array, rng: np.random.Generator, grain: float = 1.5) -> Array:
    """Sensor noise, shared by all channels (keeps the PNGs small), then clip."""
    return np.clip(img + rng.normal(0, grain, (SIZE, SIZE, 1)), 0, 255)


def rotated(angle_deg: float, ox: float = 0.0, oy: float = 0.0) -> tuple[Array, Array]:
    """Image coordinates turned by ``angle_deg`` about the centre and offset."""
    t = math.radians(angle_deg)
    x, y = XX - SIZE / 2, YY - SIZE / 2
    return x * math.cos(t) + y * math.sin(t) + ox, -x * math.sin(t) + y * math.cos(t) + oy


def blend(img: Array, alpha: Array, target: Array) -> Array:
    a = np.clip(alpha, 0, 1)[..., None]
    return img * (1 - a) + target * a


def polygon_distance(dx: Array, dy: Array, sides: int, apothem: float, phi: float) -> Array:
    """Signed distance (negative inside) to a regular polygon centred at the origin; ``sides=0`` is a circle."""
    if sides == 0:
        return np.hypot(dx, dy) - apothem
    normals = [phi + math.pi / sides + k * 2 * math.pi / sides for k in range(sides)]
    return np.max(np.stack([dx * math.cos(a) + dy * math.sin(a) for a in normals]), axis=0) - apothem
