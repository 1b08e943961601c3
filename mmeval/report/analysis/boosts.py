"""What the boosts did to a run, from the notes each prediction carries. Definitions, precisely:

Expert use (:func:`expert_use`, runs with ``--boost agent``), per task the expert can answer (the
detection question: its verdict; the location question: the option naming the region where its map
peaks, when an option names it):

- *expert accuracy*: how often that answer is right: the expert answering alone;
- *followed* / *overrode*: the model chose the expert's answer / another valid option (invalid
  answers are neither); each split into *right* and *wrong*. "Overrode and right" is what the model
  adds to its expert; "followed and wrong" what it inherits from it.

Knowledge leaks (:func:`knowledge_leaks`, runs with ``--boost rag``): per task, accuracy on the
questions whose correct option's wording appears in the knowledge the model read (``leak``) and on
the others. Category knowledge names the product and its defects, so a leaked question may be answered
by reading rather than looking.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from mmeval.predictions import Prediction
from mmeval.regions import option_region
from mmeval.report.analysis.questions import pct, plain_preds
from mmeval.tasks import has_role, in_order, yes_no_letters


class ExpertUse(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: str
    questions: int
    expert_answered: int  # questions the expert's output answers
    expert_accuracy: float  # percent of those, the expert alone
    model_accuracy: float  # percent of those, the model
    followed: int
    followed_right: int
    overrode: int
    overrode_right: int


class KnowledgeLeak(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: str
    leaked: int
    leaked_accuracy: float
    clean: int
    clean_accuracy: float


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
    """The option the expert's output picks for this question, if it picks one."""
    if has_role(p.task, "detection"):
        yes, no = yes_no_letters(p.options)
        return (yes if note.get("defective") else no) if yes and no else None
    if has_role(p.task, "defect-location") and isinstance(note.get("region"), str):
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
    rows = []
    for task in in_order(groups):
        pairs = groups[task]
        followed = [p for p, e in pairs if p.choice == e]
        overrode = [p for p, e in pairs if p.choice is not None and p.choice != e]
        rows.append(ExpertUse(
            task=task, questions=len(pairs), expert_answered=len(pairs),
            expert_accuracy=pct(sum(e == p.answer for p, e in pairs), len(pairs)),
            model_accuracy=pct(sum(p.correct for p, _ in pairs), len(pairs)),
            followed=len(followed), followed_right=sum(p.correct for p in followed),
            overrode=len(overrode), overrode_right=sum(p.correct for p in overrode)))
    return expert, rows


def knowledge_leaks(preds: Iterable[Prediction]) -> list[KnowledgeLeak]:
    groups: dict[str, dict[bool, list[Prediction]]] = defaultdict(lambda: {True: [], False: []})
    for p in plain_preds(preds):
        note = (p.boost_notes or {}).get("rag")
        if isinstance(note, dict) and "leak" in note:
            groups[p.task][bool(note["leak"])].append(p)
    return [KnowledgeLeak(task=t, leaked=len(groups[t][True]),
                          leaked_accuracy=pct(sum(p.correct for p in groups[t][True]), len(groups[t][True])),
                          clean=len(groups[t][False]),
                          clean_accuracy=pct(sum(p.correct for p in groups[t][False]), len(groups[t][False])))
            for t in in_order(groups)]


def boost_effects(preds: list[Prediction]) -> BoostEffects:
    expert, use = expert_use(preds)
    return BoostEffects(expert=expert, expert_use=use, knowledge_leaks=knowledge_leaks(preds))
