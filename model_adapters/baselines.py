"""Floor baselines: what an MLLM must beat to show it looked at the image at all."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mmeval.model_adapters.base import ModelAdapter
from mmeval.prompting.messages import Request, Response
from mmeval.prompting.shuffle import question_rng
from mmeval.tasks import yes_no_letters


class RandomAdapter(ModelAdapter):
    """Uniform chance, seeded per question so the answers do not depend on batching."""

    family = "random"
    default_batch_size = 256

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        for req in batch:
            letter = question_rng(self.seed, req.id, "random-baseline").choice(sorted(req.options))
            yield Response(id=req.id, text=letter)


class AlwaysNormalAdapter(ModelAdapter):
    """Says "no" whenever an option means No (see :func:`mmeval.tasks.option_polarity`), else picks the first
    option: the lazy inspector."""

    family = "always-normal"
    default_batch_size = 256

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        for req in batch:
            letter = yes_no_letters(req.options)[1] or min(req.options)
            yield Response(id=req.id, text=letter)
