"""Options of model families, boosts and experts: parsing, validation, normalisation and their docs.

Each owner (a model family, a boost, an expert) declares its options as a pydantic model. The user
sets them as ``key=value`` pairs (``--model-arg``, ``--boost-arg``) or in a config file; values are
validated and normalised through the model (``"8"`` -> ``8``), so the run-config hash does not depend
on how a value was spelled. Fields marked ``json_schema_extra={"affects_predictions": False}``
(concurrency, retries, caches ...) change how answers are obtained, not what they are: they are kept
apart and out of the hash, so changing them does not block a resume.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from mmeval.errors import InputError

#: the marker of an operational option (see the module docstring)
OPERATIONAL: dict[str, Any] = {"affects_predictions": False}


def parse_pairs(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}``; a pair without ``=`` is an InputError naming the flag."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InputError(f"{flag} {pair!r}: expected KEY=VALUE")
        out[key] = value
    return out


def is_operational(model: type[BaseModel], name: str) -> bool:
    info = model.model_fields.get(name)
    extra = info.json_schema_extra if info is not None else None
    return isinstance(extra, dict) and extra.get("affects_predictions") is False


def validate(model: type[BaseModel], raw: dict[str, Any], where: str) -> BaseModel:
    """``model`` validated from ``raw``; the first problem becomes an InputError naming ``where`` and the key."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "options"
        if err["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields) or "none"
            raise InputError(f"{where} {key}: unknown option (known: {known})") from None
        raise InputError(f"{where} {key}={raw.get(key, '')!s:.60}: {err['msg']}") from None


def normalise(model: type[BaseModel], raw: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate the options given, then split them into (affects predictions, operational).

    Only the keys given are returned (defaults stay implicit, so adding an option with a default does
    not change the hash of existing runs).
    """
    validated = validate(model, raw, where).model_dump(mode="json")
    hashed: dict[str, Any] = {}
    runtime: dict[str, Any] = {}
    for name in raw:
        (runtime if is_operational(model, name) else hashed)[name] = validated.get(name, raw[name])
    return hashed, runtime


def resolved(model: type[BaseModel], raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Every option that affects predictions, as the owner will use it: the values given, normalised, and the
    defaults of the others (what decides its output; a default changed in a later release shows here).
    Operational options are left out, as in :func:`normalise`."""
    validated = validate(model, raw, where).model_dump(mode="json")
    return {name: value for name, value in validated.items() if not is_operational(model, name)}


@dataclass(frozen=True)
class OptionDoc:
    name: str
    type: str
    default: Any
    help: str
    operational: bool
    #: no default: the option must be given
    required: bool = False


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


def describe(model: type[BaseModel]) -> list[OptionDoc]:
    """Every option of ``model`` with its type, default and help (for ``mmeval models show`` and ``--help``)."""
    return [OptionDoc(name, _type_name(info.annotation),
                      None if info.is_required() else info.get_default(call_default_factory=True),
                      info.description or "", is_operational(model, name), info.is_required())
            for name, info in model.model_fields.items()]


def format_docs(docs: list[OptionDoc], indent: str = "  ") -> str:
    lines = []
    for d in docs:
        default = " (required)" if d.required else "" if d.default is None else f" (default: {d.default})"
        tag = " [operational: not part of the run's identity]" if d.operational else ""
        lines.append(f"{indent}{d.name}: {d.type}{default}{tag}")
        if d.help:
            lines.append(f"{indent}    {d.help}")
    return "\n".join(lines)
