"""Prompt styles: how a draft becomes the message a model reads (``--prompt-style``, part of the run's identity).

- ``mmeval`` (the default): :func:`mmeval.prompting.render.render_draft` and the templates in ``prompts/``.
- ``mmad-anomalygpt``: the text MMAD's AnomalyGPT script builds (``prompts/mmad_anomalygpt.j2``), so that
  AnomalyGPT's published MMAD row can be reproduced. The message is the normal templates, the query, the
  fixed description, then the questions: Anomaly Detection asked as " Is there any anomaly in the image?"
  without options, the others with their options, each question but the record's first followed by the
  letter instruction. The script never resets its prompt, so question *i* of an image carries the text of
  the questions before it; here the prompt of a question holds the pieces of the image's earlier
  questions (in the order they are asked, as rendered for them) and then its own, deterministically.

  Where it differs from the script: options are shuffled from ``--seed`` (the script shuffles without a
  seed; ``--no-shuffle`` keeps the file's order); a rotation (``--circular``) or a probe of an image repeats
  the earlier questions and then its own piece; replies are read by mmeval's answer extraction (which
  reads "Yes, ..." / "No, ..." for Anomaly Detection), and a reply naming no option then takes the option
  whose text is most similar to it, as the script does (:data:`ANSWER_FALLBACK`; an empty reply or a tie
  stays invalid, where the script's cutoff-0 match always picks one); and boosts that add text or images
  to the prompt cannot be combined with this style (the script shows none).

Each style states which slots of a draft it places (:data:`PLACES`; the slots are
:data:`mmeval.prompting.draft.SLOTS`). A draft that fills a slot its style cannot place is refused with one
rule (:func:`refuse_unplaced`), whichever boost filled it: nothing a boost adds is ever dropped in silence.

A renderer keeps state across an image's questions, so :func:`renderer` gives a fresh one per preparation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import Literal, get_args

import jinja2

from mmeval.errors import InputError
from mmeval.prompting.draft import SLOTS, Draft
from mmeval.prompting.messages import ImagePart, Message, Part, TextPart
from mmeval.prompting.render import render_draft
from mmeval.tasks import has_role

PromptStyle = Literal["mmeval", "mmad-anomalygpt"]
STYLES: tuple[str, ...] = get_args(PromptStyle)
DEFAULT_STYLE: PromptStyle = "mmeval"

#: how each style's replies are read when they name no option (see :data:`mmeval.answers.Fallback`)
ANSWER_FALLBACK: dict[str, Literal["invalid", "closest"]] = {"mmeval": "invalid", "mmad-anomalygpt": "closest"}

#: the template files of each style besides the default's (their digest enters the run's identity)
STYLE_TEMPLATES: dict[str, tuple[str, ...]] = {"mmad-anomalygpt": ("mmad_anomalygpt",)}

#: the draft slots each style places in its messages: the default style every one, MMAD's AnomalyGPT script none
PLACES: dict[str, frozenset[str]] = {"mmeval": frozenset(SLOTS), "mmad-anomalygpt": frozenset()}

Renderer = Callable[[Draft], Message]


def _template_text(name: str) -> str:
    return resources.files("mmeval.prompts").joinpath(f"{name}.j2").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    """Rendered exactly as written: no stripping, the template's whitespace control decides every character."""
    return jinja2.Environment(loader=jinja2.FunctionLoader(lambda name: _template_text(name.removesuffix(".j2"))),
                              undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


def places_every_slot(style: str) -> bool:
    """Whether ``style`` places whatever a boost adds (then no draft of it needs checking)."""
    return PLACES.get(style, frozenset()) >= frozenset(SLOTS)


def refuse_unplaced(style: str, draft: Draft, boost: str | None = None) -> None:
    """InputError when ``draft`` fills a slot ``style`` cannot place (``boost``: the boost that just filled it)."""
    unplaced = [s for s in draft.filled_slots() if s not in PLACES.get(style, frozenset())]
    if unplaced:
        who = f"--boost {boost}" if boost else "a boost"
        raise InputError(f"--prompt-style {style} has no place for what {who} adds to the prompt "
                         f"({', '.join(unplaced)}): it reproduces a reference script that shows no domain knowledge, "
                         "expert output or added text. Drop the --boost, or use --prompt-style mmeval")


def style_digest(style: str) -> str:
    """A hash of a style's own templates (empty for the default style, whose templates the run hashes anyway)."""
    h = hashlib.sha256(style.encode())
    for name in STYLE_TEMPLATES.get(style, ()):
        h.update(b"\0" + name.encode() + b"\0" + _template_text(name).encode())
    return h.hexdigest()[:16] if style != DEFAULT_STYLE else ""


class MMADAnomalyGPT:
    """The ``mmad-anomalygpt`` style: MMAD's AnomalyGPT script's cumulative prompt (see the module docstring)."""

    def __init__(self) -> None:
        self._image: str | None = None
        self._pieces: dict[str, str] = {}  # question id -> its piece, in the order first asked

    @staticmethod
    def description() -> str:
        return _env().get_template("mmad_anomalygpt.j2").render(part="description")

    @staticmethod
    def piece(draft: Draft) -> str:
        q = draft.question
        return _env().get_template("mmad_anomalygpt.j2").render(
            part="question", detection=has_role(q.task, "detection"), question=q.question, options=draft.options,
            first=q.index == 0)

    def __call__(self, draft: Draft) -> Message:
        refuse_unplaced("mmad-anomalygpt", draft)
        q = draft.question
        if q.image != self._image:
            self._image, self._pieces = q.image, {}
        own = self.piece(draft)
        self._pieces.setdefault(q.id, own)
        earlier = list(self._pieces.values())[: list(self._pieces).index(q.id)]
        parts: list[Part] = [ImagePart(path=p, role="template") for p in q.template_paths]
        parts.append(ImagePart(path=q.query_path, role="query"))
        parts.append(TextPart(text=self.description()))
        prefix_len = len(parts)
        parts.append(TextPart(text="".join(earlier) + own))
        return Message(parts=parts, prefix_len=prefix_len)


def renderer(style: str) -> Renderer:
    """A fresh renderer of ``style`` (one per preparation: a style may keep state across an image's questions)."""
    if style == DEFAULT_STYLE:
        return render_draft
    if style == "mmad-anomalygpt":
        return MMADAnomalyGPT()
    raise InputError(f"--prompt-style {style}: unknown (known: {', '.join(STYLES)})")
