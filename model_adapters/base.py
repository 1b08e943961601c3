"""The adapter interface every model family implements.

An adapter receives a batch of :class:`~mmeval.prompting.messages.Request` (rendered questions) and
yields one :class:`~mmeval.prompting.messages.Response` per request, in any order, as soon as each is
ready. The runner writes each response to disk the moment it arrives, so a slow or concurrent adapter
loses at most what is in flight when the process dies.

Adapters know nothing about scoring or answer extraction: they return raw text and, where the model
offers them, per-option scores.

Two kinds of settings reach an adapter:

- :class:`AdapterSettings`, decided by the run for every family (plain flags: ``--seed``,
  ``--answer-mode``, ``--batch-size``, ``--concurrency``);
- the family's own ``Options`` (a pydantic model; ``--model-arg key=value``). Fields marked
  ``json_schema_extra={"affects_predictions": False}`` change how answers are obtained, not what they
  are, and stay out of the run-config hash.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from mmeval import optionspec
from mmeval.errors import AdapterError
from mmeval.optionspec import OPERATIONAL, OptionDoc
from mmeval.prompting.messages import Request, Response

__all__ = ["ANSWER_MODES", "OPERATIONAL", "AdapterError", "AdapterSettings", "AnswerMode", "ModelAdapter",
           "NoOptions"]

AnswerMode = Literal["generate", "likelihood"]
ANSWER_MODES: tuple[AnswerMode, ...] = ("generate", "likelihood")


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class AdapterSettings:
    """What the run decides for every adapter, beside the family's own options."""

    seed: int = 0
    #: generate: the model writes an answer that the engine parses; likelihood: it scores each option
    answer_mode: AnswerMode = "generate"
    #: requests handed to the adapter at once; None: the family's default
    batch_size: int | None = None
    #: requests in flight at once, for families that send requests; None: the family's default
    concurrency: int | None = None
    #: where the adapter may keep files that belong to the run (anomaly maps ...); None: nowhere
    artifacts_dir: Path | None = None


class ModelAdapter(ABC):
    """Base class: subclasses set ``family``, ``Options`` and ``answer_modes`` and implement :meth:`predict`."""

    family: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: the answer modes this family supports; another one is refused before any work is done
    answer_modes: ClassVar[tuple[AnswerMode, ...]] = ("generate",)
    #: how many requests the runner hands over at once, unless ``--batch-size`` says otherwise
    default_batch_size: ClassVar[int] = 16
    #: whether answering needs normal template images (``--shots`` >= 1)
    needs_templates: bool = False
    #: how this family's replies that name no option are read, whatever the prompt style: "closest" (the option
    #: whose text is most like the reply, for a model that never names a letter) or "invalid"; None: as the
    #: prompt style reads them (the extraction itself lives in mmeval.answers)
    reading: ClassVar[Literal["invalid", "closest"] | None] = None

    def __init__(self, name: str, options: BaseModel | None = None, settings: AdapterSettings | None = None) -> None:
        self.name = name
        self.options = options if options is not None else self.Options()
        self.settings = settings or AdapterSettings()
        if self.settings.answer_mode not in self.answer_modes:
            raise AdapterError(
                f"--answer-mode {self.settings.answer_mode}: the '{self.family}' model family supports "
                f"{' and '.join(self.answer_modes)} only")
        self.seed = self.settings.seed
        self.answer_mode: AnswerMode = self.settings.answer_mode
        self.batch_size: int = self.settings.batch_size or self.default_batch_size

    @classmethod
    def split_options(cls, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The family options given (``--model-arg``), validated and normalised: (hashed, operational)."""
        return optionspec.normalise(cls.Options, raw, "--model-arg")

    @classmethod
    def implied_options(cls, name: str, options: dict[str, Any]) -> dict[str, Any]:
        """Options not given whose value still decides this model's answers, and only for some of the family's
        models (a default that matters where the model reads it), read off the model ``name`` before the run
        starts. The run adds them to its options, so they join its identity where they matter and nowhere else;
        none by default. ``options``: those given (``--model-arg``)."""
        return {}

    def options_implied(self) -> dict[str, Any]:
        """What :meth:`implied_options` gives, read off this adapter as built (a run handed a built adapter, as
        ``mmeval watch`` and the training callback do, adds these); none by default."""
        return {}

    @classmethod
    def option_docs(cls) -> list[OptionDoc]:
        """The family's options, for ``mmeval models show``."""
        return optionspec.describe(cls.Options)

    @abstractmethod
    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        """Yield one response per request, in any order."""

    def close(self) -> None:  # noqa: B027 - optional hook, most adapters hold nothing to release
        """Release resources (threads, GPU memory). Called once by the runner."""

    def run_info(self) -> dict[str, object]:
        """Facts for the report (token usage, cost ...); secrets never go here."""
        return {}

    @classmethod
    def describe(cls) -> str:
        """More about the family for ``mmeval models show`` (what it was tested with ...); nothing by default."""
        return ""

    def notes(self) -> list[str]:
        """How this adapter deviates from the way the model is meant to be prompted (recorded in run.json and
        shown in the report); none by default."""
        return []

    def __enter__(self) -> ModelAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
