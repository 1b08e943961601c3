"""A small synthetic benchmark in the MMAD format, drawn procedurally with numpy and Pillow.

It needs no download and builds in a few seconds, so the whole pipeline (loading, prompting, adapters,
scoring, reports) can be exercised anywhere. The layout is MMAD's: ``mmad.json`` keyed by the query
image path relative to the output directory, one record per image with its questions, its mask and
two lists of normal templates, plus ``domain_knowledge.json`` and the images themselves::

    SynthTexture/carpet/train/good/000.png             normal templates
    SynthTexture/carpet/test/good/000.png              normal query images
    SynthTexture/carpet/test/hole/000.png              defective query images
    SynthTexture/carpet/ground_truth/hole/000_mask.png their masks (L mode, 0/255)

Two datasets (``SynthTexture``: carpet, wood, tile; ``SynthObject``: washer, nut, pcb) give the score
tables several rows. Every normal image is a fresh draw (phase, offset, small rotation, lighting,
noise), so a detector cannot simply subtract a template. Defects are small (0.5-6 % of the pixels),
placed, sized and contrasted at random, some of them faint.

Everything is a pure function of the seed: the same seed writes byte-identical files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 128  # image side in pixels
SS = 4  # supersampling factor for anti-aliased shapes
N_TRAIN = 6  # normal templates per category
N_GOOD = 8  # normal test images per category
N_BAD = 12  # defective test images per category
N_LISTED = 4  # templates listed in similar_templates / random_templates
MIN_AREA, MAX_AREA = 0.005, 0.06  # defect mask area, as a fraction of the image
LETTERS = "ABCDE"

REGIONS = (("Top left", "Top", "Top right"), ("Left", "Center", "Right"), ("Bottom left", "Bottom", "Bottom right"))
REGION_NAMES = tuple(name for row in REGIONS for name in row)

Array = np.ndarray
_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5


# --------------------------------------------------------------------------------------------- texts

@dataclass(frozen=True)
class DefectText:
    label: str  # the defect's name as an option ("Scratch.")
    title: str  # the heading in domain_knowledge.json
    appearance: str  # Defect Description answer
    effect: str  # Defect Analysis answer
    knowledge: str  # domain-knowledge paragraph; {p} is the product name


DEFECTS: dict[str, DefectText] = {
    "scratch": DefectText(
        "Scratch.", "Surface Scratch",
        "A thin, straight or gently curved line scored into the surface.",
        "It spoils the finish and can become a starting point for wear or corrosion.",
        "A scratch on the {p} is a narrow line, one or two pixels wide and several times longer than it is "
        "wide, that is either lighter or darker than its surroundings. It usually runs straight or bends "
        "slightly and ignores the regular structure of the {p}. Faint scratches differ from the surface by "
        "only a few grey levels and are easiest to see by their direction."),
    "hole": DefectText(
        "Hole.", "Hole",
        "A small, dark, roughly round opening where material is missing.",
        "The material is pierced, so it no longer covers or seals what lies behind it.",
        "A hole in the {p} is a compact dark patch with an irregular, roughly circular outline. Inside it "
        "the usual pattern of the {p} disappears completely and the colour falls towards black."),
    "stain": DefectText(
        "Stain.", "Discoloured Stain",
        "A soft-edged patch whose colour is slightly off from the rest.",
        "It is mostly cosmetic and lowers the visual grade of the product.",
        "A stain on the {p} is a blurred, rounded area with a tint (brownish, yellowish or bluish) that the "
        "normal {p} does not have. The pattern underneath is still visible; the edge fades out gradually, "
        "and weak stains are only slightly tinted."),
    "crack": DefectText(
        "Crack.", "Crack",
        "A dark, jagged line that zigzags across the surface.",
        "It weakens the part, which may split completely under load.",
        "A crack in the {p} is a dark, thin line that changes direction in short irregular steps, unlike the "
        "smooth line of a scratch. It marks a real fracture of the material."),
    "cut": DefectText(
        "Cut.", "Cut Fibres",
        "A short, straight, dark slit through the pile.",
        "The severed fibres can unravel, so the damage grows with use.",
        "A cut in the {p} is a straight dark slit where the fibres are severed and the backing shows through. "
        "It is short, straight and sharply bounded."),
    "thread": DefectText(
        "Loose thread.", "Stray Thread",
        "A curving strand of differently coloured yarn lying on top of the surface.",
        "It can snag and be pulled, distorting the weave around it.",
        "A loose thread on the {p} is a thin curving strand whose colour (white, blue or yellow) does not "
        "belong to the {p}. It lies on the surface and crosses the weave at an arbitrary angle."),
    "chip": DefectText(
        "Chipped edge.", "Chipped Edge",
        "A small piece broken away at an edge or corner, exposing the material beneath.",
        "The sharp break exposes the body to moisture and dirt and can injure handlers.",
        "A chip on the {p} is a small region at an edge or corner where a piece has broken away. The outline "
        "of the {p} is interrupted there and the exposed surface looks different from the intact face."),
    "notch": DefectText(
        "Notch.", "Notch in the Rim",
        "A small bite missing from the rim of the ring.",
        "The bearing face is incomplete, so the clamping load is spread unevenly.",
        "A notch in the {p} is a small piece missing from the inner or outer rim. The circular outline "
        "shows a dent there, and the background can be seen through the gap."),
    "contamination": DefectText(
        "Contamination.", "Foreign Particles",
        "A cluster of small specks or fibres stuck onto the surface.",
        "The foreign matter can interfere with assembly and has to be cleaned off.",
        "Contamination on the {p} appears as a few small specks or short fibres grouped closely together. "
        "They sit on top of the {p}, with colours unrelated to it, usually dark."),
    "missing_component": DefectText(
        "Missing component.", "Missing Component",
        "Bare silver solder pads where a part should be mounted.",
        "The circuit is incomplete, so the board will not work as designed.",
        "A missing component on the {p} leaves its solder pads empty: the silver pads and the green solder "
        "mask are visible where a chip, capacitor or resistor should sit."),
    "extra_component": DefectText(
        "Extra component.", "Extra Component",
        "An additional part sitting on a spot of the board that should be empty.",
        "It can create an unintended connection or a short circuit.",
        "An extra component on the {p} is a part that does not belong to the layout, placed on bare solder "
        "mask without pads below it."),
    "misplaced_component": DefectText(
        "Misplaced component.", "Misplaced Component",
        "A part that is shifted or turned away from its pads.",
        "Its pins may not touch the pads, causing an open or intermittent connection.",
        "A misplaced component on the {p} is present but displaced or rotated relative to its solder pads, "
        "so part of the pads is uncovered and the part sits at an angle."),
}

# pairs whose texts could both be true of one image: never offered as each other's distractors
_CONFUSABLE = {frozenset(("notch", "chip")), frozenset(("scratch", "cut"))}

# defect-analysis distractors that fit no defect
_WRONG_EFFECTS = (
    "It makes the product stronger than intended.",
    "It has no effect on the product at all.",
    "It improves the appearance of the product.",
    "It makes the product easier to clean.",
    "It reduces the weight of the product.",
)


@dataclass(frozen=True)
class ObjectQuestion:
    type: str  # "Object Structure" or "Object Details"
    question: str
    answer: str
    distractors: tuple[str, str, str]


@dataclass(frozen=True)
class Category:
    dataset: str
    name: str  # folder name
    label: str  # Object Classification option text
    product: str  # how texts refer to it
    defects: tuple[str, ...]
    questions: tuple[ObjectQuestion, ObjectQuestion]
    normal_knowledge: str


CATEGORIES: tuple[Category, ...] = (
    Category(
        "SynthTexture", "carpet", "Carpet.", "carpet", ("hole", "stain", "cut", "thread"),
        (ObjectQuestion("Object Structure", "What is the surface in the image made of?",
                        "Woven textile fibres.", ("Polished sheet metal.", "Glazed ceramic.", "Moulded plastic.")),
         ObjectQuestion("Object Details", "What pattern does the carpet show?",
                        "A fine, regular criss-cross weave.",
                        ("Long wavy grain lines.", "Large squares separated by joints.", "Concentric machined rings."))),
        "A normal carpet sample is a reddish-brown woven textile filling the whole image. A fine, regular "
        "criss-cross weave with a period of a few pixels covers it evenly; the weave may be turned by a few "
        "degrees, and the brightness varies softly across the sample because of lighting and pile height. "
        "There are no holes, slits, stray threads or tinted patches."),
    Category(
        "SynthTexture", "wood", "Wood.", "wood", ("scratch", "hole", "crack", "stain"),
        (ObjectQuestion("Object Structure", "What material is shown in the image?",
                        "Planed timber.", ("Woven wool.", "Cast iron.", "Fired clay tiles.")),
         ObjectQuestion("Object Details", "Which feature runs across the wood surface?",
                        "Wavy, roughly parallel grain lines.",
                        ("A dense checkerboard weave.", "Rows of printed circuit traces.", "Evenly spaced round holes."))),
        "A normal wood sample shows light brown timber with darker grain lines running roughly vertically. "
        "The lines are wavy and nearly parallel, their spacing varies a little, and the whole board may be "
        "slightly tilted. The surface is smooth and evenly finished, with no dark openings, cracks or marks."),
    Category(
        "SynthTexture", "tile", "Tile.", "tile", ("crack", "stain", "chip"),
        (ObjectQuestion("Object Structure", "How is the surface in the image built up?",
                        "Square tiles separated by light grout joints.",
                        ("A single seamless metal sheet.", "Interlaced textile threads.", "Stacked wooden planks.")),
         ObjectQuestion("Object Details", "What colour are the tiles?",
                        "Muted blue.", ("Bright red.", "Dark green.", "Pure black."))),
        "A normal tile surface is a grid of muted blue square tiles, about a quarter of the image wide, "
        "separated by straight, light grey grout joints. Each tile has a slightly different shade and a fine "
        "mottled glaze; the grid can be shifted and turned by a degree or two. Tile edges are straight and intact."),
    Category(
        "SynthObject", "washer", "Washer.", "washer", ("scratch", "notch", "contamination", "crack"),
        (ObjectQuestion("Object Structure", "What is the shape of the washer seen from above?",
                        "A flat ring with a round central hole.",
                        ("A solid disc without a hole.", "A hexagon with a threaded bore.", "A square plate with four holes.")),
         ObjectQuestion("Object Details", "What is the washer made of?",
                        "Bright metal.", ("Transparent glass.", "Soft rubber.", "Woven fabric."))),
        "A normal washer is a flat metal ring lying near the centre of a dark background. Its outer and inner "
        "rims are smooth circles; the metal shows a soft highlight on the side facing the light and faint "
        "concentric machining rings. The position, size and lighting vary slightly between samples."),
    Category(
        "SynthObject", "nut", "Hex nut.", "nut", ("scratch", "chip", "contamination"),
        (ObjectQuestion("Object Structure", "What shape is the nut seen from above?",
                        "A hexagon with a round threaded hole in the middle.",
                        ("A ring with a smooth inner rim.", "A square block without a hole.", "A flat green board.")),
         ObjectQuestion("Object Details", "What can be seen inside the central hole of the nut?",
                        "The ridges of an internal screw thread.",
                        ("A glass lens.", "A printed label.", "A coiled spring."))),
        "A normal hex nut is a grey steel hexagon seen from above on a dark background, with a round threaded "
        "hole in the middle. The six edges carry a narrow chamfer shaded according to the light; the hexagon "
        "can be rotated to any angle and moved slightly. The corners are sharp and the faces are clean."),
    Category(
        "SynthObject", "pcb", "Printed circuit board.", "circuit board",
        ("missing_component", "extra_component", "misplaced_component", "scratch"),
        (ObjectQuestion("Object Structure", "What are the subcomponents of the circuit board?",
                        "Two black chips, two round capacitors and two small resistors.",
                        ("One large chip and a battery.", "Four identical capacitors only.", "A single connector and a fuse.")),
         ObjectQuestion("Object Details", "What colour is the base of the circuit board?",
                        "Green.", ("Blue.", "White.", "Yellow."))),
        "A normal circuit board is a green board that fills the image. Two black chips sit top left and bottom "
        "right, round capacitors sit top right and bottom left, and two small brown resistors sit in the centre "
        "and on the right, each on silver solder pads and joined by lighter green traces. The layout is fixed; "
        "only a small shift, rotation and lighting change between boards."),
)


# ------------------------------------------------------------------------------------------ helpers

def _smooth(rng: np.random.Generator, scale: float) -> Array:
    """Smooth zero-mean noise with unit standard deviation and a feature size of about ``scale`` px."""
    n = int(SIZE / scale) + 4
    small = Image.fromarray(rng.standard_normal((n, n)).astype(np.float32))
    arr = np.asarray(small.resize((SIZE, SIZE), Image.BICUBIC, box=(1.5, 1.5, n - 2.5, n - 2.5)), dtype=np.float32)
    return (arr - arr.mean()) / (arr.std() + 1e-6)


def _shape(draw: Callable[[ImageDraw.ImageDraw, float], None]) -> Array:
    """Anti-aliased coverage in [0, 1] of whatever ``draw`` paints (coordinates in image pixels * s)."""
    im = Image.new("L", (SIZE * SS, SIZE * SS), 0)
    draw(ImageDraw.Draw(im), SS)
    return np.asarray(im.resize((SIZE, SIZE), Image.BOX), dtype=np.float32) / 255.0


def _pts(points: list[tuple[float, float]], s: float) -> list[tuple[float, float]]:
    return [(x * s, y * s) for x, y in points]


def _line_alpha(points: list[tuple[float, float]], width: float) -> Array:
    return _shape(lambda d, s: d.line(_pts(points, s), fill=255, width=max(1, round(width * s)), joint="curve"))


def _poly_alpha(points: list[tuple[float, float]]) -> Array:
    return _shape(lambda d, s: d.polygon(_pts(points, s), fill=255))


def _blur(alpha: Array, radius: float) -> Array:
    im = Image.fromarray(np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(im.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0


def _dilate(mask: Array, size: int = 3) -> Array:
    im = Image.fromarray((mask > 0).astype(np.uint8) * 255)
    return np.asarray(im.filter(ImageFilter.MaxFilter(size)), dtype=np.float32) > 0


def _blob_points(cx: float, cy: float, r: float, rng: np.random.Generator, rough: float = 0.25,
                 n: int = 18) -> list[tuple[float, float]]:
    phase = rng.uniform(0, 2 * math.pi)
    radii = r * (1 + rough * (0.6 * np.sin(np.arange(n) * 2 * math.pi / n * 2 + phase) + 0.4 * rng.uniform(-1, 1, n)))
    return [(cx + rr * math.cos(2 * math.pi * i / n), cy + rr * math.sin(2 * math.pi * i / n)) for i, rr in enumerate(radii)]


def _lighting(rng: np.random.Generator, strength: float = 0.12) -> Array:
    a, b = rng.uniform(-strength, strength, 2)
    gain = rng.uniform(0.92, 1.08)
    return (gain * (1 + a * (_XX / SIZE - 0.5) + b * (_YY / SIZE - 0.5)))[..., None]


def _tint(rng: np.random.Generator, spread: float) -> Array:
    """A per-image colour offset: mostly brightness, a little hue."""
    return np.float32(rng.uniform(-spread, spread)) + rng.uniform(-2, 2, 3).astype(np.float32)


def _finish(img: Array, rng: np.random.Generator, grain: float = 1.5) -> Array:
    """Sensor noise, shared by all channels (keeps the PNGs small), then clip."""
    return np.clip(img + rng.normal(0, grain, (SIZE, SIZE, 1)), 0, 255)


def _rotated(angle_deg: float, ox: float = 0.0, oy: float = 0.0) -> tuple[Array, Array]:
    """Image coordinates turned by ``angle_deg`` about the centre and offset."""
    t = math.radians(angle_deg)
    x, y = _XX - SIZE / 2, _YY - SIZE / 2
    return x * math.cos(t) + y * math.sin(t) + ox, -x * math.sin(t) + y * math.cos(t) + oy


# ------------------------------------------------------------------------------------------ scenes

@dataclass
class Scene:
    """A rendered normal image and what defect painters need to know about it."""

    image: Array  # HxWx3 float, 0-255
    support: Array  # HxW in [0, 1]: where the product is (defects stay on it)
    background: Array | None = None  # what shows through where material is missing
    params: dict | None = None
    sample_point: Callable[[np.random.Generator], tuple[float, float]] | None = None


def _uniform_point(margin: float = 14) -> Callable[[np.random.Generator], tuple[float, float]]:
    return lambda rng: (float(rng.uniform(margin, SIZE - margin)), float(rng.uniform(margin, SIZE - margin)))


def _carpet(rng: np.random.Generator) -> Scene:
    u, v = _rotated(rng.uniform(-4, 4), *rng.uniform(0, 20, 2))
    period = rng.uniform(4.8, 5.4)
    weave = np.sin(2 * math.pi * u / period) * np.sin(2 * math.pi * v / period)
    pile = _smooth(rng, 10)
    base = np.array([146, 64, 58], np.float32) + _tint(rng, 6)
    img = base * (1 + 0.16 * weave[..., None] + 0.05 * pile[..., None]) * _lighting(rng)
    return Scene(_finish(img, rng), np.ones((SIZE, SIZE), np.float32), sample_point=_uniform_point())


def _wood(rng: np.random.Generator) -> Scene:
    u, v = _rotated(rng.uniform(-5, 5), *rng.uniform(0, 40, 2))
    warp = 5 * _smooth(rng, 40) + 2 * np.sin(v / rng.uniform(14, 22))
    period = rng.uniform(7, 9.5)
    phase = u + warp
    grain = 0.6 * np.sin(2 * math.pi * phase / period) ** 3 + 0.4 * np.sin(2 * math.pi * phase / (period * 3.3))
    base = np.array([178, 126, 74], np.float32) + _tint(rng, 8)
    img = base * (1 + 0.11 * grain[..., None] + 0.03 * _smooth(rng, 12)[..., None]) * _lighting(rng)
    return Scene(_finish(img, rng), np.ones((SIZE, SIZE), np.float32), sample_point=_uniform_point())


def _tile(rng: np.random.Generator) -> Scene:
    pitch = 32.0
    u, v = _rotated(rng.uniform(-2, 2), *rng.uniform(0, pitch, 2))
    iu, iv = np.floor(u / pitch), np.floor(v / pitch)
    fu, fv = u - iu * pitch, v - iv * pitch
    grout = np.clip(np.minimum(np.minimum(fu, pitch - fu), np.minimum(fv, pitch - fv)) - 1.2, 0, 1)  # 0 in the joint
    shade = np.sin(iu * 12.9898 + iv * 78.233 + rng.uniform(0, 6.3)) * 0.06  # per-tile shade
    base = np.array([92, 122, 152], np.float32) + _tint(rng, 6)
    tile = base * (1 + shade[..., None] + 0.04 * _smooth(rng, 3)[..., None])
    joint = np.array([196, 196, 190], np.float32)
    img = (tile * grout[..., None] + joint * (1 - grout[..., None])) * _lighting(rng, 0.08)
    # grid position is needed by the chip painter (corners of tiles)
    return Scene(_finish(img, rng), np.ones((SIZE, SIZE), np.float32),
                 params={"grout": grout, "fu": fu, "fv": fv, "pitch": pitch}, sample_point=_uniform_point())


def _dark_background(rng: np.random.Generator) -> Array:
    base = np.array([44, 46, 52], np.float32) + _tint(rng, 4)
    return base * (1 + 0.06 * _smooth(rng, 24)[..., None]) * _lighting(rng, 0.2)


def _washer(rng: np.random.Generator) -> Scene:
    cx, cy = SIZE / 2 + rng.uniform(-6, 6, 2)
    r_out, r_in = rng.uniform(42, 46), rng.uniform(17, 20)
    r = np.hypot(_XX - cx, _YY - cy)
    theta = np.arctan2(_YY - cy, _XX - cx)
    alpha = np.clip(r_out - r + 0.5, 0, 1) * np.clip(r - r_in + 0.5, 0, 1)
    light = math.radians(rng.uniform(200, 250))  # lit from the upper left
    metal = np.array([176, 176, 182], np.float32) + _tint(rng, 8)
    shade = 1 + 0.16 * np.cos(theta - light) + 0.03 * np.sin(r * rng.uniform(2.2, 2.8) + rng.uniform(0, 6.3))
    edge = np.clip(np.minimum(r_out - r, r - r_in) / 3, 0, 1)  # rounded rims are darker
    obj = metal * (shade * (0.78 + 0.22 * edge))[..., None]
    bg = _dark_background(rng)
    img = obj * alpha[..., None] + bg * (1 - alpha[..., None])

    def point(g: np.random.Generator) -> tuple[float, float]:
        rr, tt = g.uniform(r_in + 5, r_out - 5), g.uniform(0, 2 * math.pi)
        return cx + rr * math.cos(tt), cy + rr * math.sin(tt)

    return Scene(_finish(img, rng), alpha, background=bg,
                 params={"cx": cx, "cy": cy, "r_out": r_out, "r_in": r_in}, sample_point=point)


def _hexagon(cx: float, cy: float, radius: float, phi: float) -> list[tuple[float, float]]:
    return [(cx + radius * math.cos(phi + k * math.pi / 3), cy + radius * math.sin(phi + k * math.pi / 3)) for k in range(6)]


def _nut(rng: np.random.Generator) -> Scene:
    cx, cy = SIZE / 2 + rng.uniform(-6, 6, 2)
    radius, phi = rng.uniform(40, 44), math.radians(rng.uniform(-8, 8))
    apothem = radius * math.cos(math.pi / 6)
    dx, dy = _XX - cx, _YY - cy
    # signed distance to the hexagon's edges (negative inside) and the facet each pixel faces
    normals = [phi + math.pi / 6 + k * math.pi / 3 for k in range(6)]
    proj = np.stack([dx * math.cos(a) + dy * math.sin(a) for a in normals])
    dist = proj.max(0) - apothem
    facet = np.array(normals, np.float32)[proj.argmax(0)]
    alpha = np.clip(-dist + 0.5, 0, 1)
    r = np.hypot(dx, dy)
    hole_r = rng.uniform(15, 17)
    light = math.radians(rng.uniform(200, 250))  # lit from the upper left
    steel = np.array([152, 152, 146], np.float32) + _tint(rng, 8)
    chamfer = np.clip(-dist / 4, 0, 1)
    shade = (1 + 0.06 * np.cos(np.arctan2(dy, dx) - light)) * (chamfer + (1 - chamfer) * (0.72 + 0.22 * np.cos(facet - light)))
    thread = 0.45 + 0.2 * np.sin(r * 2.4 + rng.uniform(0, 6.3))
    inner = np.clip(r - (hole_r - 4), 0, 1)  # 1 on the face, thread ring below hole_r
    body = np.where(r < hole_r, thread, shade) * np.clip(r - (hole_r - 5) + 0.5, 0, 1) * (0.3 + 0.7 * inner)
    obj = steel * body[..., None]
    bg = _dark_background(rng)
    img = obj * alpha[..., None] + bg * (1 - alpha[..., None])
    face = alpha * np.clip(r - hole_r - 0.5, 0, 1)

    def point(g: np.random.Generator) -> tuple[float, float]:
        rr, tt = g.uniform(hole_r + 5, apothem - 5), g.uniform(0, 2 * math.pi)
        return cx + rr * math.cos(tt), cy + rr * math.sin(tt)

    return Scene(_finish(img, rng), face, background=bg,
                 params={"corners": _hexagon(cx, cy, radius, phi), "cx": cx, "cy": cy}, sample_point=point)


# --- circuit board: a fixed layout of components, drawn after a small rigid transform

# kind, x, y, w, h (board coordinates; cell centres of the 3x3 grid are at 21, 64, 107)
_PCB_PARTS = (
    ("chip", 25.0, 24.0, 28.0, 18.0),
    ("cap", 104.0, 22.0, 16.0, 16.0),
    ("res", 64.0, 64.0, 15.0, 6.0),
    ("res", 106.0, 64.0, 6.0, 15.0),
    ("cap", 22.0, 104.0, 14.0, 14.0),
    ("chip", 102.0, 104.0, 20.0, 14.0),
)
_PCB_TRACES = (
    ((39, 24), (64, 24), (64, 55)), ((64, 73), (64, 104), (92, 104)), ((104, 30), (104, 55)),
    ((106, 72), (106, 90)), ((29, 104), (56, 104), (56, 66)), ((25, 33), (25, 64), (56, 64)),
)
_PCB_FREE = ((64.0, 24.0 - 12), (22.0, 64.0), (86.0, 84.0), (40.0, 84.0), (84.0, 40.0), (64.0, 90.0))


def _part_polys(kind: str, x: float, y: float, w: float, h: float, rot: float) -> dict[str, list]:
    """Polygons (board coordinates) of one part: body, pins/ends, and its footprint (for masks)."""
    c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))

    def rect(px: float, py: float, hw: float, hh: float) -> list[tuple[float, float]]:
        return [(x + (px + ex) * c - (py + ey) * s, y + (px + ex) * s + (py + ey) * c)
                for ex, ey in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))]

    out: dict[str, list] = {"body": [], "metal": [], "footprint": []}
    if kind == "chip":
        out["body"].append(rect(0, 0, w / 2, h / 2))
        n = max(2, int(w // 6))
        for i in range(n):
            px = -w / 2 + (i + 0.5) * w / n
            out["metal"] += [rect(px, -h / 2 - 1.5, 1.2, 1.6), rect(px, h / 2 + 1.5, 1.2, 1.6)]
        out["footprint"].append(rect(0, 0, w / 2 + 1.5, h / 2 + 3.5))
    elif kind == "res":
        long_x = w >= h
        hw, hh = w / 2, h / 2
        out["body"].append(rect(0, 0, hw, hh))
        if long_x:
            out["metal"] += [rect(-hw + 1.5, 0, 1.5, hh), rect(hw - 1.5, 0, 1.5, hh)]
        else:
            out["metal"] += [rect(0, -hh + 1.5, hw, 1.5), rect(0, hh - 1.5, hw, 1.5)]
        out["footprint"].append(rect(0, 0, hw + 1.5, hh + 1.5))
    else:  # cap: drawn as circles; footprint as its bounding square
        out["footprint"].append(rect(0, 0, w / 2 + 1.5, h / 2 + 1.5))
    return out


def _pads(kind: str, x: float, y: float, w: float, h: float) -> list[list[tuple[float, float]]]:
    polys = _part_polys(kind, x, y, w, h, 0.0)
    if kind == "cap":
        return [[(x - w / 2 - 1, y - 2), (x + w / 2 + 1, y - 2), (x + w / 2 + 1, y + 2), (x - w / 2 - 1, y + 2)]]
    return polys["metal"]


def _pcb(rng: np.random.Generator) -> Scene:
    params = {"dx": float(rng.uniform(-4, 4)), "dy": float(rng.uniform(-4, 4)), "rot": float(rng.uniform(-3, 3)),
              "parts": [dict(kind=k, x=x, y=y, w=w, h=h, rot=0.0) for k, x, y, w, h in _PCB_PARTS],
              "pads": [(k, x, y, w, h) for k, x, y, w, h in _PCB_PARTS],
              "light": _lighting(rng, 0.1), "noise": _smooth(rng, 6), "board": np.array([38, 112, 62], np.float32)
              + _tint(rng, 6), "grain": rng.normal(0, 1.5, (SIZE, SIZE, 1)).astype(np.float32)}
    img = _pcb_draw(params)
    return Scene(img, np.ones((SIZE, SIZE), np.float32), params=params, sample_point=_uniform_point())


def _pcb_transform(params: dict) -> Callable[[list[tuple[float, float]], float], list[tuple[float, float]]]:
    t = math.radians(params["rot"])
    c, s = math.cos(t), math.sin(t)
    h = SIZE / 2

    def apply(points: list[tuple[float, float]], scale: float) -> list[tuple[float, float]]:
        return [((h + (x - h) * c - (y - h) * s + params["dx"]) * scale, (h + (x - h) * s + (y - h) * c + params["dy"]) * scale)
                for x, y in points]

    return apply


def _pcb_draw(params: dict) -> Array:
    tf = _pcb_transform(params)
    board = tuple(int(v) for v in params["board"])
    im = Image.new("RGB", (SIZE * SS, SIZE * SS), board)
    d = ImageDraw.Draw(im)
    for trace in _PCB_TRACES:
        d.line(tf([(float(a), float(b)) for a, b in trace], SS), fill=(82, 158, 92), width=2 * SS, joint="curve")
    for kind, x, y, w, h in params["pads"]:
        for poly in _pads(kind, x, y, w, h):
            d.polygon(tf(poly, SS), fill=(196, 196, 188))
    for p in params["parts"]:
        polys = _part_polys(p["kind"], p["x"], p["y"], p["w"], p["h"], p["rot"])
        if p["kind"] == "cap":
            (cx, cy), = tf([(p["x"], p["y"])], SS)
            r = p["w"] / 2 * SS
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(176, 164, 140))
            d.ellipse((cx - 0.7 * r, cy - 0.7 * r, cx + 0.7 * r, cy + 0.7 * r), fill=(70, 70, 84))
            d.pieslice((cx - 0.7 * r, cy - 0.7 * r, cx + 0.7 * r, cy + 0.7 * r), 200 + p["rot"], 340 + p["rot"], fill=(150, 150, 160))
            continue
        for poly in polys["metal"]:
            d.polygon(tf(poly, SS), fill=(200, 200, 200))
        body = (28, 28, 32) if p["kind"] == "chip" else (132, 86, 52)
        for poly in polys["body"]:
            d.polygon(tf(poly, SS), fill=body)
        if p["kind"] == "chip":
            cx, cy = p["x"] - p["w"] / 2 + 3.5, p["y"] - p["h"] / 2 + 3.5
            c, s = math.cos(math.radians(p["rot"])), math.sin(math.radians(p["rot"]))
            ox, oy = cx - p["x"], cy - p["y"]
            (mx, my), = tf([(p["x"] + ox * c - oy * s, p["y"] + ox * s + oy * c)], SS)
            d.ellipse((mx - 1.2 * SS, my - 1.2 * SS, mx + 1.2 * SS, my + 1.2 * SS), fill=(90, 90, 96))
    arr = np.asarray(im.resize((SIZE, SIZE), Image.BOX), dtype=np.float32)
    arr = arr * (1 + 0.04 * params["noise"][..., None]) * params["light"]
    return np.clip(arr + params["grain"], 0, 255)  # the same sensor noise when a defect is drawn in


def _footprint_mask(params: dict, part: dict) -> Array:
    tf = _pcb_transform(params)
    polys = _part_polys(part["kind"], part["x"], part["y"], part["w"], part["h"], part["rot"])["footprint"]
    return _shape(lambda d, s: [d.polygon(tf(p, s), fill=255) for p in polys])


# ---------------------------------------------------------------------------------------- defects

Painted = tuple[Array, Array]  # (image, binary mask)


def _blend(img: Array, alpha: Array, target: Array) -> Array:
    a = np.clip(alpha, 0, 1)[..., None]
    return img * (1 - a) + target * a


def _paint_scratch(scene: Scene, rng: np.random.Generator) -> Painted:
    cx, cy = scene.sample_point(rng)
    length, ang = rng.uniform(22, 46), rng.uniform(0, math.pi)
    ux, uy = math.cos(ang), math.sin(ang)
    bend = rng.uniform(-4, 4)
    pts = [(cx - ux * length / 2, cy - uy * length / 2), (cx - uy * bend, cy + ux * bend), (cx + ux * length / 2, cy + uy * length / 2)]
    width = rng.uniform(1.0, 2.0)
    alpha = _line_alpha(pts, width) * scene.support
    contrast = rng.uniform(0.25, 0.9)
    target = np.full_like(scene.image, 235.0) if rng.random() < 0.55 else scene.image * 0.25
    mask = _dilate(_line_alpha(pts, width + 2.0) * scene.support > 0.3)
    return _blend(scene.image, alpha * contrast, target), mask


def _paint_hole(scene: Scene, rng: np.random.Generator) -> Painted:
    cx, cy = scene.sample_point(rng)
    r = rng.uniform(3.5, 8)
    alpha = _poly_alpha(_blob_points(cx, cy, r, rng))
    soft = _blur(alpha, 0.8)
    target = np.full_like(scene.image, 1.0) * np.array([22, 18, 18], np.float32)
    img = _blend(scene.image, soft * rng.uniform(0.65, 1.0), target)
    return img, _dilate(alpha > 0.3)


def _paint_stain(scene: Scene, rng: np.random.Generator) -> Painted:
    cx, cy = scene.sample_point(rng)
    r = rng.uniform(6, 12)
    core = _poly_alpha(_blob_points(cx, cy, r, rng, rough=0.3))
    alpha = _blur(core, r / 3) * scene.support
    tints = ((0.72, 0.58, 0.42), (0.8, 0.9, 1.25), (1.2, 1.12, 0.7), (0.62, 0.62, 0.62))
    tint = np.array(tints[int(rng.integers(len(tints)))], np.float32)
    strength = rng.uniform(0.45, 1.0)
    img = _blend(scene.image, alpha * strength, np.clip(scene.image * tint, 0, 255))
    return img, alpha > 0.15


def _jagged(cx: float, cy: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    steps = int(rng.integers(6, 10))
    ang = rng.uniform(0, 2 * math.pi)
    pts = [(cx, cy)]
    for _ in range(steps):
        ang += rng.uniform(-0.8, 0.8)
        step = rng.uniform(3, 6)
        x, y = pts[-1]
        pts.append((x + step * math.cos(ang), y + step * math.sin(ang)))
    # centre the polyline on the sampled point
    mx, my = np.mean([p[0] for p in pts]), np.mean([p[1] for p in pts])
    return [(x - mx + cx, y - my + cy) for x, y in pts]


def _paint_crack(scene: Scene, rng: np.random.Generator) -> Painted:
    cx, cy = scene.sample_point(rng)
    pts = _jagged(cx, cy, rng)
    width = rng.uniform(1.0, 1.8)
    alpha = _line_alpha(pts, width) * scene.support
    img = _blend(scene.image, alpha * rng.uniform(0.45, 0.95), scene.image * 0.2)
    return img, _dilate(_line_alpha(pts, width + 2.0) * scene.support > 0.3)


def _paint_cut(scene: Scene, rng: np.random.Generator) -> Painted:
    cx, cy = scene.sample_point(rng)
    length, ang = rng.uniform(14, 28), rng.uniform(0, math.pi)
    ux, uy = math.cos(ang), math.sin(ang)
    pts = [(cx - ux * length / 2, cy - uy * length / 2), (cx + ux * length / 2, cy + uy * length / 2)]
    width = rng.uniform(1.8, 3.0)
    fringe = _line_alpha(pts, width + 2.0)
    img = _blend(scene.image, fringe * 0.35, np.clip(scene.image * 1.35, 0, 255))
    img = _blend(img, _line_alpha(pts, width) * rng.uniform(0.6, 1.0), np.full_like(img, 30.0))
    return img, _dilate(fringe > 0.3)


def _paint_thread(scene: Scene, rng: np.random.Generator) -> Painted:
    cx, cy = scene.sample_point(rng)
    ang = rng.uniform(0, 2 * math.pi)
    pts, x, y = [], cx - 18 * math.cos(ang), cy - 18 * math.sin(ang)
    for _ in range(10):
        pts.append((x, y))
        ang += rng.uniform(-0.5, 0.5)
        x, y = x + 4 * math.cos(ang), y + 4 * math.sin(ang)
    colours = ((232, 228, 214), (70, 96, 190), (222, 196, 70))
    colour = np.array(colours[int(rng.integers(len(colours)))], np.float32)
    width = rng.uniform(1.1, 1.8)
    img = _blend(scene.image, _line_alpha(pts, width) * rng.uniform(0.5, 0.95), np.broadcast_to(colour, scene.image.shape))
    return img, _dilate(_line_alpha(pts, width + 2.0) > 0.3)


def _paint_contamination(scene: Scene, rng: np.random.Generator) -> Painted:
    cx, cy = scene.sample_point(rng)
    spread = rng.uniform(3, 6)
    colour = np.array((20, 16, 12) if rng.random() < 0.7 else (222, 214, 190), np.float32)
    strokes = []
    for _ in range(int(rng.integers(3, 7))):
        x, y = cx + rng.normal(0, spread), cy + rng.normal(0, spread)
        a, ln = rng.uniform(0, math.pi), rng.uniform(0.5, 4)
        strokes.append(([(x - ln * math.cos(a), y - ln * math.sin(a)), (x + ln * math.cos(a), y + ln * math.sin(a))],
                        rng.uniform(1.2, 2.6)))

    def draw(d: ImageDraw.ImageDraw, s: float) -> None:
        for pts, w in strokes:
            d.line(_pts(pts, s), fill=255, width=max(1, round(w * s)))
            (x0, y0), (x1, y1) = pts
            r = w * s / 2
            for px, py in ((x0 * s, y0 * s), (x1 * s, y1 * s)):
                d.ellipse((px - r, py - r, px + r, py + r), fill=255)

    alpha = _shape(draw) * np.clip(scene.support * 2, 0, 1)
    img = _blend(scene.image, alpha * rng.uniform(0.55, 0.95), np.broadcast_to(colour, scene.image.shape))
    return img, _blur(alpha, 2.0) > 0.12


def _paint_notch(scene: Scene, rng: np.random.Generator) -> Painted:
    p = scene.params
    outer = rng.random() < 0.7
    rr = p["r_out"] if outer else p["r_in"]
    t = rng.uniform(0, 2 * math.pi)
    r = rng.uniform(4.5, 8) if outer else rng.uniform(3.5, 5.5)
    bx, by = p["cx"] + rr * math.cos(t), p["cy"] + rr * math.sin(t)
    bite = _poly_alpha(_blob_points(bx, by, r, rng, rough=0.2)) * scene.support
    img = _blend(scene.image, bite, scene.background)
    return img, _dilate(bite > 0.3)


def _paint_chip(scene: Scene, rng: np.random.Generator) -> Painted:
    p = scene.params
    if "corners" in p:  # nut: a corner breaks off and the background shows
        kx, ky = p["corners"][int(rng.integers(6))]
        f = rng.uniform(0.0, 0.12)
        bx, by = kx + (p["cx"] - kx) * f, ky + (p["cy"] - ky) * f
        bite = _poly_alpha(_blob_points(bx, by, rng.uniform(6, 10), rng, rough=0.2)) * scene.support
        return _blend(scene.image, bite, scene.background), _dilate(bite > 0.3)
    # tile: the glaze breaks away at a corner where joints meet, showing the pale body
    for _ in range(50):
        cx, cy = scene.sample_point(rng)
        near = (np.minimum(p["fu"], p["pitch"] - p["fu"]) < 1.5) & (np.minimum(p["fv"], p["pitch"] - p["fv"]) < 1.5)
        ys, xs = np.nonzero(near & (np.hypot(_XX - cx, _YY - cy) < 20))
        if len(xs):
            bx, by = float(xs.mean()) + 0.5, float(ys.mean()) + 0.5
            break
    else:
        bx, by = cx, cy
    area = _poly_alpha(_blob_points(bx, by, rng.uniform(5, 9), rng, rough=0.35))
    body = np.array([214, 204, 186], np.float32) * (1 + 0.06 * _smooth(rng, 2)[..., None])
    img = _blend(scene.image, area * p["grout"] * rng.uniform(0.5, 1.0), body)
    return img, _dilate(area > 0.3)


def _pcb_variant(scene: Scene, rng: np.random.Generator, change: Callable[[dict, np.random.Generator], Array]) -> Painted:
    params = dict(scene.params)
    params["parts"] = [dict(q) for q in scene.params["parts"]]
    mask = change(params, rng)
    return _pcb_draw(params), mask > 0.3


def _missing(params: dict, rng: np.random.Generator) -> Array:
    part = params["parts"].pop(int(rng.integers(len(params["parts"]))))
    return _footprint_mask(params, part)


def _extra(params: dict, rng: np.random.Generator) -> Array:
    x, y = _PCB_FREE[int(rng.integers(len(_PCB_FREE)))]
    x, y = x + rng.uniform(-3, 3), y + rng.uniform(-3, 3)
    if rng.random() < 0.5:
        w, h = (14.0, 6.0) if rng.random() < 0.5 else (6.0, 14.0)
        part = dict(kind="res", x=x, y=y, w=w, h=h, rot=float(rng.uniform(-20, 20)))
    else:
        d = float(rng.uniform(9, 13))
        part = dict(kind="cap", x=x, y=y, w=d, h=d, rot=0.0)
    params["parts"].append(part)
    return _footprint_mask(params, part)


def _misplaced(params: dict, rng: np.random.Generator) -> Array:
    i = int(rng.integers(len(params["parts"])))
    old = dict(params["parts"][i])
    new = dict(old)
    step, ang = rng.uniform(4, 8), rng.uniform(0, 2 * math.pi)
    new["x"], new["y"] = old["x"] + step * math.cos(ang), old["y"] + step * math.sin(ang)
    new["rot"] = float(rng.choice([-1, 1]) * rng.uniform(12, 35))
    params["parts"][i] = new
    return np.maximum(_footprint_mask(params, old), _footprint_mask(params, new))


PAINTERS: dict[str, Callable[[Scene, np.random.Generator], Painted]] = {
    "scratch": _paint_scratch,
    "hole": _paint_hole,
    "stain": _paint_stain,
    "crack": _paint_crack,
    "cut": _paint_cut,
    "thread": _paint_thread,
    "contamination": _paint_contamination,
    "notch": _paint_notch,
    "chip": _paint_chip,
    "missing_component": lambda sc, g: _pcb_variant(sc, g, _missing),
    "extra_component": lambda sc, g: _pcb_variant(sc, g, _extra),
    "misplaced_component": lambda sc, g: _pcb_variant(sc, g, _misplaced),
}

RENDERERS: dict[str, Callable[[np.random.Generator], Scene]] = {
    "carpet": _carpet, "wood": _wood, "tile": _tile, "washer": _washer, "nut": _nut, "pcb": _pcb,
}


def region_of(mask: Array) -> str:
    """The 3x3-grid region name of a mask's centroid (MMAD's localization vocabulary)."""
    ys, xs = np.nonzero(mask)
    cx, cy = xs.mean() + 0.5, ys.mean() + 0.5
    h, w = mask.shape
    return REGIONS[min(2, int(cy * 3 / h))][min(2, int(cx * 3 / w))]


def _ambiguous(mask: Array, margin: float = 3.0) -> bool:
    ys, xs = np.nonzero(mask)
    c = (xs.mean() + 0.5, ys.mean() + 0.5)
    return any(abs(v - k * SIZE / 3) < margin for v in c for k in (1, 2))


def _defective(category: Category, defect: str, rng: np.random.Generator) -> tuple[Array, Array]:
    """A defective image and its mask, redrawn until the defect is small and clearly in one region."""
    img = mask = None
    for _ in range(40):
        scene = RENDERERS[category.name](rng)
        img, mask = PAINTERS[defect](scene, rng)
        area = mask.mean()
        if MIN_AREA <= area <= MAX_AREA and not _ambiguous(mask):
            break
    return img, mask


# -------------------------------------------------------------------------------------- questions

class _Deck:
    """Answer positions drawn from shuffled decks, so every letter is the answer equally often."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.decks: dict[int, list[int]] = {}

    def draw(self, n: int) -> int:
        deck = self.decks.setdefault(n, [])
        if not deck:
            deck.extend(int(i) for i in self.rng.permutation(n))
        return deck.pop()


