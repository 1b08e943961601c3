"""A pydantic base for the records a run makes by the tens of thousands and keeps (its predictions).

pydantic keeps, per instance, the set of fields the caller gave (``model_fields_set``): about 2 KB for a
prediction's two dozen fields, 80 MB at MMAD's size, while all of a run's predictions give the same
fields. :class:`LeanModel` makes instances that gave the same fields share one set. Copies
(``model_copy``) get their own set, as pydantic copies it; fields are never assigned in place here (a
prediction is replaced, not edited), which is what would write into the shared set.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_SHARED: dict[frozenset[str], set[str]] = {}
#: the set the last instance of each class shared (instances come in long runs of the same fields)
_LAST: dict[type, set[str]] = {}


class LeanModel(BaseModel):
    """A ``BaseModel`` whose instances share their set of given fields with every instance that gave the same."""

    def model_post_init(self, context: Any, /) -> None:
        given = self.__pydantic_fields_set__
        shared = _LAST.get(type(self))
        if shared is None or shared != given:
            shared = _LAST[type(self)] = _SHARED.setdefault(frozenset(given), given)
        object.__setattr__(self, "__pydantic_fields_set__", shared)
