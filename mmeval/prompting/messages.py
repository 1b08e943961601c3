"""The neutral message: the only thing a model adapter sees of a question.

Prompts are rendered once, by the engine, into an ordered list of text and image parts. Adapters
translate that list into their model's own format (chat template, OpenAI content list ...), so no
adapter re-implements prompt wording and every model sees the same question.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class TextPart(BaseModel):
    model_config = ConfigDict(frozen=True)
    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    """An image by absolute path. ``role`` says why it is there (a normal template or the query)."""

    model_config = ConfigDict(frozen=True)
    type: Literal["image"] = "image"
    path: str
    role: Literal["template", "query", "reference"] = "query"


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(BaseModel):
    """One user turn: interleaved text and image parts in reading order.

    ``prefix_len`` counts the leading parts shared by every question about the same image
    (instruction, templates, query image). Adapters may encode that prefix once and reuse it.
    """

    model_config = ConfigDict(frozen=True)
    parts: list[Part]
    prefix_len: int = 0

    @property
    def images(self) -> list[ImagePart]:
        return [p for p in self.parts if isinstance(p, ImagePart)]


class Request(BaseModel):
    """What an adapter is asked: the message plus what it needs to score options.

    The correct answer is deliberately absent: adapters cannot see it.
    """

    model_config = ConfigDict(frozen=True)
    id: str
    task: str
    image: str
    options: dict[str, str]
    message: Message

    def image_paths(self, role: str | None = None) -> list[Path]:
        return [Path(p.path) for p in self.message.images if role is None or p.role == role]


class Response(BaseModel):
    """What an adapter answers for one request.

    ``text`` is the raw model output (may be empty in likelihood mode); ``scores`` maps option
    letters to log-probabilities (or any monotone score) when the model provides them; ``error``
    is set when no answer could be obtained (the question is retried on the next run).
    """

    id: str
    text: str = ""
    scores: dict[str, float] | None = None
    error: str | None = None
    note: str | None = None  # why a text is unusable (refusal, empty, truncated ...), kept in the prediction
    usage: dict[str, int] | None = None