def _mcq(question: str, correct: str, distractors: list[str], qtype: str, deck: _Deck, rng: np.random.Generator) -> dict:
    n = len(distractors) + 1
    pos = deck.draw(n)
    others = [distractors[int(i)] for i in rng.permutation(len(distractors))]
    texts = others[:pos] + [correct] + others[pos:]
    return {"Question": question, "Answer": LETTERS[pos], "Options": dict(zip(LETTERS, texts)),
            "type": qtype, "annotation": True}


def _pick(pool: list[str], k: int, rng: np.random.Generator) -> list[str]:
    pool = list(dict.fromkeys(pool))
    return [pool[int(i)] for i in rng.choice(len(pool), size=k, replace=False)]


def _others(defect: str) -> list[str]:
    return [d for d in DEFECTS if d != defect and frozenset((d, defect)) not in _CONFUSABLE]


def _normal_questions(cat: Category, deck: _Deck, rng: np.random.Generator) -> list[dict]:
    labels = [c.label for c in CATEGORIES if c.name != cat.name]
    qs = [_mcq("Is there any defect in the object?", "No.", ["Yes."], "Anomaly Detection", deck, rng),
          _mcq("What kind of product is in the image?", cat.label, _pick(labels, 3, rng), "Object Classification", deck, rng)]
    for oq in cat.questions:
        qs.append(_mcq(oq.question, oq.answer, list(oq.distractors), oq.type, deck, rng))
    return qs


