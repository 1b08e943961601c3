"""The official MMAD scripts' answers files: read them for re-scoring, write them for old tooling.

An answers file is a JSON list of ``{image, question, question_type, correct_answer, gpt_answer}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from pydantic import TypeAdapter, ValidationError

from mmeval import tasks
from mmeval.data import NORMAL_MARK, read_json_any
from mmeval.data.schema import LETTERS, OfficialAnswer
from mmeval.errors import InputError
from mmeval.predictions import Prediction


def read_answers(path: Path) -> list[OfficialAnswer]:
    data = read_json_any(path)
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of answers, got {type(data).__name__}")
    try:
        return TypeAdapter(list[OfficialAnswer]).validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        index = err["loc"][0] if err["loc"] else "?"
        field = ".".join(str(p) for p in err["loc"][1:]) or "record"
        raise InputError(f"{path}: answer #{index}: {field}: {err['msg']}") from None


def answers_frame(answers: Iterable[OfficialAnswer]) -> pd.DataFrame:
    """The same per-question frame :func:`mmeval.scoring.frame` builds from predictions."""
    rows = []
    for i, a in enumerate(answers):
        task = tasks.resolve(a.question_type)
        given = (a.gpt_answer or "").strip()
        valid = len(given) == 1 and given in LETTERS
        rows.append({"id": f"{a.image}#{i}", "image": a.image, "dataset": a.image.split("/")[0],
                     "category": a.image.split("/")[1] if a.image.count("/") > 1 else "",
                     "task": task.name if task else a.question_type, "is_normal": NORMAL_MARK in a.image,
                     "answer": a.correct_answer, "choice": given if valid else None, "valid": valid,
                     "error": False, "correct": valid and given == a.correct_answer})
    return pd.DataFrame(rows)


def export_answers(preds: Iterable[Prediction], path: Path) -> None:
    """Write predictions as an official answers file (the question dict carries text and options)."""
    out = [{"image": p.image,
            "question": {"type": "text", "text": p.question, "options": p.options},
            "question_type": p.type, "correct_answer": p.answer, "gpt_answer": p.choice or ""}
           for p in preds]
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")
