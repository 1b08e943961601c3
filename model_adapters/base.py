"""The adapter interface every model family implements.

An adapter receives a batch of :class:`~mmeval.prompting.messages.Request` (rendered questions) and yields one
:class:`~mmeval.prompting.messages.Response` per request, in any order, as soon as each is ready. The runner
writes each response to disk the moment it arrives, so a slow or concurrent adapter loses at most
what is in flight when the process dies.

Adapters know nothing about scoring or answer extraction: they return raw text and, where the model
offers them, per-option scores.

Each family declares its settings as a pydantic model (``Options``); the CLI turns every field into
a ``--flag`` with the field's description as help, and the values enter the run-config hash.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from mmeval.prompting.messages import Request, Response


class AdapterError(Exception):
    """A model could not be set up or used; the message tells the user what to do."""


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelAdapter(ABC):
    """Base class: subclasses set ``family`` and ``Options`` and implement :meth:`predict`."""

    family: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: how many requests the runner hands over at once (an adapter may override per instance)
    batch_size: int = 16

    def __init__(self, name: str, options: BaseModel | None = None, seed: int = 0) -> None:
        self.name = name
        self.options = options if options is not None else self.Options()
        self.seed = seed

    @abstractmethod
    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        """Yield one response per request, in any order."""

    def close(self) -> None:
        """Release resources (threads, GPU memory). Called once by the runner."""

    def run_info(self) -> dict[str, object]:
        """Facts for the report (token usage, cost ...); secrets never go here."""
        return {}

    def __enter__(self) -> ModelAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