def _defect_questions(cat: Category, defect: str, mask: Array, deck: _Deck, rng: np.random.Generator,
                      n_class_options: int) -> list[dict]:
    text = DEFECTS[defect]
    others = _others(defect)
    region = region_of(mask)
    lead = "There is a defect in the object. "
    return [
        _mcq("Is there any defect in the object?", "Yes.", ["No."], "Anomaly Detection", deck, rng),
        _mcq(lead + "What is the type of the defect?", text.label,
             _pick([DEFECTS[d].label for d in others], n_class_options - 1, rng), "Defect Classification", deck, rng),
        _mcq(lead + "Where is the defect?", region + ".",
             [r + "." for r in _pick([r for r in REGION_NAMES if r != region], 3, rng)], "Defect Localization", deck, rng),
        _mcq(lead + "What is the appearance of the defect?", text.appearance,
             _pick([DEFECTS[d].appearance for d in others], 3, rng), "Defect Description", deck, rng),
        _mcq(lead + "What is the effect of the defect?", text.effect,
             _pick([DEFECTS[d].effect for d in others] + list(_WRONG_EFFECTS), 3, rng), "Defect Analysis", deck, rng),
    ]


# ------------------------------------------------------------------------------------------ output

def _save_png(arr: Array, path: Path) -> Array:
    """Write the image; return the 8-bit pixels as written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(arr + 0.5, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format="PNG", compress_level=9)
    return pixels


def thumbnail(pixels: Array) -> Array:
    """32x32 grey thumbnail (channel mean, block mean) used to rank templates by similarity."""
    g = pixels.astype(np.float64).mean(axis=2)
    return g.reshape(32, SIZE // 32, 32, SIZE // 32).mean(axis=(1, 3))


def _knowledge(cat: Category) -> dict[str, str]:
    out = {"good": f" <Normal Characteristics>\n Description: {cat.normal_knowledge}"}
    for d in cat.defects:
        out[d] = f" <{DEFECTS[d].title}>\n Description: {DEFECTS[d].knowledge.format(p=cat.product)}"
    return out


def _write_text(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


def build_synthetic(out_dir: Path, seed: int = 0, *, progress: bool = False) -> Path:
    """Write the synthetic benchmark under ``out_dir`` and return the path of its ``mmad.json``.

    Same seed, same bytes. Existing files of an earlier build are overwritten.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    qrng = np.random.default_rng([seed, 1_000_003])  # question wording: distractors and answer positions
    deck = _Deck(qrng)
    records: dict[str, dict] = {}
    knowledge: dict[str, dict[str, dict[str, str]]] = {}
    five_done: set[str] = set()
    total = len(CATEGORIES) * (N_TRAIN + N_GOOD + N_BAD)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="synthetic benchmark", unit="img")
    counts = {"images": 0, "questions": 0, "normal": 0, "defective": 0}
    for ci, cat in enumerate(CATEGORIES):
        rng = np.random.default_rng([seed, ci])
        base = out_dir / cat.dataset / cat.name
        prefix = f"{cat.dataset}/{cat.name}"
        templates, thumbs = [], []
        for i in range(N_TRAIN):
            rel = f"train/good/{i:03d}.png"
            pixels = _save_png(RENDERERS[cat.name](rng).image, base / rel)
            templates.append(f"{prefix}/{rel}")
            thumbs.append(thumbnail(pixels))
            if bar:
                bar.update()
        thumbs_arr = np.stack(thumbs)
        queries: list[tuple[str, Array, Array | None, str | None]] = []
        for i in range(N_GOOD):
            queries.append((f"test/good/{i:03d}.png", RENDERERS[cat.name](rng).image, None, None))
        per = [N_BAD // len(cat.defects) + (1 if k < N_BAD % len(cat.defects) else 0) for k in range(len(cat.defects))]
        for defect, n in zip(cat.defects, per):
            for i in range(n):
                img, mask = _defective(cat, defect, rng)
                queries.append((f"test/{defect}/{i:03d}.png", img, mask, defect))
        for rel, img, mask, defect in queries:
            pixels = _save_png(img, base / rel)
            mse = ((thumbs_arr - thumbnail(pixels)) ** 2).mean(axis=(1, 2))
            similar = [templates[int(k)] for k in np.argsort(mse, kind="stable")[:N_LISTED]]
            rand = [templates[int(k)] for k in rng.permutation(N_TRAIN)[:N_LISTED]]
            if defect is None:
                conversation = _normal_questions(cat, deck, qrng)
                mask_rel = ""
                counts["normal"] += 1
            else:
                n_opts = 4
                if cat.dataset not in five_done:  # one five-option question per dataset exercises A-E
                    five_done.add(cat.dataset)
                    n_opts = 5
                conversation = _defect_questions(cat, defect, mask, deck, qrng, n_opts)
                mask_rel = f"ground_truth/{defect}/{Path(rel).stem}_mask.png"
                Image.fromarray(mask.astype(np.uint8) * 255).save(_mkparent(base / mask_rel), format="PNG", compress_level=9)
                counts["defective"] += 1
            records[f"{prefix}/{rel}"] = {
                "image_path": rel,
                "conversation": conversation,
                "mask_path": mask_rel,
                "similar_templates": similar,
                "random_templates": rand,
            }
            counts["questions"] += len(conversation)
            if bar:
                bar.update()
        knowledge.setdefault(cat.dataset, {})[cat.name] = _knowledge(cat)
    if bar:
        bar.close()
    counts["images"] = counts["normal"] + counts["defective"]
    json_path = out_dir / "mmad.json"
    _write_text(json_path, json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    _write_text(out_dir / "domain_knowledge.json", json.dumps(knowledge, indent=1, ensure_ascii=False) + "\n")
    _write_text(out_dir / "README.md", _readme(seed, counts))
    return json_path


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _readme(seed: int, counts: dict[str, int]) -> str:
    lines = [
        "# Synthetic MMAD-format benchmark",
        "",
        f"Generated by `mmeval.data.synthetic.generator.build_synthetic` with seed {seed}. Every image is procedural",
        "(numpy + Pillow); nothing here comes from a real dataset, so scores on it say nothing about",
        "real inspection quality. It exists to test the evaluation pipeline end to end.",
        "",
        f"* {counts['images']} query images ({counts['normal']} normal, {counts['defective']} defective), "
        f"{counts['questions']} questions",
        f"* {N_TRAIN} normal templates per category under `<dataset>/<category>/train/good/`",
        "* layout, keys and question types follow MMAD's `mmad.json`; masks are L-mode PNGs (0/255)",
        "",
        "| dataset | category | defect types |",
        "|---|---|---|",
    ]
    lines += [f"| {c.dataset} | {c.name} | {', '.join(c.defects)} |" for c in CATEGORIES]
    return "\n".join(lines) + "\n"
