"""The Boost protocol: a request transform applied while requests are prepared.

A boost receives each question's :class:`~mmeval.prompting.draft.Draft` and returns it with
something added: domain knowledge, an expert's marked-up image, notes for the prediction. Boosts
run in the order the user gives them (``--boost rag+agent``), and each is recorded in run.json with
its options, so a boosted run never resumes into a plain one and the report says what was done.

Adding a boost is one module with a subclass of :class:`Boost`, plus one line in
:data:`mmeval.boosts.BOOSTS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from mmeval import optionspec
from mmeval.data import Question
from mmeval.prompting.draft import Draft


class NoBoostOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class BoostContext:
    """What a boost may know about the run: where the data is, the seed, where to cache its work."""

    data_root: Path
    source: Path  #: the benchmark's mmad.json
    seed: int
    cache_dir: Path
    model: str = ""  #: the --model spec (a boost may use the model's tokenizer)


class Boost(ABC):
    """Subclasses set ``name``, ``summary`` and ``Options`` and implement :meth:`apply`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoBoostOptions

    def __init__(self, options: BaseModel, context: BoostContext) -> None:
        self.options = options
        self.context = context

    @classmethod
    def owns(cls, key: str) -> bool:
        """Whether ``--boost-arg key=...`` without a boost name belongs to this boost."""
        return key in cls.Options.model_fields

    @classmethod
    def split_options(cls, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The options given, validated and normalised: (affect answers, operational)."""
        return optionspec.normalise(cls.Options, raw, f"--boost-arg ({cls.name})")

    @classmethod
    def option_docs(cls) -> list[optionspec.OptionDoc]:
        return optionspec.describe(cls.Options)

    def prepare(self, questions: Sequence[Question]) -> None:  # noqa: B027 - optional hook
        """Called once with every question of the run before any :meth:`apply` (to index, to precompute)."""

    @abstractmethod
    def apply(self, draft: Draft) -> Draft:
        """The draft with this boost's additions."""

    def record(self) -> dict[str, Any]:
        """What the run log keeps of this boost besides its name and options (e.g. what it read)."""
        return {}
