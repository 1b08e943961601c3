"""The Expert protocol: an anomaly detector that looks at a query image and its normal templates.

An expert answers one thing: *where does this image differ from normal, how much, and where is the
line between normal and defective?* (:class:`AnomalyMap`). Whoever consumes that answer decides what
to do with it: the ``expert`` model family turns it into answers (a policy), a boost shows it to an
MLLM, a report scores its maps against the masks. Experts know nothing of questions or prompts.

Adding an expert is one module with a subclass of :class:`Expert`, plus one line in
:data:`mmeval.experts.EXPERTS`.

Whoever keeps an expert's answer for later (the agent boost caches maps on disk) keys it with
:meth:`Expert.cache_key`, which the base class owns: the expert's name and version, its options
(defaults included; operational ones aside) and the bytes of every file :meth:`Expert.inputs` lists.
By default that is the query, the templates when the expert compares with them and the mask when it
reads one; an expert that reads anything else (a folder of maps, weights) adds those files to
:meth:`Expert.inputs`, so replacing them never serves a stale answer.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from mmeval import optionspec
from mmeval.errors import InputError
from mmeval.regions import cell_of


class NoExpertOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _centres(n: int) -> np.ndarray:
    return (np.arange(n) + 0.5) / n


@dataclass(frozen=True)
class AnomalyMap:
    """An expert's view of one query image.

    ``map`` (H x W, float) covers the whole image; higher means more anomalous. ``rows`` and ``cols``
    give the centre of each map row and column as a fraction of the image's height and width (a map of
    overlapping patches need not tile the image evenly); by default the cells tile it. ``score`` is the
    image-level anomaly score and ``threshold`` the expert's own decision line: above it, "defective".
    """

    map: np.ndarray
    score: float
    threshold: float
    rows: np.ndarray = field(default_factory=lambda: np.empty(0))
    cols: np.ndarray = field(default_factory=lambda: np.empty(0))

    def __post_init__(self) -> None:
        if self.map.ndim != 2:
            raise ValueError(f"an anomaly map is 2-D (H x W), got shape {self.map.shape}")
        if not len(self.rows):
            object.__setattr__(self, "rows", _centres(self.map.shape[0]))
        if not len(self.cols):
            object.__setattr__(self, "cols", _centres(self.map.shape[1]))

    @property
    def defective(self) -> bool:
        return self.score > self.threshold

    def to_image(self, height: int, width: int) -> np.ndarray:
        """The map resampled to an image of ``height`` x ``width`` pixels (bilinear between cell centres)."""
        ys = (np.arange(height) + 0.5) / height
        xs = (np.arange(width) + 0.5) / width
        grid = np.asarray(self.map, dtype=np.float64)
        across = np.stack([np.interp(xs, self.cols, row) for row in grid])  # (rows, width)
        return np.stack([np.interp(ys, self.rows, across[:, j]) for j in range(width)], axis=1).astype(np.float32)

    def peak_cell(self) -> tuple[int, int]:
        """The 3x3 grid cell (row, col) where the map peaks: the centre of its highest values.

        A single peak names its own cell; a plateau (a binary mask, say) names the cell of its centre, which
        is how MMAD names a defect's location.
        """
        top = self.map >= self.map.max()
        ys, xs = np.nonzero(top)
        return cell_of(float(self.rows[ys].mean()), float(self.cols[xs].mean()), 1.0, 1.0)

    @property
    def flat(self) -> bool:
        """Whether the map is the same everywhere (an oracle's empty mask ...): it points nowhere."""
        return bool(self.map.max() <= self.map.min())

    def regions_above(self, line: float) -> list[tuple[int, int]]:
        """The grid cells where the map rises above ``line`` (the expert's threshold), highest first, the
        peak's own cell before others as high; empty for a flat map."""
        if self.flat:
            return []
        scores = self.region_scores()
        peak = self.peak_cell()
        above = [cell for cell, v in scores.items() if v > line]
        return sorted(above, key=lambda cell: (-scores[cell], cell != peak, cell))

    def region_scores(self) -> dict[tuple[int, int], float]:
        """Per cell of the 3x3 region grid: the map's maximum there (an empty cell gets the map's minimum)."""
        band_r = np.array([cell_of(float(r), 0.0, 1.0, 1.0)[0] for r in self.rows])
        band_c = np.array([cell_of(0.0, float(c), 1.0, 1.0)[1] for c in self.cols])
        out = {}
        for r in range(3):
            for c in range(3):
                sub = self.map[np.ix_(band_r == r, band_c == c)]
                out[(r, c)] = float(sub.max()) if sub.size else float(self.map.min())
        return out


class Expert(ABC):
    """An anomaly detector; subclasses set ``name`` and ``Options`` and implement :meth:`analyse`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoExpertOptions
    #: whether :meth:`analyse` needs normal templates (few-shot experts) or works on the query alone
    needs_templates: ClassVar[bool] = True

    #: whether :meth:`analyse` reads the ground-truth mask (an oracle: an upper bound, not a detector)
    uses_mask: ClassVar[bool] = False

    #: raise it when a change of the code changes what :meth:`analyse` returns for the same inputs
    version: ClassVar[int] = 1

    def __init__(self, options: BaseModel | None = None, data_root: Path | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.data_root = data_root

    @abstractmethod
    def analyse(self, query: str, templates: Sequence[str], mask: str | None = None) -> AnomalyMap:
        """The anomaly map, image score and threshold of ``query`` (a path), given normal ``templates``.

        ``mask`` is the ground-truth mask's path (None for a normal image); only an oracle reads it.
        """

    def inputs(self, query: str, templates: Sequence[str], mask: str | None = None) -> list[Path]:
        """Every file :meth:`analyse` reads for this query: the query, the templates when the expert needs
        them, the mask when it reads one. An expert that reads other files adds them (see the module doc)."""
        files = [Path(query)]
        if self.needs_templates:
            files += [Path(t) for t in templates]
        if self.uses_mask and mask:
            files.append(Path(mask))
        return files

    def cache_key(self, query: str, templates: Sequence[str], mask: str | None = None) -> str:
        """What this expert's answer for the query depends on, hashed: its name and version, its options
        (defaults included, operational ones aside) and the bytes of every file of :meth:`inputs`."""
        options = {k: v for k, v in self.options.model_dump(mode="json").items()
                   if not optionspec.is_operational(type(self.options), k)}
        try:
            files = [_file_digest(p) for p in self.inputs(query, templates, mask)]
        except OSError as exc:
            raise InputError(f"expert {self.name}: cannot read {exc.filename or query}: {exc.strerror or exc}"
                             ) from None
        blob = json.dumps([self.name, self.version, options, files], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
