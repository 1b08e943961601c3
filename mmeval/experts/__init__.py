"""Anomaly detectors ("experts"): (query, templates) -> anomaly map, image score and decision threshold.

The registry maps a name to ``module:Class``; classes load lazily, so listing experts imports nothing
heavy. Adding an expert is one module plus one line in :data:`EXPERTS`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mmeval import optionspec
from mmeval.errors import InputError
from mmeval.experts.base import AnomalyMap, Expert
from mmeval.registry import did_you_mean, load_class

__all__ = ["EXPERTS", "AnomalyMap", "Expert", "build_expert", "expert_class", "option_docs_with_experts",
           "resolved_with_expert", "split_with_expert", "validate_args"]

#: name -> "module:Class"
EXPERTS: dict[str, str] = {
    "patch": "mmeval.experts.patch_matcher:PatchMatcher",
    "maps": "mmeval.experts.maps:MapsExpert",
    "oracle": "mmeval.experts.oracle:OracleExpert",
}


def expert_class(name: str) -> type[Expert]:
    """The expert registered as ``name``; an unknown name is an InputError with a suggestion."""
    target = EXPERTS.get(name)
    if target is None:
        raise InputError(f"unknown expert '{name}'.{did_you_mean(name, EXPERTS)}")
    return load_class(target, Expert)


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


def build_expert(name: str, args: dict[str, Any] | None = None, data_root: Path | None = None) -> Expert:
    return expert_class(name)(validate_args(name, args or {}), data_root)


def split_with_expert(own: type[BaseModel], raw: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Options of something that consults an expert (``own``: its fields, one named ``expert``), plus the
    chosen expert's options given in the same namespace: validated, normalised, (hashed, operational)."""
    mine = {k: v for k, v in raw.items() if k in own.model_fields}
    hashed, runtime = optionspec.normalise(own, mine, where)
    default = own.model_fields["expert"].default
    expert = expert_class(str(hashed.get("expert", default)))
    rest = {k: v for k, v in raw.items() if k not in mine}
    more_hashed, more_runtime = optionspec.normalise(expert.Options, rest, f"{where} (expert {expert.name})")
    return {**hashed, **more_hashed}, {**runtime, **more_runtime}


def resolved_with_expert(own: type[BaseModel], args: dict[str, Any], where: str) -> dict[str, Any]:
    """Options of something that consults an expert, resolved (defaults included, operational ones aside):
    ``own``'s, then the chosen expert's, as :func:`mmeval.optionspec.resolved` gives them."""
    mine = {k: v for k, v in args.items() if k in own.model_fields}
    resolved = optionspec.resolved(own, mine, where)
    expert = expert_class(str(resolved["expert"]))
    rest = {k: v for k, v in args.items() if k not in mine}
    return {**resolved, **optionspec.resolved(expert.Options, rest, f"{where} (expert {expert.name})")}


def option_docs_with_experts(own: type[BaseModel]) -> list[optionspec.OptionDoc]:
    """``own``'s options, then every expert's, labelled with the expert they belong to."""
    docs = optionspec.describe(own)
    for name in EXPERTS:
        for d in optionspec.describe(expert_class(name).Options):
            docs.append(dataclasses.replace(d, help=f"(expert {name}) {d.help}"))
    return docs


def expert_option_names() -> set[str]:
    return {f for name in EXPERTS for f in expert_class(name).Options.model_fields}
