"""Anomaly detectors ("experts"): (query, templates) -> anomaly map, image score and decision threshold.

The registry maps a name to ``module:Class``; classes load lazily, so listing experts imports nothing
heavy. Adding an expert is one module plus one line in :data:`EXPERTS`.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from pydantic import BaseModel, ValidationError

from mmeval.errors import InputError
from mmeval.experts.base import AnomalyMap, Expert

__all__ = ["EXPERTS", "AnomalyMap", "Expert", "build_expert", "expert_class", "validate_args"]

#: name -> "module:Class"
EXPERTS: dict[str, str] = {
    "patch": "mmeval.experts.patch_matcher:PatchMatcher",
}


def expert_class(name: str) -> type[Expert]:
    """The expert registered as ``name``; an unknown name is an InputError with a suggestion."""
    target = EXPERTS.get(name)
    if target is None:
        close = difflib.get_close_matches(name, EXPERTS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise InputError(f"unknown expert '{name}'.{hint} Known: {', '.join(EXPERTS)}")
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Expert)):
        raise TypeError(f"{target} is not an Expert")
    return cls


def validate_args(name: str, args: dict[str, Any], owner: str = "expert") -> BaseModel:
    """The expert's options from ``args``; a bad value or unknown key is an InputError naming it."""
    cls = expert_class(name)
    try:
        return cls.Options.model_validate(args)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "options"
        known = ", ".join(cls.Options.model_fields) or "none"
        raise InputError(f"{owner} '{name}': {key}: {err['msg']} (its options: {known})") from None


def build_expert(name: str, args: dict[str, Any] | None = None) -> Expert:
    return expert_class(name)(validate_args(name, args or {}))
