"""Localisation: how well a run's anomaly maps find the defects, beside its multiple-choice answers.

Maps come from two kinds of source, each scored on its own:

- **model**: a model family that returns maps (AnomalyGPT, Anomaly-OV ...): a prediction's
  ``artifacts["map"]`` (an ``.npz`` file, relative to the run directory) and ``artifacts["image_score"]``;
- **agent**: the expert that ``--boost agent`` consulted: ``boost_notes["agent"]`` (``"map"``: the
  absolute path of an ``.npz``, ``"score"``, ``"expert"``).

Both ``.npz`` layouts hold ``map`` (H x W, higher = more anomalous, NaN = unknown), ``rows`` and ``cols``
(the centres of the map's rows and columns as fractions of the image's height and width; see
:meth:`mmeval.experts.base.AnomalyMap.to_image`). One map per image, of the plain questions; each file is
loaded once.

Per source (:mod:`mmeval.experts.metrics` computes the metrics):

- **image AUROC**: the image scores, defective images (positive) against normal ones;
- **pixel AUROC** and **AUPRO** (false-positive rate up to 0.3): every map resampled to its ground-truth
  mask's resolution and compared with it; a normal image counts as all-normal pixels at its own
  resolution; a defective image without a mask is left out. Pixels a map marks unknown (NaN, e.g. the
  borders AnomalyGPT's centre crop never sees) are left out: pixel AUROC drops them; AUPRO, which needs
  whole regions, is computed on the smallest rectangle holding every known pixel of the image (unknown
  pixels inside it, if any, take the image's lowest known value). To stay cheap on large runs, masks
  larger than the pixel budget allows (:data:`PIXEL_BUDGET` pixels over the whole run) are all shrunk by
  the same factor (``scale``); a shrunk mask pixel is defective when at least half of it was. For the
  same reason the map values of a source are scaled to 0-1 together (one affine map, which keeps their
  order) and compared at half precision (about three significant digits; closer values tie).

Beside them, the run's multiple-choice accuracy on Anomaly Detection and Defect Localization (the
score table's Average row).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import BaseModel, ConfigDict

from mmeval import scoring, tasks
from mmeval.data import load_benchmark
from mmeval.errors import InputError
from mmeval.experts.base import AnomalyMap
from mmeval.experts.metrics import aupro, auroc, pixel_auroc
from mmeval.predictions import Prediction
from mmeval.report.analysis.questions import plain_preds

__all__ = ["PIXEL_BUDGET", "Localisation", "MapSource", "MaskLookup", "localisation", "masks_of"]

#: at most this many pixels are compared over a whole run (masks are shrunk alike to stay under it)
PIXEL_BUDGET = 16_000_000
#: the boost whose notes carry an expert's map
AGENT = "agent"

#: image key -> the absolute path of its ground-truth mask (None: it has none)
MaskLookup = Callable[[], Mapping[str, str | None]]


class MapSource(BaseModel):
    """The maps of one source, scored; figures are None where they cannot be computed."""

    model_config = ConfigDict(frozen=True)

    source: str  #: "model" or "agent"
    name: str  #: the model, or the expert the agent consulted
    images: int  #: images with an image score
    anomalous: int
    normal: int
    image_auroc: float | None = None
    pixel_images: int = 0  #: images compared pixel by pixel
    pixel_auroc: float | None = None
    aupro: float | None = None
    #: share of the compared pixels a map marked unknown (left out)
    unknown_share: float | None = None
    #: images whose map file could not be read, or that have no mask though defective
    missing_maps: int = 0
    missing_masks: int = 0
    #: the factor applied to the masks' resolution (1: compared at the masks' own resolution)
    scale: float | None = None


class Localisation(BaseModel):
    """The localisation section: one entry per source of maps; ``available`` is False when the run has none."""

    model_config = ConfigDict(frozen=True)

    available: bool
    sources: list[MapSource] = []
    #: the run's multiple-choice accuracy (%, the Average row) on the detection and defect-location tasks
    detection_task: str | None = None
    detection_accuracy: float | None = None
    location_task: str | None = None
    location_accuracy: float | None = None
    #: why no pixel metric could be computed (masks not found ...), when that is so
    note: str | None = None


def masks_of(source: str | Path | None, image_root: Path | None) -> MaskLookup:
    """The mask lookup of a run's data: its mmad.json read again (images not checked); empty if it is gone."""

    def lookup() -> dict[str, str | None]:
        path = Path(source) if source else None
        if path is None or image_root is None or not path.is_file() or not image_root.is_dir():
            return {}
        try:
            bench = load_benchmark(path, image_root, shots=0, verify_images="none", allow_unknown_types=True)
        except InputError:
            return {}
        return {q.image: q.mask_path for q in bench.questions}

    return lookup


