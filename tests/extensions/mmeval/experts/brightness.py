"""``brightness``: where the query is brighter or darker than its normal templates, cell by cell (an expert:
this module and one line in ``EXPERTS``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from mmeval.experts.base import AnomalyMap, Expert


class BrightnessOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cells: int = Field(8, ge=2, description="cells per side of the compared grid")
    threshold: float = Field(0.08, gt=0, description="a cell this far from the templates' brightness is a defect")


def _grey(path: str, cells: int) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize((cells, cells), Image.Resampling.BOX), dtype=np.float32) / 255


class Brightness(Expert):
    name: ClassVar[str] = "brightness"
    summary: ClassVar[str] = "brightness of each cell against the normal templates"
    Options: ClassVar[type[BaseModel]] = BrightnessOptions

    def analyse(self, query: str, templates: Sequence[str], mask: str | None = None) -> AnomalyMap:
        o: BrightnessOptions = self.options  # type: ignore[assignment]
        normal = np.mean([_grey(t, o.cells) for t in templates], axis=0)
        difference = np.abs(_grey(query, o.cells) - normal)
        return AnomalyMap(difference, score=float(difference.max()), threshold=o.threshold)
