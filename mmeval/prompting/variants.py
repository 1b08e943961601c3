"""Extra questions derived from the benchmark: option rotations (CircularEval) and defect probes.

Both are data transforms: they add requests with their own ids and a ``variant`` tag, and leave the
plain questions untouched, so plain accuracy is the same with or without them.

- Rotations: each question is asked once per cyclic rotation of its (already shuffled) options; a
  question counts as correct under CircularEval only when every rotation is right.
- Probes: each normal image gets a question that presupposes a defect, with its category's defect
  types and "There is no defect." as options. Picking a defect is a fabrication (hallucination).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from mmeval.data import Question
from mmeval.data.schema import LETTERS
from mmeval.prompting.shuffle import question_rng, shuffle_options

PROBE_TASK = "Defect Probe"
PROBE_QUESTION = "Which defect does the object in the query image have?"
NO_DEFECT = "There is no defect."
PROBE_DEFECTS = 3


def rotate(options: dict[str, str], answer: str, k: int) -> tuple[dict[str, str], str]:
    """Shift option texts k places (A's text moves to B ...) and follow the answer."""
    texts = list(options.values())
    n = len(texts)
    rotated = [texts[(i - k) % n] for i in range(n)]
    letters = list(options)
    return dict(zip(letters, rotated, strict=True)), letters[(letters.index(answer) + k) % n]


def _defect_types(questions: Sequence[Question], task: str) -> dict[tuple[str, str], list[str]]:
    """Defect names per (dataset, category), from the correct answers of classification questions."""
    found: dict[tuple[str, str], dict[str, None]] = defaultdict(dict)
    for q in questions:
        if q.task == task:
            found[(q.dataset, q.category)][q.options[q.answer].strip()] = None
    return {k: list(v) for k, v in found.items()}


def probe_questions(questions: Sequence[Question], seed: int, classification_task: str) -> list[Question]:
    """One probe per normal image whose category has known defect types."""
    types = _defect_types(questions, classification_task)
    seen: set[str] = set()
    out = []
    for q in questions:
        names = types.get((q.dataset, q.category))
        if not q.is_normal or q.image in seen or not names:
            continue
        seen.add(q.image)
        qid = f"{q.image}#probe"
        picked = sorted(names)
        question_rng(seed, qid, "probe").shuffle(picked)
        texts = picked[:PROBE_DEFECTS] + [NO_DEFECT]
        options = {LETTERS[i]: t for i, t in enumerate(texts)}
        answer = LETTERS[len(texts) - 1]
        options, answer = shuffle_options(options, answer, seed, qid)
        out.append(replace(q, id=qid, index=-1, type_label=PROBE_TASK, task=PROBE_TASK, question=PROBE_QUESTION,
                           options=options, answer=answer))
    return out
