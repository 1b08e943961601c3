"""Build the synthetic benchmark in the MMAD format: procedural images, masks, questions, knowledge.

It needs no download and builds in seconds, so the whole pipeline (loading, prompting, adapters,
scoring, reports) runs anywhere; and it is built to be a fair ruler: no question can be answered
without looking at the image (``mmeval data check`` measures that). The layout is MMAD's:
``mmad.json`` keyed by the query image path relative to the output directory, one record per image
with its questions, its mask and two lists of normal templates, plus ``domain_knowledge.json``::

    SynthTexture/carpet/train/good/000.png             normal templates
    SynthTexture/carpet/test/good/000.png              normal query images
    SynthTexture/carpet/test/hole/000.png              defective query images
    SynthTexture/carpet/ground_truth/hole/000_mask.png their masks (L mode, 0/255)

Two datasets (``SynthTexture``: carpet, wood, tile; ``SynthObject``: washer, nut, pcb). Each product
comes in four variants (:mod:`.catalogue`); an image's template lists hold normal samples of its own
variant, as a line inspecting one variant at a time would keep. Everything is a pure function of the
seed and the scale: the same pair writes byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmeval.data.synthetic import questions
from mmeval.data.synthetic.board import board
from mmeval.data.synthetic.catalogue import N_VARIANTS, PRODUCTS, Product
from mmeval.data.synthetic.knowledge import domain_knowledge
from mmeval.data.synthetic.painting import paint
from mmeval.data.synthetic.raster import SIZE, Array
from mmeval.data.synthetic.scales import DEFAULT_SCALE, SCALES, Scale
from mmeval.data.synthetic.scenes import RENDERERS, Scene

N_LISTED = 4  # most templates listed in similar_templates / random_templates
RENDER: dict[str, Callable[[int, np.random.Generator], Scene]] = {**RENDERERS, "pcb": board}


@dataclass
class Query:
    rel: str  # path below <dataset>/<category>/
    variant: int
    image: Array
    mask: Array | None = None
    defect: str | None = None
    cell: tuple[int, int] | None = None


def save_png(arr: Array, path: Path) -> Array:
    """Write the image; return the 8-bit pixels as written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(arr + 0.5, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format="PNG", compress_level=9)
    return pixels


def save_mask(mask: Array, path: Path) -> None:
    """Write a binary mask as MMAD does: an L-mode PNG, 0 or 255."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255).save(path, format="PNG", compress_level=9)


def thumbnail(pixels: Array) -> Array:
    """32x32 grey thumbnail (channel mean, block mean) used to rank templates by similarity."""
    g = pixels.astype(np.float64).mean(axis=2)
    return g.reshape(32, SIZE // 32, 32, SIZE // 32).mean(axis=(1, 3))


def _balanced(per_variant: int, rng: np.random.Generator) -> list[int]:
    """Each variant ``per_variant`` times, in random order."""
    return [int(v) for v in rng.permutation(np.repeat(np.arange(N_VARIANTS), per_variant))]


def _queries(product: Product, scale: Scale, rng: np.random.Generator) -> list[Query]:
    """Normal query images (variants balanced), then defective ones (types balanced, cells uniform)."""
    render = RENDER[product.name]
    out = [Query(f"test/good/{i:03d}.png", v, render(v, rng).image) for i, v in enumerate(_balanced(scale.normal, rng))]
    for defect in product.defects:
        for i in range(scale.defective):
            variant = int(rng.integers(N_VARIANTS))
            cell = (int(rng.integers(3)), int(rng.integers(3)))  # the answer is drawn first, uniformly
            img, mask = paint(_scene_of(render, variant, rng), defect, cell, rng)
            out.append(Query(f"test/{defect}/{i:03d}.png", variant, img, mask, defect, cell))
    return out


def _scene_of(render: Callable[[int, np.random.Generator], Scene], variant: int,
              rng: np.random.Generator) -> Callable[[], Scene]:
    """A fresh normal scene of the variant on each call (the painter may need another draw)."""
    return lambda: render(variant, rng)


class _Templates:
    """The normal templates of one product, grouped by variant, with their thumbnails."""

    def __init__(self) -> None:
        self.paths: dict[int, list[str]] = {v: [] for v in range(N_VARIANTS)}
        self.thumbs: dict[int, list[Array]] = {v: [] for v in range(N_VARIANTS)}

    def add(self, variant: int, path: str, pixels: Array) -> None:
        self.paths[variant].append(path)
        self.thumbs[variant].append(thumbnail(pixels))

    def lists(self, variant: int, pixels: Array, rng: np.random.Generator) -> tuple[list[str], list[str]]:
        """(similar, random) templates of the variant: the closest thumbnails first; a random draw."""
        paths, thumbs = self.paths[variant], np.stack(self.thumbs[variant])
        k = min(N_LISTED, len(paths))
        mse = ((thumbs - thumbnail(pixels)) ** 2).mean(axis=(1, 2))
        similar = [paths[int(i)] for i in np.argsort(mse, kind="stable")[:k]]
        return similar, [paths[int(i)] for i in rng.permutation(len(paths))[:k]]


def _product(product: Product, index: int, out_dir: Path, seed: int, scale: Scale,
             tick: Callable[[], None]) -> dict[str, dict[str, Any]]:
    """Write one product's images and masks; return its mmad.json records."""
    rng = np.random.default_rng([seed, index])  # pictures
    qrng = np.random.default_rng([seed, index, 1])  # questions: distractors and answer positions
    base, prefix = out_dir / product.dataset / product.name, f"{product.dataset}/{product.name}"
    templates = _Templates()
    for i, variant in enumerate(_balanced(scale.templates, rng)):
        rel = f"train/good/{i:03d}.png"
        templates.add(variant, f"{prefix}/{rel}", save_png(RENDER[product.name](variant, rng).image, base / rel))
        tick()
    records = {}
    for q in _queries(product, scale, rng):
        similar, rand = templates.lists(q.variant, save_png(q.image, base / q.rel), rng)
        mask_rel = ""
        if q.mask is None or q.defect is None or q.cell is None:
            conversation = questions.normal_questions(product, q.variant, qrng)
        else:
            conversation = questions.defect_questions(product, q.defect, q.cell, qrng)
            mask_rel = f"ground_truth/{q.defect}/{Path(q.rel).stem}_mask.png"
            save_mask(q.mask, base / mask_rel)
        records[f"{prefix}/{q.rel}"] = {"image_path": q.rel, "conversation": conversation, "mask_path": mask_rel,
                                        "similar_templates": similar, "random_templates": rand}
        tick()
    return records


