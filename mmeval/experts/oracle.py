"""``oracle``: the ground-truth mask as an "expert" map: the upper bound of what an expert's hint can give.

A defective image's map is its mask (1 inside, 0 outside); a normal image's map is empty. Scored
against the same masks it is perfect by construction, so it measures how much an MLLM can use a
correct hint, not a detector.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from mmeval.experts.base import AnomalyMap, Expert
from mmeval.experts.mapfile import open_image, read_mask


class OracleExpert(Expert):
    name: ClassVar[str] = "oracle"
    summary: ClassVar[str] = "the ground-truth mask (an upper bound: what a perfect detector would show)"
    needs_templates: ClassVar[bool] = False
    uses_mask: ClassVar[bool] = True

    def analyse(self, query: str, templates: Sequence[str], mask: str | None = None) -> AnomalyMap:
        if mask:
            grid = read_mask(Path(mask), "oracle: mask").astype(np.float32)
        else:
            with open_image(Path(query), "oracle: image") as im:
                grid = np.zeros((im.height, im.width), dtype=np.float32)
        return AnomalyMap(grid, score=float(grid.max()), threshold=0.5)
