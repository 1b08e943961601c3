"""What the boosts did to a run, from the notes each prediction carries. Definitions, precisely:

Expert use (:func:`expert_use`, runs with ``--boost agent``), per task the expert can answer, as the
``expert`` model family answers (the detection question: its verdict; the location question: the
offered region where its map is highest, :func:`mmeval.regions.best_named`):

- *expert accuracy*: how often that answer is right: the expert answering alone;
- *followed* / *overrode*: the model chose the expert's answer / another valid option (invalid
  answers are neither); each split into *right* and *wrong*. "Overrode and right" is what the model
  adds to its expert; "followed and wrong" what it inherits from it.

Knowledge leaks (:func:`knowledge_leaks`, runs with ``--boost rag``): per task, the accuracy of a blind
reader that sees only the question, the options and the injected knowledge
(:mod:`mmeval.boosts.blind_reader`) beside the boosted model's, and the model's accuracy on the questions
the reader singles the correct option out on (*leaked*) and on the others. Where the reader does as
well as the model, the knowledge answered, not the image.

Every accuracy here follows the score table's rule (:func:`mmeval.scoring.score_table`: balanced where
the task is, a mean over datasets), so the expert alone, the model and the reader are measured as the
score table measures any run.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from mmeval import scoring
from mmeval.boosts.blind_reader import credit
from mmeval.predictions import Prediction
from mmeval.regions import best_named, option_region
from mmeval.report.analysis.questions import plain_preds
from mmeval.scoring import Figure
from mmeval.tasks import has_role, in_order, yes_no_letters


class ExpertUse(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: str
    questions: int
    expert_answered: int  # questions the expert's output answers
    expert_accuracy: Figure  # of those, the expert alone, by the score table's rule
    model_accuracy: Figure  # of those, the model, by the score table's rule
    followed: int
    followed_right: int
    overrode: int
    overrode_right: int


class KnowledgeLeak(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: str
    questions: int = 0
    #: the blind reader's accuracy (NaN for runs that did not record its picks)
    reader_accuracy: Figure = math.nan
    model_accuracy: Figure = math.nan
    leaked: int
    leaked_accuracy: Figure
    clean: int
    clean_accuracy: Figure


class BoostEffects(BaseModel):
    """What the run's boosts did (empty lists when the run had none)."""

    model_config = ConfigDict(frozen=True)

    expert: str | None = None
    expert_use: list[ExpertUse] = []
    knowledge_leaks: list[KnowledgeLeak] = []

    @property
    def any(self) -> bool:
        return bool(self.expert_use or self.knowledge_leaks)


def expert_letter(p: Prediction, note: dict[str, object]) -> str | None:
    """The option the expert's output picks for this question, if it picks one: as the ``expert`` model
    family answers (its verdict on detection; :func:`mmeval.regions.best_named` on localization)."""
    if has_role(p.task, "detection"):
        yes, no = yes_no_letters(p.options)
        return (yes if note.get("defective") else no) if yes and no else None
    if not has_role(p.task, "defect-location"):
        return None
    scores = note.get("region_scores")
    if isinstance(scores, dict):
        cells = {cell: float(v) for k, v in scores.items() if (cell := option_region(str(k))) is not None}
        return best_named(p.options, cells)
    if isinstance(note.get("region"), str):  # runs from before region scores were recorded: the peak's option
        cell = option_region(str(note["region"]))
        named = [k for k, v in p.options.items() if option_region(v) == cell]
        return named[0] if len(named) == 1 else None
    return None


def expert_use(preds: Iterable[Prediction]) -> tuple[str | None, list[ExpertUse]]:
    groups: dict[str, list[tuple[Prediction, str]]] = defaultdict(list)
    expert = None
    for p in plain_preds(preds):
        note = (p.boost_notes or {}).get("agent")
        if not isinstance(note, dict):
            continue
        expert = str(note.get("expert", expert))
        letter = expert_letter(p, note)
        if letter is not None:
            groups[p.task].append((p, letter))
    pairs = [pair for task in groups for pair in groups[task]]
    alone = task_scores([p for p, _ in pairs], [float(e == p.answer) for p, e in pairs])
    model = task_scores([p for p, _ in pairs])
    rows = []
    for task in in_order(groups):
        followed = [p for p, e in groups[task] if p.choice == e]
        overrode = [p for p, e in groups[task] if p.choice is not None and p.choice != e]
        rows.append(ExpertUse(
            task=task, questions=len(groups[task]), expert_answered=len(groups[task]),
            expert_accuracy=alone.get(task, math.nan), model_accuracy=model.get(task, math.nan),
            followed=len(followed), followed_right=sum(p.correct for p in followed),
            overrode=len(overrode), overrode_right=sum(p.correct for p in overrode)))
    return expert, rows


def task_scores(preds: Sequence[Prediction], correct: Sequence[float] | None = None) -> dict[str, float]:
    """Per task, the score table's figure (its ``Average`` row) for these predictions, or for ``correct``
    (one value per prediction, a share of a point for a guess) in place of their own right and wrong."""
    if not preds:
        return {}
    df = scoring.frame(preds)
    if correct is not None:
        df["correct"] = np.asarray(correct, dtype=float)
    return scoring.table_row(scoring.score_table(df))


def knowledge_leaks(preds: Iterable[Prediction]) -> list[KnowledgeLeak]:
    rows: list[tuple[Prediction, dict]] = []
    for p in plain_preds(preds):
        note = (p.boost_notes or {}).get("rag")
        if isinstance(note, dict) and "leak" in note:
            rows.append((p, note))
    if not rows:
        return []
    preds_all = [p for p, _ in rows]
    picks = [r if isinstance(r := n.get("reader"), list) else [] for _, n in rows]
    with_reader = all(picks)  # runs from before the reader recorded its picks have none
    reader = (task_scores(preds_all, [credit(r, p.answer) for p, r in zip(preds_all, picks, strict=True)])
              if with_reader else {})
    model = task_scores(preds_all)
    leaked = [p for p, n in rows if n["leak"]]
    clean = [p for p, n in rows if not n["leak"]]
    on_leaked, on_clean = task_scores(leaked), task_scores(clean)
    tasks_asked = in_order(p.task for p in preds_all)
    nan = math.nan
    return [KnowledgeLeak(task=t, questions=sum(p.task == t for p in preds_all),
                          reader_accuracy=reader.get(t, nan), model_accuracy=model.get(t, nan),
                          leaked=sum(p.task == t for p in leaked), leaked_accuracy=on_leaked.get(t, nan),
                          clean=sum(p.task == t for p in clean), clean_accuracy=on_clean.get(t, nan))
            for t in tasks_asked]


def boost_effects(preds: list[Prediction]) -> BoostEffects:
    expert, use = expert_use(preds)
    return BoostEffects(expert=expert, expert_use=use, knowledge_leaks=knowledge_leaks(preds))
