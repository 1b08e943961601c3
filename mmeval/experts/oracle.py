"""``oracle``: the ground-truth mask as an "expert" map: the upper bound of what an expert's hint can give.

A defective image's map is its mask (1 inside, 0 outside); a normal image's map is empty. Scored
against the same masks it is perfect by construction, so it measures how much an MLLM can use a
correct hint, not a detector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from PIL import Image

from mmeval.experts.base import AnomalyMap, Expert


def read_mask(path: str) -> np.ndarray:
    """A mask file as a boolean array (any non-zero pixel is defect; colour masks count every channel)."""
    with Image.open(path) as im:
        arr = np.asarray(im)
    return (arr.max(axis=-1) if arr.ndim == 3 else arr) > 0


class OracleExpert(Expert):
    name: ClassVar[str] = "oracle"
    summary: ClassVar[str] = "the ground-truth mask (an upper bound: what a perfect detector would show)"
    needs_templates: ClassVar[bool] = False
    uses_mask: ClassVar[bool] = True

    def analyse(self, query: str, templates: Sequence[str], mask: str | None = None) -> AnomalyMap:
        if mask:
            grid = read_mask(mask).astype(np.float32)
        else:
            with Image.open(query) as im:
                grid = np.zeros((im.height, im.width), dtype=np.float32)
        return AnomalyMap(grid, score=float(grid.max()), threshold=0.5)
