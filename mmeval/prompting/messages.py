"""The neutral message: the only thing a model adapter sees of a question.

Prompts are rendered once, by the engine, into an ordered list of text and image parts. Adapters
translate that list into their model's own format (chat template, OpenAI content list ...), so no
adapter re-implements prompt wording and every model sees the same question.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

# The message classes are plain slotted dataclasses, not pydantic models: the engine builds them by the tens of
# thousands from drafts it rendered itself (validated records, its own templates), where validation would check
# nothing new and cost most of the time spent preparing a question. Adapters read them; nobody parses them.


@dataclass(frozen=True, slots=True, kw_only=True)
class TextPart:
    type: Literal["text"] = "text"
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ImagePart:
    """An image by absolute path. ``role`` says why it is there (a normal template or the query)."""

    type: Literal["image"] = "image"
    path: str
    role: Literal["template", "query", "reference"] = "query"


Part = TextPart | ImagePart


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One user turn: interleaved text and image parts in reading order.

    ``prefix_len`` counts the leading parts shared by every question about the same image
    (instruction, templates, query image). Adapters may encode that prefix once and reuse it.
    """

    parts: list[Part]
    prefix_len: int = 0

    @property
    def images(self) -> list[ImagePart]:
        return [p for p in self.parts if isinstance(p, ImagePart)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What an adapter is asked: the message plus what it needs to score options.

    The correct answer is deliberately absent: adapters cannot see it.
    """

    id: str
    task: str
    image: str
    options: dict[str, str]
    message: Message

    def image_paths(self, role: str | None = None) -> list[Path]:
        return [Path(p.path) for p in self.message.images if role is None or p.role == role]


def top_option(scores: Mapping[str, float | None], letters: Iterable[str] | None = None) -> tuple[str, ...]:
    """The letters with the highest option score, among ``letters`` (all when None); empty when none is usable.

    One rule for every family and for the engine: ``-inf`` means impossible (never the top unless nothing
    else is possible), NaN, ``+inf`` or a missing value make the scores unusable (no top at all), and
    several letters sharing the highest score are a tie (all of them are returned).
    """
    known = {k: v for k, v in scores.items() if letters is None or k in set(letters)}
    if not known or any(v is None or math.isnan(v) or v == math.inf for v in known.values()):
        return ()
    possible = {k: float(v) for k, v in known.items() if v is not None and v != -math.inf}
    if not possible:
        return ()
    best = max(possible.values())
    return tuple(k for k, v in possible.items() if v == best)


def log_sum_exp(values: Iterable[float]) -> float:
    """``log(sum(exp(v)))``: the log-probability of any one of several outcomes (a letter written as "B" or " B").

    Every family combines log-probabilities through this, under :func:`top_option`'s rule: a ``-inf`` term is
    an impossible outcome and adds nothing (all of them ``-inf``: impossible, ``-inf``), a NaN makes the sum
    NaN (unusable), ``+inf`` makes it ``+inf`` (unusable too). Written out, ``peak + log(sum(exp(v - peak)))``
    would give NaN for ``-inf - -inf``, which ``min``/``max`` then read as a winner.
    """
    terms = [float(v) for v in values]
    if any(math.isnan(v) for v in terms):
        return math.nan
    peak = max(terms, default=-math.inf)
    if math.isinf(peak):  # +inf, or every term impossible (or none at all)
        return peak
    return peak + math.log(sum(math.exp(v - peak) for v in terms))


class Response(BaseModel):
    """What an adapter answers for one request.

    ``text`` is the raw model output (may be empty in likelihood mode); ``scores`` maps option
    letters to log-probabilities (or any monotone score) when the model provides them (read with
    :func:`top_option`: ``-inf`` is impossible, NaN unusable); ``error``
    is set when no answer could be obtained (the question is retried on the next run).
    """

    id: str
    text: str = ""
    scores: dict[str, float] | None = None
    error: str | None = None
    #: for an error: False when the same request would fail again (an unreadable image, a refused request)
    retryable: bool = True
    note: str | None = None  # why a text is unusable (refusal, empty, truncated ...), kept in the prediction
    usage: dict[str, int] | None = None
    #: what else the model produced for this question, kept with the prediction: e.g. an anomaly map
    #: (``{"map": path relative to the run directory, "image_score": 0.83}``)
    artifacts: dict[str, Any] | None = None


# ------------------------------------------------------------------------------ converters to model formats
# Each model API wants the same message in its own shape; the conversions live here, beside the message,
# so an adapter never re-implements the layout (and every family sees the parts in the same order).


def to_hf_conversation(parts: Sequence[Part]) -> list[dict[str, Any]]:
    """One user turn of a transformers chat: ``{"type": "text"}`` / ``{"type": "image"}`` items in order.

    The images themselves go to the processor separately, in the same order.
    """
    content: list[dict[str, Any]] = [{"type": "text", "text": p.text} if isinstance(p, TextPart) else {"type": "image"}
                                     for p in parts]
    return [{"role": "user", "content": content}]


def to_openai_messages(parts: Sequence[Part], image_urls: Sequence[str], detail: str = "auto") -> list[dict[str, Any]]:
    """One user message of the OpenAI chat API: text parts and ``image_url`` parts (one URL per image, in order)."""
    urls = iter(image_urls)
    content: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        else:
            content.append({"type": "image_url", "image_url": {"url": next(urls), "detail": detail}})
    return [{"role": "user", "content": content}]
