"""Floor baselines: what an MLLM must beat to show it looked at the image at all."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mmeval.model_adapters.base import ModelAdapter
from mmeval.prompting.messages import Request, Response
from mmeval.prompting.shuffle import question_rng

_NO_WORDS = ("no", "no.", "no defect", "no defect.", "normal", "normal.")


class RandomAdapter(ModelAdapter):
    """Uniform chance, seeded per question so the answers do not depend on batching."""

    family = "random"
    batch_size = 256

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        for req in batch:
            letter = question_rng(self.seed, req.id, "random-baseline").choice(sorted(req.options))
            yield Response(id=req.id, text=letter)


class AlwaysNormalAdapter(ModelAdapter):
    """Says "no defect" whenever an option says so, else the first option: the lazy inspector."""

    family = "always-normal"
    batch_size = 256

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        for req in batch:
            letter = next((k for k, t in req.options.items() if t.strip().lower() in _NO_WORDS), min(req.options))
            yield Response(id=req.id, text=letter)
