"""A question on its way to becoming a request: what its prompt will hold, before rendering.

The engine makes one draft per question (options already shuffled), hands it through the run's boosts
in order, then renders it (:func:`mmeval.prompting.render.render_draft`). Boosts add to a draft; they
never render text themselves, so every model still reads the wording of the templates in ``prompts/``.

Where an addition lands decides what prefix reuse can share: ``image_knowledge``, ``references`` and
``hints`` depend only on the image and sit in the shared prefix (before the question);
``question_knowledge`` goes after it, with the question.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from mmeval.data import Question


@dataclass(frozen=True)
class Reference:
    """An extra image shown after the query (an expert's marks ...).

    ``notation`` says how it is drawn (``prompts/expert.j2`` words the sentence that introduces it).
    """

    path: str
    notation: str = "marks"
    #: whether the drawing marks anything, and the expert's verdict (None: not said)
    marked: bool = True
    defective: bool | None = None


@dataclass(frozen=True)
class ExpertHint:
    """An anomaly detector's verdict, given to the model in words (``prompts/expert_text.j2``)."""

    score: float
    threshold: float
    defective: bool
    region: str | None  #: where the detector's map peaks, as a region of the 3x3 grid ("top left" ...); None: flat
    #: every region where the map rises above the threshold, highest first
    regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Draft:
    question: Question
    #: the options as the model will see them (after the seeded shuffle), and the correct letter among them
    options: dict[str, str]
    answer: str
    image_knowledge: tuple[str, ...] = ()
    question_knowledge: tuple[str, ...] = ()
    references: tuple[Reference, ...] = ()
    hints: tuple[ExpertHint, ...] = ()
    #: what boosts want recorded with the prediction (by boost name)
    notes: dict[str, Any] = field(default_factory=dict)

    def with_(self, **changes: Any) -> Draft:
        return replace(self, **changes)
