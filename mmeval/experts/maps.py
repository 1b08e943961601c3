"""``maps``: anomaly maps computed elsewhere (AnomalyCLIP, PatchCore, anomalib ...), read from a folder.

The folder mirrors the image paths of the data: the map of ``DS-MVTec/bottle/image/broken_large/000.png``
is ``ROOT/DS-MVTec/bottle/image/broken_large/000.npy`` (a float array, H x W) or ``.../000.png`` (a
grey image, read as 0-1). A file that cannot serve as a map is an InputError naming it (:mod:`.mapfile`).
The image score is the map's maximum; ``threshold`` is the decision line (default 0.5, for maps scaled
to 0-1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from mmeval.errors import InputError
from mmeval.experts.base import AnomalyMap, Expert
from mmeval.experts.mapfile import read_map


class MapsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    maps: str = Field(description="folder of precomputed maps mirroring the image paths (.npy or .png)")
    threshold: float = Field(0.5, description="image score above which the image counts as defective")


class MapsExpert(Expert):
    name: ClassVar[str] = "maps"
    summary: ClassVar[str] = "precomputed anomaly maps from a folder mirroring the image paths (.npy or .png)"
    Options: ClassVar[type[BaseModel]] = MapsOptions
    needs_templates: ClassVar[bool] = False

    def __init__(self, options: BaseModel | None = None, data_root: Path | None = None) -> None:
        super().__init__(options, data_root)
        o: MapsOptions = self.options  # type: ignore[assignment]
        self.root = Path(o.maps).expanduser()
        if not self.root.is_dir():
            raise InputError(f"expert maps: no folder '{self.root}' (give maps=FOLDER mirroring the image paths)")
        self.threshold = o.threshold

    def _find(self, query: str) -> Path:
        path = Path(query)
        rel = path.relative_to(self.data_root) if self.data_root and path.is_relative_to(self.data_root) else path
        stem = self.root / rel.with_suffix("")
        for candidate in (stem.with_suffix(".npy"), stem.with_suffix(".png")):
            if candidate.is_file():
                return candidate
        raise InputError(f"expert maps: no map for '{rel}' (looked for {stem}.npy and {stem}.png)")

    def inputs(self, query: str, templates: Sequence[str], mask: str | None = None) -> list[Path]:
        return [*super().inputs(query, templates, mask), self._find(query)]

    def analyse(self, query: str, templates: Sequence[str], mask: str | None = None) -> AnomalyMap:
        grid = read_map(self._find(query), "expert maps: map")
        return AnomalyMap(grid, score=float(grid.max()), threshold=self.threshold)
