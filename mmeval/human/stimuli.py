"""The questions people answer: exactly what a model is asked, in an order that gives nothing away.

A model run with the panel's data, seed, shots and ``--subset`` prepares the same requests (the same
rendered message, options in the same seeded order, the same normal templates): both go through
:func:`mmeval.run.prepare.prepare`. Two things differ for people:

- **Order.** MMAD's later questions about an image presuppose a defect ("what kind of defect ...?"), which
  gives away its Anomaly Detection answer. Every Anomaly Detection question comes first, in a block of
  its own; the rest follow once it is closed.
- **What the browser may see.** :func:`public_item` is the only view of a question that leaves the
  server: the question, the options, which of them mean Yes and No, and image numbers. Never the answer,
  the question id or an image path (paths name the defect, or "good").
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mmeval import tasks
from mmeval.config import RunConfig
from mmeval.data import Benchmark, Question
from mmeval.prompting.messages import ImagePart
from mmeval.run.prepare import Prepared, prepare
from mmeval.run.runner import asked, load

Block = Literal["detection", "main"]


@dataclass(frozen=True)
class Item:
    """One question of a session, at its place ``n`` in the order people see."""

    n: int
    prepared: Prepared
    block: Block

    @property
    def id(self) -> str:
        return self.prepared.request.id

    @property
    def images(self) -> list[ImagePart]:
        return self.prepared.request.message.images

    def image_path(self, k: int) -> Path | None:
        images = self.images
        return Path(images[k].path) if 0 <= k < len(images) else None


@dataclass
class Stimuli:
    """A session's questions in order, the practice questions, and the benchmark they came from."""

    bench: Benchmark
    items: list[Item]
    practice: list[Item]

    @property
    def detection_count(self) -> int:
        return sum(item.block == "detection" for item in self.items)


def ordered(prepared: Sequence[Prepared]) -> list[Item]:
    """Detection questions first (their block), then the rest; each block keeps the data's order."""
    detection = tasks.detection_task()
    first = [p for p in prepared if p.question.task == detection]
    rest = [p for p in prepared if p.question.task != detection]
    return ([Item(i, p, "detection") for i, p in enumerate(first)]
            + [Item(len(first) + i, p, "main") for i, p in enumerate(rest)])


def practice_questions(questions: Sequence[Question], exclude: set[str], count: int, seed: int) -> list[Question]:
    """``count`` questions outside the sample for the practice block, seeded, spread over the question types
    (detection ones first, as in the session)."""
    if count <= 0:
        return []
    digest = hashlib.sha256(f"practice:{seed}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    pool = [q for q in questions if q.id not in exclude]
    by_task: dict[str, list[Question]] = {}
    for q in pool:
        by_task.setdefault(q.task, []).append(q)
    for group in by_task.values():
        rng.shuffle(group)
    order = [t for t in tasks.task_names() if t in by_task] + sorted(set(by_task) - set(tasks.task_names()))
    picked: list[Question] = []
    while len(picked) < count and any(by_task[t] for t in order):
        for t in order:
            if by_task[t] and len(picked) < count:
                picked.append(by_task[t].pop())
    detection = tasks.detection_task()
    return sorted(picked, key=lambda q: q.task != detection)


def build(config: RunConfig, practice: int) -> Stimuli:
    """The session's items and practice items for a run config (any annotator's: only the model differs)."""
    bench = load(config)
    questions = asked(config, bench)
    items = ordered(prepare(questions, config))
    chosen = {q.id for q in questions}
    extra = prepare(practice_questions(bench.questions, chosen, practice, config.seed), config)
    return Stimuli(bench, items, [Item(i, p, "detection" if p.question.task == tasks.detection_task() else "main")
                                  for i, p in enumerate(extra)])


def yes_no(item: Item) -> dict[str, str] | None:
    """The letters meaning Yes and No, for questions whose options are such (the Y and N keys); else None."""
    yes, no = tasks.yes_no_letters(item.prepared.request.options)
    return {"yes": yes, "no": no} if yes and no else None


def public_item(item: Item, image_url: str) -> dict[str, Any]:
    """What the browser gets of one question; ``image_url`` has ``{k}`` where the image's number goes."""
    request = item.prepared.request
    return {
        "n": item.n,
        "block": item.block,
        "task": item.prepared.question.task,
        "question": item.prepared.question.question,
        "options": [[letter, text] for letter, text in request.options.items()],
        "yes_no": yes_no(item),
        "images": [{"url": image_url.format(k=k), "role": part.role} for k, part in enumerate(item.images)],
    }
