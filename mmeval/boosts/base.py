"""The Boost protocol: a request transform applied while requests are prepared.

A boost receives each question's :class:`~mmeval.prompting.draft.Draft` and returns it with
something added: domain knowledge, an expert's marked-up image, text of its own (instructions, a
checklist, a persona: :meth:`Boost.add_text`, worded by a template the boost names in ``templates``),
notes for the prediction. Boosts run in the order the user gives them (``--boost rag+agent``), and each
is recorded in run.json with its options, so a boosted run never resumes into a plain one and the report
says what was done.

A boost's identity (:meth:`Boost.identity`, part of the run's hash when the boost runs) is what decides
its output: its options resolved, defaults included, and its templates' text. So a default or a wording
changed in a later release starts a new run instead of resuming into old answers, and adding a boost
changes no other run's hash.

Adding a boost is one module with a subclass of :class:`Boost`, plus one line in
:data:`mmeval.boosts.BOOSTS` (and, for a boost that adds text, its template in ``prompts/``).
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
from mmeval.prompting.draft import BoostText, Draft, Place
from mmeval.prompting.render import templates_digest


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
    """Subclasses set ``name``, ``summary`` and ``Options`` (and ``templates``, when they add text) and
    implement :meth:`apply`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoBoostOptions
    #: the templates (``prompts/NAME.j2``) that word what this boost adds; their text is part of its identity
    templates: ClassVar[tuple[str, ...]] = ()

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

    @classmethod
    def resolved_options(cls, args: dict[str, Any]) -> dict[str, Any]:
        """The options that affect answers as the boost will use them: those given (``args``, already
        normalised), then the defaults of the rest."""
        return optionspec.resolved(cls.Options, args, f"--boost-arg ({cls.name})")

    @classmethod
    def identity(cls, args: dict[str, Any]) -> dict[str, Any]:
        """What decides this boost's output besides its name, for the run's hash: its resolved options and
        the digest of its templates."""
        out: dict[str, Any] = {"options": cls.resolved_options(args)}
        if cls.templates:
            out["templates"] = templates_digest(cls.templates)
        return out

    def add_text(self, draft: Draft, template: str | None = None, place: Place = "image", **values: Any) -> Draft:
        """``draft`` with a text of this boost: ``template`` (default: its first) rendered with ``values``,
        in the shared prefix after the instruction (``place="image"``: it must depend only on the image) or
        right before the question (``"question"``). Values must be hashable (a tuple, not a list)."""
        name = template or (self.templates[0] if self.templates else "")
        if name not in self.templates:
            raise TypeError(f"boost '{self.name}' renders template '{name}' without naming it in its templates "
                            f"({', '.join(self.templates) or 'none'}): a template it does not name escapes the "
                            "run's identity")
        text = BoostText(template=name, values=tuple(sorted(values.items())), place=place)
        return draft.with_(texts=(*draft.texts, text))

    def prepare(self, questions: Sequence[Question]) -> None:  # noqa: B027 - optional hook
        """Called once with every question of the run before any :meth:`apply` (to index, to precompute)."""

    @abstractmethod
    def apply(self, draft: Draft) -> Draft:
        """The draft with this boost's additions."""

    def record(self) -> dict[str, Any]:
        """What the run log keeps of this boost besides its name and options (e.g. what it read)."""
        return {}
