"""A training-free few-shot anomaly detector (expert ``patch``): patch features compared with the templates.

It describes every overlapping patch of an image by a few hand-made features (brightness, two
colour-opponent channels, gradient energy and orientation, local contrast), and scores each query
patch by its distance to the nearest template patch near the same place (after aligning each template
to the query by phase correlation). That gives an anomaly map and an image score (the map's maximum),
in the spirit of PatchCore but with no learned weights: numpy, scipy and Pillow only.

The decision threshold is calibrated without labels on the templates themselves: each template
scored against the others; with a single template, slightly shifted and turned copies of it, and the
template against itself outside each patch's own neighbourhood.

Work is cached: template features by path, template-vs-image comparisons by the pair of paths, so the
several questions about one image and the many images sharing templates cost one comparison each.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import ndimage

from mmeval.experts.base import AnomalyMap, Expert

#: marks an option that changes speed or memory only, not any map
OPERATIONAL: dict[str, Any] = {"affects_predictions": False}


class PatchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(128, ge=32, le=1024, description="side in pixels images are resized to before comparing")
    patch: int = Field(8, ge=4, le=64, description="patch side in pixels (patches overlap by half); a multiple of 2")
    window: float = Field(0.0625, ge=0, le=1, description="how far (fraction of the image side) a query patch's "
                          "nearest template patch may lie from its aligned position; 0 or 1 searches the whole "
                          "template")
    step: int = Field(2, ge=1, le=16, description="pixel step of the search inside that window")
    threshold_scale: float = Field(1.1, gt=0, description="'defect' when the image score exceeds this times the "
                                   "highest leave-one-out score of the templates (each against the others)")
    self_scale: float = Field(1.6, gt=0, description="the same factor with a single template (scored against "
                              "shifted copies of itself)")
    cache: int = Field(64, ge=0, json_schema_extra=OPERATIONAL,
                       description="how many images' features to keep in memory (about 2 MB each at the default size)")

    @field_validator("patch")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"must be even (patches overlap by half a patch), got {v}")
        return v


@dataclass(frozen=True)
class _Feat:
    dense: np.ndarray  # (P, P, D): features of the patch whose top-left corner is at each pixel
    query: np.ndarray  # (g, g, D): the patches on the regular grid (top-left corners at multiples of a cell)
    gray: np.ndarray  # (S, S) grey image, for alignment
    scale: np.ndarray  # (D,) per-dimension spread, for normalisation


class _LRU(OrderedDict):
    """A dict that forgets its least recently used entries beyond ``size`` (0: remembers nothing)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_or(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        if self.size:
            self[key] = value
            while len(self) > self.size:
                self.popitem(last=False)
        return value


_FLOOR = 0.35  # smallest channel spread, relative to its group's reference channel


def _box_mean(a: np.ndarray, c: int) -> np.ndarray:
    """Mean over every c x c window of an (H, W, C) array, indexed by the window's top-left corner."""
    cs = np.pad(a.astype(np.float64), ((1, 0), (1, 0), (0, 0))).cumsum(0).cumsum(1)
    return ((cs[c:, c:] - cs[:-c, c:] - cs[c:, :-c] + cs[:-c, :-c]) / (c * c)).astype(np.float32)


def _warp(img: np.ndarray, angle: float, shift: tuple[float, float]) -> np.ndarray:
    """The image turned by ``angle`` degrees about its centre and shifted by ``shift`` (y, x) pixels."""
    t = math.radians(angle)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    centre = (np.array(img.shape[:2], dtype=float) - 1) / 2
    offset = centre - rot @ centre + np.asarray(shift, dtype=float)
    return np.stack([ndimage.affine_transform(img[..., k], rot, offset=offset, order=1, mode="reflect")
                     for k in range(img.shape[2])], axis=-1)


class PatchMatcher(Expert):
    """Few-shot patch comparison with the normal templates; see the module docstring."""

    name: ClassVar[str] = "patch"
    summary: ClassVar[str] = "training-free patch features compared with the normal templates (numpy/scipy)"
    Options: ClassVar[type[BaseModel]] = PatchOptions

    def __init__(self, options: BaseModel | None = None, data_root: Path | None = None) -> None:
        super().__init__(options, data_root)
        o: PatchOptions = self.options  # type: ignore[assignment]
        self.opts = o
        self.size = o.size
        self.cell = max(2, o.patch // 2)
        self.size -= self.size % self.cell
        self._feats: _LRU = _LRU(o.cache)
        self._pairs: _LRU = _LRU(max(4096, o.cache * 16))
        self._results: _LRU = _LRU(max(4096, o.cache * 16))
        self._refs: _LRU = _LRU(max(4096, o.cache * 16))

    # ------------------------------------------------------------------ features

    def _load(self, path: str) -> np.ndarray:
        with Image.open(path) as opened:
            im = opened.convert("RGB")
        if im.size != (self.size, self.size):
            im = im.resize((self.size, self.size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        return np.asarray(im, dtype=np.float32) / 255.0

    def _features(self, path: str) -> _Feat:
        return self._feats.get_or(path, lambda: self._compute_features(self._load(path)))

    def _compute_features(self, img: np.ndarray) -> _Feat:
        c = self.cell
        img = img * (0.5 / max(float(img.mean()), 1e-3))  # global brightness (exposure) is not a defect
        gray = img.mean(axis=2)
        smooth = ndimage.gaussian_filter(gray, 0.8, mode="nearest")
        gx = ndimage.sobel(smooth, axis=1, mode="nearest") / 8
        gy = ndimage.sobel(smooth, axis=0, mode="nearest") / 8
        mag = np.sqrt(gx * gx + gy * gy)
        inv = 1.0 / (mag + 1e-3)
        chans = np.stack([
            gray,
            img[..., 0] - img[..., 1],
            0.5 * (img[..., 0] + img[..., 1]) - img[..., 2],
            mag,
            (gx * gx - gy * gy) * inv,  # edge orientation, weighted by edge strength
            2 * gx * gy * inv,
            gray * gray,
        ], axis=-1)
        box = _box_mean(chans, c)  # every c x c window, by its top-left corner
        box[..., 6] = np.sqrt(np.maximum(box[..., 6] - box[..., 0] ** 2, 0.0))  # local contrast (std of grey)
        cells = box[::c, ::c]  # the non-overlapping cells
        # channel spread over the image; a channel the template barely uses (colour on grey metal)
        # is floored relative to its group, so tiny tint changes are not blown up
        spread = cells.reshape(-1, cells.shape[-1]).std(axis=0)
        intensity, gradient = [0, 1, 2, 6], [3, 4, 5]
        floor = np.empty_like(spread)
        floor[intensity] = _FLOOR * spread[0]
        floor[gradient] = _FLOOR * spread[3]
        scale = np.maximum(spread, np.maximum(floor, 1e-4))
        # a patch = 2x2 cells: 2c pixels wide; on the query grid neighbours overlap by half
        p = self.size - 2 * c + 1
        dense = np.concatenate([box[:p, :p], box[:p, c:c + p], box[c:c + p, :p], box[c:c + p, c:c + p]], axis=-1)
        dense = dense.astype(np.float32)
        return _Feat(dense, dense[::c, ::c], gray, np.tile(scale, 4).astype(np.float32))

    # ------------------------------------------------------------------ comparison

    def _shift(self, a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
        """Integer translation that moves ``b`` onto ``a`` (phase correlation)."""
        win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
        fa = np.fft.rfft2((a - a.mean()) * win)
        fb = np.fft.rfft2((b - b.mean()) * win)
        cross = fa * np.conj(fb)
        corr = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=a.shape)
        corr = ndimage.gaussian_filter(corr, 1.0, mode="wrap")
        h, w = a.shape
        limit = self.size // 8  # the best translation within +-limit pixels (periodic textures have many)
        dys = np.r_[0:limit + 1, h - limit:h]
        dxs = np.r_[0:limit + 1, w - limit:w]
        sub = corr[np.ix_(dys, dxs)]
        i, j = np.unravel_index(int(np.argmax(sub)), sub.shape)
        dy, dx = int(dys[i]), int(dxs[j])
        return (dy - h if dy > h // 2 else dy, dx - w if dx > w // 2 else dx)

    def _nn(self, q: _Feat, t: _Feat, shift: tuple[int, int], exclude: int = 0) -> np.ndarray:
        """Per query patch: distance to the nearest patch of ``t`` near its aligned position.

        Distances are in units of the template's own feature spread. The search visits every
        ``expert_step``-th pixel offset inside the window (after the alignment ``shift``), one
        vectorised pass per offset; offsets closer than ``exclude`` pixels are skipped (a template
        compared with itself).
        """
        o = self.opts
        inv = 1.0 / t.scale
        qn = q.query * inv
        g, c = qn.shape[0], self.cell
        radius = int(round(o.window * self.size))
        if not 0 < radius < self.size:
            return self._nn_global(qn, t.query * inv, int(math.ceil(exclude / c)))
        radius = max(radius, exclude)
        tn = t.dense * inv
        last = tn.shape[0] - 1
        base = np.arange(g) * c
        best = np.full((g, g), np.inf, np.float32)
        steps = range(-(radius // o.step) * o.step, radius + 1, o.step)
        cols = []
        for ox in steps:
            xs = base - shift[1] + ox
            cols.append((ox, np.clip(xs, 0, last), (xs < 0) | (xs > last)))
        for oy in steps:
            ys = base - shift[0] + oy
            rows = tn[np.clip(ys, 0, last)]
            off_y = (ys < 0) | (ys > last)
            for ox, xi, off_x in cols:
                if max(abs(oy), abs(ox)) < exclude:
                    continue
                diff = qn - rows[:, xi]
                d = np.einsum("ijk,ijk->ij", diff, diff)
                d[off_y] = np.inf  # positions off the template do not count
                d[:, off_x] = np.inf
                np.minimum(best, d, out=best)
        lost = ~np.isfinite(best)
        if lost.any():  # patches whose whole window fell off the template: search all of it
            best[lost] = self._nn_global(qn, t.query * inv, int(math.ceil(exclude / c)), lost)
        return np.sqrt(best)

    @staticmethod
    def _nn_global(qg: np.ndarray, tg: np.ndarray, skip: int, which: np.ndarray | None = None) -> np.ndarray:
        """Nearest template patch anywhere (skipping the ``skip``-cell neighbourhood), squared distances
        for the query patches selected by ``which``; plain distances on the whole grid when it is None."""
        g = qg.shape[0]
        sel = np.ones((g, g), bool) if which is None else which
        qa, ta = qg[sel], tg.reshape(g * g, -1)
        d = (qa * qa).sum(1)[:, None] + (ta * ta).sum(1)[None, :] - 2.0 * qa @ ta.T
        if skip:
            qy, qx = np.nonzero(sel)
            ty, tx = np.divmod(np.arange(g * g), g)
            near = np.maximum(np.abs(qy[:, None] - ty[None, :]), np.abs(qx[:, None] - tx[None, :])) < skip
            d = np.where(near, np.inf, d)
        best = np.maximum(d.min(axis=1), 0.0)
        return best if which is not None else np.sqrt(best).reshape(g, g)

    def _pair(self, query: str, template: str) -> np.ndarray:
        def make() -> np.ndarray:
            q, t = self._features(query), self._features(template)
            if query == template:  # one template: compare it with itself, minus its own neighbourhood
                return self._nn(q, t, (0, 0), exclude=2 * self.cell)
            return self._nn(q, t, self._shift(q.gray, t.gray))

        return self._pairs.get_or((query, template), make)

    def _map(self, query: str, templates: Sequence[str]) -> np.ndarray:
        raw = np.min(np.stack([self._pair(query, t) for t in templates]), axis=0)
        return ndimage.gaussian_filter(raw, 1.0, mode="nearest")

    def _threshold(self, templates: tuple[str, ...]) -> float:
        o = self.opts
        if len(templates) == 1:
            return o.self_scale * self._single_reference(templates[0])
        loo = [float(self._map(t, [u for u in templates if u != t]).max()) for t in templates]
        return o.threshold_scale * max(loo)

    def _single_reference(self, template: str) -> float:
        """What a normal image should score against a lone template, estimated from the template alone.

        Two estimates, the larger wins: the template compared with slightly shifted and turned copies
        of itself (how much a small misregistration costs; tight for objects), and a third of the
        template compared with itself outside each patch's own neighbourhood (how much the material
        varies from place to place; tight for textures, where copies match too well).
        """
        def make() -> float:
            img = self._load(template)
            ref = self._features(template)
            warped = []
            for sign in (1, -1):
                f = self._compute_features(_warp(img, 2.0 * sign, (1.0 * sign, 1.0)))
                m = ndimage.gaussian_filter(self._nn(f, ref, self._shift(f.gray, ref.gray)), 1.0, mode="nearest")
                warped.append(float(m[2:-2, 2:-2].max()))  # borders hold the copy's padding
            own = float(self._map(template, [template]).max())
            return max(max(warped), own / 3.0)

        return self._refs.get_or(template, make)

    def analyse(self, query: str, templates: Sequence[str], mask: str | None = None) -> AnomalyMap:
        """Anomaly map (on the patch grid), image score and decision threshold for a query and its templates."""
        if not templates:
            raise ValueError("the patch matcher compares the query with normal templates: give at least one")
        key = (query, tuple(templates))

        def make() -> AnomalyMap:
            amap = self._map(query, templates)
            centres = (np.arange(amap.shape[0]) + 1) * self.cell / self.size  # patch centres, fraction of the side
            return AnomalyMap(amap, float(amap.max()), self._threshold(tuple(dict.fromkeys(templates))),
                              rows=centres, cols=centres)

        return self._results.get_or(key, make)
