"""The official MMAD scripts' answers files: read them for re-scoring, write them for old tooling.

An answers file is a JSON list of ``{image, question, question_type, correct_answer, gpt_answer}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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


#: the letters MMAD's summary accepts as an answer at all
OFFICIAL_LETTERS = "ABCDE"


def _offered(a: OfficialAnswer) -> str:
    """The letters the question offered: its options when the file records them, else MMAD's A-E."""
    options = a.question.get("options") if isinstance(a.question, dict) else None
    if isinstance(options, dict) and options:
        return "".join(k for k in options if isinstance(k, str) and len(k) == 1 and k in LETTERS)
    return OFFICIAL_LETTERS


def official_survivors(answers: list[OfficialAnswer]) -> list[int]:
    """The positions MMAD's summary counts, exactly as its loop does.

    The summary walks the answers list and removes an answer whose letters are not A-E *from the list it is
    walking*, so the answer right after each removed one is never looked at (and ``list.remove`` drops the
    first equal answer, which is the same one unless the file repeats it). This replays that walk.
    """
    letters = list(OFFICIAL_LETTERS)  # membership in a list: exact strings, no trimming
    walk: list[tuple[int, OfficialAnswer]] = list(enumerate(answers))
    counted: list[int] = []
    for pos, a in walk:
        if a.correct_answer not in letters or a.gpt_answer not in letters:
            walk.remove(next(e for e in walk if e[1] == a))  # the summary's list.remove(answer), by equality
            continue
        counted.append(pos)
    return counted


def answers_frame(answers: Iterable[OfficialAnswer], *, official_quirks: bool = False) -> pd.DataFrame:
    """The same per-question frame :func:`mmeval.scoring.frame` builds from predictions.

    An answer is valid when it is one of the question's letters (its options, when the file records them,
    else A-E). With ``official_quirks`` the frame holds exactly what MMAD's summary counts: only letters A-E,
    invalid answers dropped, and the answer after each dropped one skipped as its loop skips it.
    """
    answers = list(answers)
    keep = set(official_survivors(answers)) if official_quirks else None
    rows = []
    for i, a in enumerate(answers):
        if keep is not None and i not in keep:
            continue
        task = tasks.resolve(a.question_type)
        given = (a.gpt_answer or "") if official_quirks else (a.gpt_answer or "").strip()
        valid = len(given) == 1 and given in (OFFICIAL_LETTERS if official_quirks else _offered(a))
        rows.append({"id": f"{a.image}#{i}", "image": a.image, "dataset": a.image.split("/")[0],
                     "category": a.image.split("/")[1] if a.image.count("/") > 1 else "",
                     "task": task.name if task else a.question_type, "is_normal": NORMAL_MARK in a.image,
                     "answer": a.correct_answer, "choice": given if valid else None, "valid": valid,
                     "error": False, "correct": valid and given == a.correct_answer})
    return pd.DataFrame(rows)


def export_answers(preds: Iterable[Prediction], path: Path) -> None:
    """Write predictions as an official answers file (the question dict carries text and options).

    One answer per line: a JSON list any reader loads, written by the C encoder a few thousand answers
    per call (an indented dump of MMAD's 39,672 answers takes seconds; one call for all of them holds
    the whole text in memory several times), each call's text broken after every answer: ``}, {"image": ``
    cannot occur inside a JSON string, whose quotes are escaped.
    """
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("[\n")
        chunk: list[dict[str, Any]] = []
        first = True
        for p in preds:
            chunk.append({"image": p.image, "question": {"type": "text", "text": p.question, "options": p.options},
                          "question_type": p.type, "correct_answer": p.answer, "gpt_answer": p.choice or ""})
            if len(chunk) == _CHUNK:
                fh.write(("" if first else ",\n") + _answer_lines(chunk))
                chunk, first = [], False
        if chunk:
            fh.write(("" if first else ",\n") + _answer_lines(chunk))
        fh.write("\n]\n")


#: answers encoded per call by :func:`export_answers`
_CHUNK = 4096


def _answer_lines(chunk: list[dict[str, Any]]) -> str:
    return json.dumps(chunk, ensure_ascii=False)[1:-1].replace('}, {"image": ', '},\n{"image": ')
