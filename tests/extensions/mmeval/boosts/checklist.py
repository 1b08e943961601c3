"""``checklist``: an inspection checklist, read before the question (a text boost: this module, its template
``prompts/checklist.j2`` and one line in ``BOOSTS``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from mmeval.boosts.base import Boost
from mmeval.prompting.draft import Draft


class ChecklistOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: str = Field("the edges,the surface,the print", description="what to check, comma-separated")


class ChecklistBoost(Boost):
    name: ClassVar[str] = "checklist"
    summary: ClassVar[str] = "an inspection checklist before the question"
    Options: ClassVar[type[BaseModel]] = ChecklistOptions
    templates: ClassVar[tuple[str, ...]] = ("checklist",)

    def apply(self, draft: Draft) -> Draft:
        items = tuple(item.strip() for item in self.options.items.split(","))  # type: ignore[attr-defined]
        return self.add_text(draft, items=items)
