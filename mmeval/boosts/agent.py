"""``agent``: an expert anomaly detector's output shown to the MLLM (MMAD's "expert agent" boost).

The expert (``--boost-arg expert=patch|maps|oracle``, plus the expert's own options) analyses each
query image once. What the MLLM then receives (``view``):

- ``text``: the expert's image score, its threshold, its verdict and where its map is: every region of
  the 3x3 grid where it rises above the threshold (highest first), else where it is highest, else (a
  map the same everywhere) that it points nowhere;
- ``bbox``, ``contour``, ``highlight``, ``mask``, ``heatmap``: an extra image after the query, with
  sentences saying what the expert found (its verdict, and whether it marked anything) and that it may
  be wrong. The map is binarised before drawing
  (MMAD's rule by default; ``ratio``, ``median_above``, ``min_area``, ``max_boxes`` are options,
  since the binarisation is what decides whether a hint helps).

Everything depends only on the image, so it sits in the shared prefix. Maps and overlays are cached in
mmeval's home folder under the expert's cache key (:meth:`mmeval.experts.base.Expert.cache_key`: the
expert, its options and the bytes of every file it reads) and, for overlays, the drawing settings: a
rerun, a resume or another question about the same image finds them, and the prompt's image path is
the same each time; they are written atomically, so runs may share the cache. Each prediction records
the expert's verdict and where its map is, so the report can score the expert and see whether the MLLM
followed it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mmeval import experts, optionspec
from mmeval.boosts.base import Boost, BoostContext
from mmeval.boosts.overlays import Notation, fitted, marks_anything, render
from mmeval.data import Question
from mmeval.errors import InputError
from mmeval.experts.base import AnomalyMap
from mmeval.experts.binarise import Binarisation
from mmeval.home import atomic_write
from mmeval.prompting.draft import Draft, ExpertHint, Reference
from mmeval.regions import region_name

View = Literal["text", "bbox", "contour", "highlight", "mask", "heatmap"]


class AgentOptions(BaseModel):
    """The boost's own options; any other key is an option of the chosen expert."""

    model_config = ConfigDict(extra="allow")

    expert: str = Field("patch", description="the anomaly detector consulted (mmeval experts lists them)")
    view: View = Field("bbox", description="what the model receives: text, or an image drawn as bbox, contour, "
                                           "highlight, mask or heatmap")
    ratio: float = Field(2 / 3, gt=0, lt=1, description="binarisation: keep pixels above this share of the "
                                                        "normalised map's maximum")
    median_above: float = Field(0.5, gt=0, le=1, description="binarisation: when more than this share of pixels "
                                                             "passes, threshold at the median instead")
    min_area: float = Field(0.001, ge=0, lt=1, description="binarisation: drop regions smaller than this share "
                                                           "of the image")
    max_boxes: int | None = Field(None, ge=1, description="bbox: merge boxes until at most this many are left "
                                                          "(default 2, 3 with the oracle, as MMAD)")
    max_side: int = Field(512, ge=64, description="the overlay's long side in pixels (MMAD: 512)")


