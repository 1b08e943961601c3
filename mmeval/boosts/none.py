"""``none``: no boost. The plain run, named, so an ablation can list it beside the boosted variants."""

from __future__ import annotations

from typing import ClassVar

from mmeval.boosts.base import Boost
from mmeval.prompting.draft import Draft


class NoBoost(Boost):
    name: ClassVar[str] = "none"
    summary: ClassVar[str] = "the plain run: nothing added"

    def apply(self, draft: Draft) -> Draft:
        return draft
