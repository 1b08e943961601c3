"""How far the annotators agree: Fleiss' kappa and Krippendorff's alpha per question type, Cohen's kappa per pair.

Each annotator's answer is the letter chosen; the option order is the same for everyone (seeded by the
question), so a letter names the same option for all. "Unsure" and unanswered questions are missing
values. The statistics come from the field's maintained implementations, not from formulas of our own:

- **Fleiss' kappa** (``statsmodels.stats.inter_rater.fleiss_kappa``) on the questions every annotator
  answered (it takes no missing values);
- **Krippendorff's alpha**, nominal (the ``krippendorff`` package), on every question at least two
  annotators answered (it handles missing values);
- **Cohen's kappa** (``sklearn.metrics.cohen_kappa_score``) for each pair, on the questions both answered.

A statistic that is undefined (one annotator, fewer than two questions, or a single answer given
throughout, where chance agreement is total) is reported as null, with the reason.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mmeval import tasks
from mmeval.predictions import Prediction

#: version of the agreement.json layout (bumped when its fields change meaning)
AGREEMENT_SCHEMA_VERSION = 1
ALL = "All questions"


class TaskAgreement(BaseModel):
    """Agreement of the whole panel on one question type (or on all questions, ``task`` = "All questions")."""

    model_config = ConfigDict(frozen=True)

    task: str
    questions: int = Field(description="questions at least one annotator answered")
    complete: int = Field(description="questions every annotator answered (those Fleiss' kappa is computed on)")
    fleiss_kappa: float | None
    krippendorff_alpha: float | None
    note: str = ""


class PairAgreement(BaseModel):
    """Cohen's kappa of two annotators on one question type (or all)."""

    model_config = ConfigDict(frozen=True)

    a: str
    b: str
    task: str
    questions: int = Field(description="questions both answered")
    agreement: float | None = Field(description="share of those questions with the same answer")
    cohen_kappa: float | None


class AgreementRecord(BaseModel):
    """agreement.json."""

    model_config = ConfigDict(frozen=True)

    version: int = AGREEMENT_SCHEMA_VERSION
    subset: str | None = None
    annotators: list[str]
    tasks: list[TaskAgreement]
    pairs: list[PairAgreement]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([t.model_dump() for t in self.tasks])

    def pair_table(self) -> pd.DataFrame:
        return pd.DataFrame([p.model_dump() for p in self.pairs])


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def fleiss(matrix: np.ndarray) -> float | None:
    """Fleiss' kappa of complete rows (questions x annotators, integer codes)."""
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    if matrix.shape[0] < 2 or matrix.shape[1] < 2:
        return None
    table, _ = aggregate_raters(matrix.astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 when one answer is given throughout: undefined
        return _finite(fleiss_kappa(table, method="fleiss"))


def krippendorff_alpha(matrix: np.ndarray) -> float | None:
    """Krippendorff's alpha, nominal, of annotators x questions codes with NaN for missing answers."""
    import krippendorff

    pairable = (~np.isnan(matrix)).sum(axis=0) >= 2
    data = matrix[:, pairable]
    if data.shape[1] < 2 or len(np.unique(data[~np.isnan(data)])) < 2:
        return None
    return _finite(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def cohen(a: Sequence[int], b: Sequence[int]) -> float | None:
    from sklearn.metrics import cohen_kappa_score  # type: ignore[import-untyped]

    if len(a) < 2 or len(set(a) | set(b)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _finite(cohen_kappa_score(a, b))


def _codes(answers: Mapping[str, Sequence[Prediction]]) -> tuple[list[str], dict[str, str], dict[str, dict[str, int]]]:
    """(question ids in first-seen order, id -> task, annotator -> id -> code); unsure answers are left out."""
    letters: dict[str, int] = {}
    order: dict[str, str] = {}
    coded: dict[str, dict[str, int]] = {}
    for name, preds in answers.items():
        coded[name] = {}
        for p in preds:
            if p.variant is not None:
                continue
            order.setdefault(p.id, p.task)
            if p.choice is not None:
                coded[name][p.id] = letters.setdefault(p.choice, len(letters))
    return list(order), order, coded


def agreement(answers: Mapping[str, Sequence[Prediction]], subset: str | None = None) -> AgreementRecord:
    """Agreement of the annotators (name -> their predictions) per question type and over all questions."""
    names = list(answers)
    ids, task_of, coded = _codes(answers)
    present = [t for t in tasks.task_names() if t in set(task_of.values())]
    present += sorted(set(task_of.values()) - set(present))
    rows, pairs = [], []
    for task in [*present, ALL]:
        qs = [q for q in ids if task == ALL or task_of[q] == task]
        matrix = np.array([[coded[n].get(q, np.nan) for q in qs] for n in names], dtype=float).reshape(len(names),
                                                                                                        len(qs))
        answered = int((~np.isnan(matrix)).any(axis=0).sum()) if qs else 0
        full = matrix[:, ~np.isnan(matrix).any(axis=0)].T if qs else np.empty((0, len(names)))
        fk, ka = fleiss(full), krippendorff_alpha(matrix)
        note = ""
        if len(names) < 2:
            note = "one annotator: agreement needs two or more"
        elif fk is None or ka is None:
            note = "undefined where fewer than two questions were answered, or one answer was given throughout"
        rows.append(TaskAgreement(task=task, questions=answered, complete=int(full.shape[0]), fleiss_kappa=fk,
                                  krippendorff_alpha=ka, note=note))
        for a, b in itertools.combinations(names, 2):
            both = [q for q in qs if q in coded[a] and q in coded[b]]
            va, vb = [coded[a][q] for q in both], [coded[b][q] for q in both]
            same = sum(x == y for x, y in zip(va, vb, strict=True))
            pairs.append(PairAgreement(a=a, b=b, task=task, questions=len(both),
                                       agreement=same / len(both) if both else None, cohen_kappa=cohen(va, vb)))
    return AgreementRecord(subset=subset, annotators=names, tasks=rows, pairs=pairs)


def text_summary(record: AgreementRecord) -> str:
    """The agreement tables for the terminal."""
    view = record.table()[["task", "questions", "complete", "fleiss_kappa", "krippendorff_alpha"]]
    lines = [f"Agreement of {', '.join(record.annotators)} (Fleiss' kappa on questions all answered, Krippendorff's "
             "alpha nominal):", view.round(3).to_string(index=False)]
    if record.pairs:
        pairs = record.pair_table()
        pairs = pairs[pairs["task"] == ALL][["a", "b", "questions", "agreement", "cohen_kappa"]]
        lines += ["", "Cohen's kappa per pair (all questions):", pairs.round(3).to_string(index=False)]
    return "\n".join(lines)
