"""A question on its way to becoming a request: what its prompt will hold, before rendering.

The engine makes one draft per question (options already shuffled), hands it through the run's boosts
in order, then renders it (:func:`mmeval.prompting.render.render_draft`). Boosts add to a draft; they
never render text themselves, so every model still reads the wording of the templates in ``prompts/``.

What a boost may add sits in the draft's *slots* (the fields marked as such, see :data:`SLOTS`):
``image_knowledge`` and ``question_knowledge`` (domain knowledge), ``references`` (extra images),
``hints`` (an expert's verdict in words), and ``texts``, the general one: any text a boost contributes
(instructions, a checklist, a persona), each worded by a template of the boost's own
(:class:`BoostText`). A prompt style states which slots it can place; a draft with a filled slot its style
cannot place is refused, never rendered without it (:mod:`mmeval.prompting.styles`).

Where an addition lands decides what prefix reuse can share: ``image_knowledge``, ``references``,
``hints`` and texts placed at ``"image"`` depend only on the image and sit in the shared prefix (before the
question); ``question_knowledge`` and texts placed at ``"question"`` go after it, with the question.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from mmeval.data import Question

#: where a boost's text goes: in the shared prefix after the instruction (it must depend only on the image),
#: or after the prefix, right before the question
Place = Literal["image", "question"]

_SLOT: dict[str, Any] = {"slot": True}


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
class BoostText:
    """Text a boost adds to the prompt, worded by its own template ``prompts/<template>.j2``.

    The template sees ``values`` (name -> value pairs, hashable: a tuple rather than a list) and nothing else.
    A boost makes these with :meth:`mmeval.boosts.Boost.add_text`, which checks that the template is one the
    boost declares (declared templates are part of the run's identity when the boost runs).
    """

    template: str
    values: tuple[tuple[str, Hashable], ...] = ()
    place: Place = "image"


@dataclass(frozen=True)
class Draft:
    question: Question
    #: the options as the model will see them (after the seeded shuffle), and the correct letter among them
    options: dict[str, str]
    answer: str
    image_knowledge: tuple[str, ...] = field(default=(), metadata=_SLOT)
    question_knowledge: tuple[str, ...] = field(default=(), metadata=_SLOT)
    references: tuple[Reference, ...] = field(default=(), metadata=_SLOT)
    hints: tuple[ExpertHint, ...] = field(default=(), metadata=_SLOT)
    texts: tuple[BoostText, ...] = field(default=(), metadata=_SLOT)
    #: what boosts want recorded with the prediction (by boost name)
    notes: dict[str, Any] = field(default_factory=dict)

    def with_(self, **changes: Any) -> Draft:
        return replace(self, **changes)

    def filled_slots(self) -> list[str]:
        """The slots something was added to (each changes what the model reads)."""
        return [name for name in SLOTS if getattr(self, name)]


#: the fields of a draft that hold what boosts add to the prompt
SLOTS: tuple[str, ...] = tuple(f.name for f in fields(Draft) if f.metadata.get("slot"))