def _cached_map(path: Path) -> AnomalyMap | None:
    """The expert's answer kept at ``path``; None when there is none, or what is there cannot be read (then
    it is computed and written again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as f:
            return AnomalyMap(f["map"], float(f["score"]), float(f["threshold"]), f["rows"], f["cols"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


class AgentBoost(Boost):
    name: ClassVar[str] = "agent"
    summary: ClassVar[str] = "an anomaly detector's verdict or marked-up image shown to the model"
    Options: ClassVar[type[BaseModel]] = AgentOptions
    templates: ClassVar[tuple[str, ...]] = ("expert", "expert_text")

    def __init__(self, options: BaseModel, context: BoostContext) -> None:
        super().__init__(options, context)
        o: AgentOptions = self.options  # type: ignore[assignment]
        self.opts = o
        self.expert_args = dict(o.model_extra or {})
        self.expert = experts.build_expert(o.expert, self.expert_args, context.data_root)
        max_boxes = o.max_boxes or (3 if self.expert.uses_mask else 2)
        self.rule = Binarisation(o.ratio, o.median_above, o.min_area, max_boxes)
        self.cache = context.cache_dir
        self._maps: dict[str, tuple[AnomalyMap, str]] = {}
        self._overlays: dict[str, tuple[Path, bool]] = {}

    # ---------------------------------------------------------------------------------------- options

    @classmethod
    def owns(cls, key: str) -> bool:
        return key in AgentOptions.model_fields or key in experts.expert_option_names()

    @classmethod
    def split_options(cls, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return experts.split_with_expert(AgentOptions, raw, "--boost-arg (agent)")

    @classmethod
    def option_docs(cls) -> list[optionspec.OptionDoc]:
        return experts.option_docs_with_experts(AgentOptions)

    @classmethod
    def resolved_options(cls, args: dict[str, Any]) -> dict[str, Any]:
        return experts.resolved_with_expert(AgentOptions, args, "--boost-arg (agent)")

    # ---------------------------------------------------------------------------------------- analysis

    def prepare(self, questions: Sequence[Question]) -> None:
        if self.expert.needs_templates and any(not q.template_paths for q in questions):
            raise InputError(f"--boost agent: the '{self.expert.name}' expert compares the query with normal "
                             "templates: give --shots 1 or more, or another expert (maps, oracle)")

    def _analysis(self, q: Question) -> tuple[AnomalyMap, str]:
        if q.image in self._maps:
            return self._maps[q.image]
        key = self.expert.cache_key(q.query_path, list(q.template_paths), q.mask_path)
        path = self.cache / "maps" / f"{key}.npz"
        amap = _cached_map(path)
        if amap is None:
            amap = self.expert.analyse(q.query_path, list(q.template_paths), q.mask_path)
            with atomic_write(path) as fh:
                np.savez_compressed(fh, map=amap.map, score=amap.score, threshold=amap.threshold, rows=amap.rows,
                                    cols=amap.cols)
        self._maps[q.image] = (amap, key)
        return amap, key

    def _overlay(self, q: Question, amap: AnomalyMap, key: str) -> tuple[Path, bool]:
        """The overlay's cached image (drawn when missing) and whether it marks anything (once per image)."""
        if q.image in self._overlays:
            return self._overlays[q.image]
        settings = json.dumps([self.opts.view, self.rule.__dict__, self.opts.max_side], sort_keys=True)
        name = f"{key}-{hashlib.sha256(settings.encode()).hexdigest()[:12]}.png"
        path = self.cache / "overlays" / name
        from PIL import Image

        with Image.open(q.query_path) as im:
            size = im.size
        view: Notation = self.opts.view  # type: ignore[assignment]  # every view but text
        base, grid = fitted(q.query_path, amap.to_image(size[1], size[0]), self.opts.max_side)
        if not path.is_file():
            with atomic_write(path) as fh:
                render(base, grid, view, self.rule).save(fh, format="PNG")
        self._overlays[q.image] = (path, marks_anything(grid, view, self.rule))
        return self._overlays[q.image]

    # ---------------------------------------------------------------------------------------- the transform

    def apply(self, draft: Draft) -> Draft:
        q = draft.question
        amap, key = self._analysis(q)
        region = None if amap.flat else region_name(*amap.peak_cell())
        note: dict[str, Any] = {"expert": self.expert.name, "view": self.opts.view, "score": round(amap.score, 6),
                                "threshold": round(amap.threshold, 6), "defective": amap.defective,
                                "region": region, "map": str(self.cache / "maps" / f"{key}.npz"),
                                "region_scores": {region_name(*cell): v for cell, v in amap.region_scores().items()}}
        if self.opts.view == "text":
            above = tuple(region_name(*cell) for cell in amap.regions_above(amap.threshold))
            hint = ExpertHint(amap.score, amap.threshold, amap.defective, region, above)
            return draft.with_(hints=(*draft.hints, hint), notes={**draft.notes, self.name: note})
        overlay, marked = self._overlay(q, amap, key)
        note["overlay"] = str(overlay)
        ref = Reference(str(overlay), self.opts.view, marked=marked, defective=amap.defective)
        return draft.with_(references=(*draft.references, ref), notes={**draft.notes, self.name: note})

    def record(self) -> dict[str, Any]:
        return {"expert": self.expert.name, "view": self.opts.view, "binarisation": dict(self.rule.__dict__),
                "images_analysed": len(self._maps)}
