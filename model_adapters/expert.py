"""The ``expert`` model family: an answering policy over an anomaly detector (:mod:`mmeval.experts`).

The detector (``-M expert=patch`` by default, the training-free patch matcher) looks at the query and
its normal templates and returns an anomaly map, an image score and its own threshold. This policy
turns that into answers:

* Detection (the Yes/No defect question): "Yes" when the score exceeds the threshold. ``scores``
  carries log-sigmoid margins for both options, so AUROC can be computed.
* Defect location: the option naming the 3x3-grid region that holds the map's peak (if no option
  names it, the offered region where the map peaks highest); chance if no option names a region.
* Every other question, and every question asked without templates (``--shots 0``): a seeded chance
  answer, reproducible and independent of batch order.

Which question is which comes from the task's role (:mod:`mmeval.tasks`), never its name. Options
other than ``expert`` and ``temperature`` go to the detector (``mmeval models show expert`` lists them).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from mmeval import experts
from mmeval.errors import InputError
from mmeval.model_adapters.base import AdapterError, AdapterSettings, ModelAdapter
from mmeval.optionspec import OptionDoc
from mmeval.prompting.messages import Request, Response
from mmeval.prompting.shuffle import question_rng
from mmeval.regions import best_named, option_region
from mmeval.tasks import has_role, yes_no_letters


class ExpertOptions(BaseModel):
    """The policy's own options; any other key is an option of the chosen detector."""

    model_config = ConfigDict(extra="allow")

    expert: str = Field("patch", description="the anomaly detector that answers (see mmeval.experts)")
    temperature: float = Field(8.0, gt=0, description="steepness of the option scores (log-sigmoid / log-softmax of "
                                                      "margins relative to the threshold or peak)")


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x > -30 else x


class ExpertAdapter(ModelAdapter):
    """Answers detection and localization questions from an anomaly detector, the rest by chance."""

    family: ClassVar[str] = "expert"
    Options: ClassVar[type[BaseModel]] = ExpertOptions
    default_batch_size = 64

    def __init__(self, name: str = "expert", options: BaseModel | None = None,
                 settings: AdapterSettings | None = None) -> None:
        super().__init__(name, options, settings)
        o: ExpertOptions = self.options  # type: ignore[assignment]
        self.temperature = o.temperature
        try:
            self.detector = experts.build_expert(o.expert, dict(o.model_extra or {}))
        except InputError as exc:
            raise AdapterError(f"--model-arg: {exc}") from None
        if self.detector.uses_mask:
            raise AdapterError(f"--model expert -M expert={o.expert}: that expert reads the ground-truth mask, which "
                               "a model must never see; show it to a model with --boost agent --boost-arg "
                               f"expert={o.expert} instead")
        self.needs_templates = self.detector.needs_templates
        self.stats = {"detector": 0, "chance": 0}

    @classmethod
    def split_options(cls, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return experts.split_with_expert(ExpertOptions, raw, "--model-arg")

    @classmethod
    def option_docs(cls) -> list[OptionDoc]:
        return experts.option_docs_with_experts(ExpertOptions)

    def _chance(self, request: Request) -> str:
        """A uniform draw seeded by (adapter seed, question id): reproducible, whatever the batching."""
        return question_rng(self.seed, request.id, "expert-chance").choice(sorted(request.options))

    def _answer(self, request: Request) -> Response:
        templates = [str(p) for p in request.image_paths("template")]
        queries = [str(p) for p in request.image_paths("query")]
        detect, locate = has_role(request.task, "detection"), has_role(request.task, "defect-location")
        if queries and (templates or not self.detector.needs_templates) and (detect or locate):
            yes, no = yes_no_letters(request.options)
            regions = {k: option_region(v) for k, v in request.options.items()}
            if detect and yes and no:
                return self._detect(request, self.detector.analyse(queries[-1], templates), yes, no)
            named = {k: r for k, r in regions.items() if r is not None}
            if locate and named:
                return self._locate(request, self.detector.analyse(queries[-1], templates), named)
        self.stats["chance"] += 1
        return Response(id=request.id, text=self._chance(request))

    def _detect(self, request: Request, amap: experts.AnomalyMap, yes: str, no: str) -> Response:
        margin = self.temperature * (amap.score - amap.threshold) / max(amap.threshold, 1e-6)
        self.stats["detector"] += 1
        letter = yes if margin > 0 else no
        return Response(id=request.id, text=letter,
                        scores={yes: round(_log_sigmoid(margin), 6), no: round(_log_sigmoid(-margin), 6)})

    def _locate(self, request: Request, amap: experts.AnomalyMap, named: dict[str, tuple[int, int]]) -> Response:
        best = amap.region_scores()
        # the named region where the map peaks highest (the peak's own region when it is offered)
        raw = {k: best[r] for k, r in named.items()}
        letter = best_named(request.options, best)
        top = max(raw.values())
        z = {k: self.temperature * (v - top) / max(top, 1e-6) for k, v in raw.items()}
        norm = math.log(sum(math.exp(v) for v in z.values()))
        self.stats["detector"] += 1
        return Response(id=request.id, text=letter, scores={k: round(v - norm, 6) for k, v in z.items()})

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        for request in batch:
            try:
                yield self._answer(request)
            except (OSError, ValueError, MemoryError) as exc:  # an image the data check let through: same next time
                yield Response(id=request.id, error=f"expert: {type(exc).__name__}: {exc}", retryable=False)

    def run_info(self) -> dict[str, object]:
        return {"expert": self.detector.name, "answered_by_detector": self.stats["detector"],
                "answered_by_chance": self.stats["chance"]}