@dataclass
class _Entry:
    image: str
    normal: bool
    score: float | None
    map_path: Path | None


def _finite(value: float) -> float | None:
    return round(float(value), 6) if value is not None and math.isfinite(value) else None


def _entries(preds: Sequence[Prediction], run_dir: Path | None) -> dict[tuple[str, str], dict[str, _Entry]]:
    """(source, name) -> image -> its map and score (the first plain prediction of the image that has them)."""
    out: dict[tuple[str, str], dict[str, _Entry]] = {}
    for p in plain_preds(preds):
        art = p.artifacts or {}
        if art.get("map") is not None or art.get("image_score") is not None:
            found = out.setdefault(("model", p.model), {})
            if p.image not in found:
                rel = art.get("map")
                path = (run_dir / rel if run_dir is not None else Path(rel)) if isinstance(rel, str) else None
                score = art.get("image_score")
                found[p.image] = _Entry(p.image, p.is_normal, float(score) if score is not None else None, path)
        note = (p.boost_notes or {}).get(AGENT)
        if isinstance(note, dict) and (note.get("map") or note.get("score") is not None):
            found = out.setdefault(("agent", str(note.get("expert", "expert"))), {})
            if p.image not in found:
                score = note.get("score")
                found[p.image] = _Entry(p.image, p.is_normal, float(score) if score is not None else None,
                                        Path(note["map"]) if note.get("map") else None)
    return out


def _load_map(path: Path) -> AnomalyMap | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            grid = np.asarray(f["map"], dtype=np.float64)
            rows = np.asarray(f["rows"], dtype=np.float64) if "rows" in f else np.empty(0)
            cols = np.asarray(f["cols"], dtype=np.float64) if "cols" in f else np.empty(0)
            score = float(f["score"]) if "score" in f else float("nan")
        return AnomalyMap(grid, score, float("nan"), rows, cols)
    except (OSError, ValueError, KeyError):
        return None


