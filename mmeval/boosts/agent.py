"""``agent``: an expert anomaly detector's output shown to the MLLM (MMAD's "expert agent" boost).

The expert (``--boost-arg expert=patch|maps|oracle``, plus the expert's own options) analyses each
query image once. What the MLLM then receives (``view``):

- ``text``: the expert's image score, its threshold, its verdict and the region of the 3x3 grid where
  its map peaks, in one sentence;
- ``bbox``, ``contour``, ``highlight``, ``mask``, ``heatmap``: an extra image after the query, with a
  sentence saying the marks are suggestions that may be wrong. The map is binarised before drawing
  (MMAD's rule by default; ``ratio``, ``median_above``, ``min_area``, ``max_boxes`` are options,
  since the binarisation is what decides whether a hint helps).

Everything depends only on the image, so it sits in the shared prefix. Maps and overlays are cached in
mmeval's home folder under a key made of the image files' bytes, the expert and its options (and the
drawing settings for overlays): a rerun, a resume or another question about the same image finds them,
and the prompt's image path is the same each time. Each prediction records the expert's verdict and
where its map is, so the report can score the expert and see whether the MLLM followed it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mmeval import experts, optionspec
from mmeval.boosts.base import Boost, BoostContext
from mmeval.boosts.overlays import draw
from mmeval.data import Question
from mmeval.errors import InputError
from mmeval.experts.base import AnomalyMap
from mmeval.experts.binarise import Binarisation
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


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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

    def _key(self, q: Question) -> str:
        """What the expert's answer depends on: the expert, its options, and the bytes of the files it reads."""
        files = [q.query_path, *q.template_paths] if self.expert.needs_templates else [q.query_path]
        if self.expert.uses_mask and q.mask_path:
            files.append(q.mask_path)
        blob = json.dumps([self.expert.name, self.expert_args, [_file_digest(f) for f in files]], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def _analysis(self, q: Question) -> tuple[AnomalyMap, str]:
        if q.image in self._maps:
            return self._maps[q.image]
        key = self._key(q)
        path = self.cache / "maps" / f"{key}.npz"
        if path.is_file():
            with np.load(path) as f:
                amap = AnomalyMap(f["map"], float(f["score"]), float(f["threshold"]), f["rows"], f["cols"])
        else:
            amap = self.expert.analyse(q.query_path, list(q.template_paths), q.mask_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, map=amap.map, score=amap.score, threshold=amap.threshold, rows=amap.rows,
                                cols=amap.cols)
            tmp.replace(path)
        self._maps[q.image] = (amap, key)
        return amap, key

    def _overlay(self, q: Question, amap: AnomalyMap, key: str) -> Path:
        settings = json.dumps([self.opts.view, self.rule.__dict__, self.opts.max_side], sort_keys=True)
        name = f"{key}-{hashlib.sha256(settings.encode()).hexdigest()[:12]}.png"
        path = self.cache / "overlays" / name
        if not path.is_file():
            from PIL import Image

            with Image.open(q.query_path) as im:
                size = im.size
            image = draw(q.query_path, amap.to_image(size[1], size[0]), self.opts.view,  # type: ignore[arg-type]
                         self.rule, self.opts.max_side)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.png")
            image.save(tmp, format="PNG")
            tmp.replace(path)
        return path

    # ---------------------------------------------------------------------------------------- the transform

    def apply(self, draft: Draft) -> Draft:
        q = draft.question
        amap, key = self._analysis(q)
        region = region_name(*amap.peak_cell())
        note: dict[str, Any] = {"expert": self.expert.name, "view": self.opts.view, "score": round(amap.score, 6),
                                "threshold": round(amap.threshold, 6), "defective": amap.defective,
                                "region": region, "map": str(self.cache / "maps" / f"{key}.npz")}
        if self.opts.view == "text":
            hint = ExpertHint(amap.score, amap.threshold, amap.defective, region)
            return draft.with_(hints=(*draft.hints, hint), notes={**draft.notes, self.name: note})
        overlay = self._overlay(q, amap, key)
        note["overlay"] = str(overlay)
        return draft.with_(references=(*draft.references, Reference(str(overlay), self.opts.view)),
                           notes={**draft.notes, self.name: note})

    def record(self) -> dict[str, Any]:
        return {"expert": self.expert.name, "view": self.opts.view, "binarisation": dict(self.rule.__dict__),
                "images_analysed": len(self._maps)}
