"""Questions -> prepared requests: shuffled, varied (rotations, probes), boosted and rendered.

Each image's questions stay adjacent (probes right after the image's own questions), which adapters
that reuse an image's encoded prefix rely on, and which lets the runner batch and shard whole images.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmeval import tasks
from mmeval.boosts import Boost
from mmeval.config import RunConfig
from mmeval.data import Question
from mmeval.errors import InputError
from mmeval.layout import PROBE
from mmeval.prompting.draft import Draft
from mmeval.prompting.messages import Request
from mmeval.prompting.shuffle import shuffle_options
from mmeval.prompting.styles import places_every_slot, refuse_unplaced, renderer
from mmeval.prompting.variants import probe_questions, rotate


@dataclass
class Prepared:
    """A request ready for the adapter, with what the prediction needs to be written."""

    question: Question
    request: Request
    answer: str
    variant: str | None = None
    base_id: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    #: what the prediction depends on in the data; a changed digest means the question is asked again
    digest: str = ""

    @property
    def image(self) -> str:
        return self.request.image


def _drafts(questions: Sequence[Question], config: RunConfig) -> Iterator[tuple[Draft, str, str | None, str | None]]:
    """(draft, request id, variant, base id) for every question, its rotations and the image probes."""
    probes: dict[str, Question] = {}
    if config.probes:
        classification = tasks.by_role("defect-type")
        if classification is None:
            raise InputError("--probes needs a task with role 'defect-type' (the defect names come from its answers)")
        probes = {p.image: p for p in probe_questions(questions, config.seed, classification.name)}
    for i, q in enumerate(questions):
        if config.shuffle:
            options, answer = shuffle_options(q.options, q.answer, config.seed, q.id)
        else:
            options, answer = dict(q.options), q.answer
        yield Draft(q, options, answer), q.id, None, None
        if config.circular:
            for k in range(1, len(options)):
                rot_options, rot_answer = rotate(options, answer, k)
                yield Draft(q, rot_options, rot_answer), f"{q.id}@rot{k}", f"rot{k}", q.id
        last_of_image = i + 1 == len(questions) or questions[i + 1].image != q.image
        if last_of_image and q.image in probes:
            p = probes[q.image]
            yield Draft(p, p.options, p.answer), p.id, PROBE, None


def _probe_digest(base: str, draft: Draft) -> str:
    """A probe's options come from its category's other records: its digest covers them."""
    blob = json.dumps([base, draft.options, draft.answer], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prepare(questions: Sequence[Question], config: RunConfig, boosts: Sequence[Boost] = ()) -> list[Prepared]:
    """Shuffle, vary, boost (in order) and render every question."""
    out: list[Prepared] = []
    render = renderer(config.prompt_style)
    check = not places_every_slot(config.prompt_style)
    for draft, rid, variant, base_id in _drafts(questions, config):
        for boost in boosts:
            draft = boost.apply(draft)
            if check:  # before anything is asked: a boost whose additions the style cannot show is refused
                refuse_unplaced(config.prompt_style, draft, boost.name)
        q = draft.question
        request = Request(id=rid, task=q.task, image=q.image, options=draft.options, message=render(draft))
        digest = q.digest if variant != PROBE else _probe_digest(q.digest, draft)
        out.append(Prepared(q, request, draft.answer, variant, base_id, dict(draft.notes), digest))
    return out