def _size(path: str) -> tuple[int, int] | None:
    """(width, height) of an image file, from its header."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError):
        return None


def _mask(path: str, size: tuple[int, int]) -> np.ndarray | None:
    """The mask as booleans at ``size`` (width, height); shrunk masks count a pixel defective from half coverage."""
    try:
        with Image.open(path) as im:
            grey = im.convert("L")
            if grey.size != size:
                grey = grey.resize(size, Image.Resampling.BOX)
                return np.asarray(grey, dtype=np.float32) >= 127.5  # the box filter averaged 0 / 255 pixels
            return np.asarray(grey) > 127
    except (OSError, ValueError):
        return None


def _score_source(source: str, name: str, entries: Mapping[str, _Entry], masks: Mapping[str, str | None] | None,
                  image_path: Callable[[str], str | None]) -> MapSource:
    scored = [e for e in entries.values() if e.score is not None and math.isfinite(e.score)]
    labels = [0 if e.normal else 1 for e in scored]
    scores = [e.score for e in scored if e.score is not None]
    base: dict[str, Any] = {
        "source": source, "name": name, "images": len(scored), "anomalous": sum(labels),
        "normal": len(labels) - sum(labels),
        "image_auroc": _finite(auroc(labels, scores)) if scored else None}
    if masks is None:
        return MapSource(**base)
    # what each image is compared with: (entry, mask path or None for all-normal, full size (w, h))
    plan: list[tuple[_Entry, str | None, tuple[int, int]]] = []
    missing_masks = missing_maps = 0
    for e in entries.values():
        if e.map_path is None:
            missing_maps += 1
            continue
        mask = masks.get(e.image)
        target = mask if not e.normal else image_path(e.image)
        if not e.normal and not mask:
            missing_masks += 1
            continue
        size = _size(target) if target else None
        if size is None:
            missing_masks += 1
            continue
        plan.append((e, mask if not e.normal else None, size))
    total = sum(w * h for _, _, (w, h) in plan)
    scale = min(1.0, math.sqrt(PIXEL_BUDGET / total)) if total else 1.0
    values: list[np.ndarray] = []
    truths: list[np.ndarray] = []
    pro_maps: list[np.ndarray] = []
    pro_masks: list[np.ndarray] = []
    compared = unknown = 0
    for e, mask_path, (w, h) in plan:
        amap = _load_map(e.map_path) if e.map_path is not None else None
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        truth = _mask(mask_path, size) if mask_path else np.zeros((size[1], size[0]), dtype=bool)
        if amap is None or truth is None:
            missing_maps += amap is None
            missing_masks += amap is not None
            continue
        image = amap.to_image(size[1], size[0]).astype(np.float64)
        known = np.isfinite(image)
        compared += known.size
        unknown += int(known.size - known.sum())
        if not known.any():
            continue
        values.append(image[known])
        truths.append(truth[known])
        rows, cols = np.flatnonzero(known.any(axis=1)), np.flatnonzero(known.any(axis=0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        inside = image[box]
        pro_maps.append(np.where(np.isfinite(inside), inside, np.nanmin(inside)))
        pro_masks.append(truth[box])
    if values:
        low = min(float(v.min()) for v in values)
        span = max(float(v.max()) for v in values) - low or 1.0
        def half(a: np.ndarray) -> np.ndarray:  # one affine map for every image, then about 3 significant digits
            return ((a - low) / span).astype(np.float16)

        base.update(pixel_images=len(values),
                    pixel_auroc=_finite(pixel_auroc([half(v) for v in values], truths)),
                    aupro=_finite(aupro([half(m) for m in pro_maps], pro_masks)))
    base.update(unknown_share=_finite(unknown / compared) if compared else None, missing_maps=missing_maps,
                missing_masks=missing_masks, scale=_finite(scale) if plan else None)
    return MapSource(**base)


def localisation(preds: Sequence[Prediction], table: pd.DataFrame, *, run_dir: Path | None = None,
                 masks: MaskLookup | None = None, image_root: Path | None = None) -> Localisation:
    """The localisation section of a run (see the module docstring); ``masks`` is called only when maps exist."""
    found = _entries(preds, run_dir)
    if not found:
        return Localisation(available=False)
    lookup = masks() if masks is not None else None
    note = None
    if not lookup:
        note = "the ground-truth masks were not found (is the data still where the run read it?): image AUROC only"
        lookup = None

    def image_path(image: str) -> str | None:
        return str(image_root / image) if image_root is not None else None

    sources = [_score_source(source, name, entries, lookup, image_path)
               for (source, name), entries in sorted(found.items())]
    avg = scoring.table_row(table, scoring.AVERAGE)
    detect, locate = tasks.by_role("detection"), tasks.by_role("defect-location")

    def accuracy(task: tasks.TaskDef | None) -> float | None:
        return _finite(avg.get(task.name, float("nan"))) if task is not None else None

    return Localisation(available=True, sources=sources, detection_task=detect.name if detect else None,
                        detection_accuracy=accuracy(detect), location_task=locate.name if locate else None,
                        location_accuracy=accuracy(locate), note=note)