def _write_text(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


def build_synthetic(out_dir: Path, seed: int = 0, *, scale: str = DEFAULT_SCALE, progress: bool = False) -> Path:
    """Write the synthetic benchmark under ``out_dir`` and return the path of its ``mmad.json``.

    Same seed and scale, same bytes. Existing files of an earlier build are overwritten.
    """
    size = SCALES[scale]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_product = N_VARIANTS * (size.templates + size.normal) + 4 * size.defective
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(PRODUCTS) * per_product, desc=f"synthetic benchmark ({scale})", unit="img")
    def tick() -> None:
        if bar is not None:
            bar.update()

    records: dict[str, dict[str, Any]] = {}
    for index, product in enumerate(PRODUCTS):
        records.update(_product(product, index, out_dir, seed, size, tick))
    if bar:
        bar.close()
    json_path = out_dir / "mmad.json"
    _write_text(json_path, json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    _write_text(out_dir / "domain_knowledge.json", json.dumps(domain_knowledge(), indent=1, ensure_ascii=False) + "\n")
    _write_text(out_dir / "README.md", _readme(seed, size, records))
    return json_path


def _readme(seed: int, scale: Scale, records: dict[str, dict[str, Any]]) -> str:
    normal = sum("/good/" in key for key in records)
    n_questions = sum(len(r["conversation"]) for r in records.values())
    lines = [
        "# Synthetic MMAD-format benchmark",
        "",
        f"Generated by `mmeval.data.synthetic.generator.build_synthetic` with seed {seed} at the "
        f"`{scale.name}` scale. Every image",
        "is procedural (numpy + Pillow); nothing here comes from a real dataset, so scores on it say nothing",
        "about real inspection quality. It exists to test the evaluation pipeline end to end, and is built so",
        "that no question can be answered without looking at the image (`mmeval data check` measures that).",
        "",
        f"* {len(records)} query images ({normal} normal, {len(records) - normal} defective), {n_questions} questions",
        f"* {N_VARIANTS * scale.templates} normal templates per category under `<dataset>/<category>/train/good/`, "
        f"{scale.templates} per product variant; an image's template lists hold its own variant's",
        "* layout, keys and question types follow MMAD's `mmad.json`; masks are L-mode PNGs (0/255)",
        "",
        "| dataset | category | defect types |",
        "|---|---|---|",
    ]
    lines += [f"| {p.dataset} | {p.name} | {', '.join(p.defects)} |" for p in PRODUCTS]
    return "\n".join(lines) + "\n"
