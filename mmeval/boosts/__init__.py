"""Boosts: request transforms applied, in order, while requests are prepared (see :mod:`.base`).

``--boost`` takes names joined by ``+`` (``rag+agent``: RAG first, then the agent); ``none`` is the
plain run. ``--boost-arg KEY=VALUE`` sets an option of the one boost that has it, or of a named boost
with ``NAME.KEY=VALUE``. The registry maps names to ``module:Class`` and loads lazily.
"""

from __future__ import annotations

from typing import Any

from mmeval import optionspec
from mmeval.boosts.base import Boost, BoostContext
from mmeval.errors import InputError
from mmeval.registry import did_you_mean, load_class

__all__ = ["BOOSTS", "Boost", "BoostContext", "boost_class", "build_boosts", "parse_spec", "parse_variants",
           "split_args"]

#: name -> "module:Class"
BOOSTS: dict[str, str] = {
    "none": "mmeval.boosts.none:NoBoost",
    "rag": "mmeval.boosts.rag:RagBoost",
    "agent": "mmeval.boosts.agent:AgentBoost",
}


def boost_class(name: str) -> type[Boost]:
    target = BOOSTS.get(name)
    if target is None:
        raise InputError(f"--boost: unknown boost '{name}'.{did_you_mean(name, BOOSTS)}")
    return load_class(target, Boost)


def parse_variants(spec: str | None) -> list[str]:
    """``"none,rag,rag+agent"`` -> the ablation's variants, each a ``+``-joined boost list ("none" for none)."""
    variants = [v.strip() for v in (spec or "").split(",") if v.strip()]
    return variants or ["none"]


def parse_spec(spec: str | None) -> tuple[str, ...]:
    """``"rag+agent"`` -> ``("rag", "agent")``; ``none`` (or nothing) -> ``()``; unknown names are refused."""
    names = [n.strip() for n in (spec or "").split("+") if n.strip()]
    for name in names:
        boost_class(name)
    if len(set(names)) != len(names):
        raise InputError(f"--boost {spec}: a boost is named twice")
    return tuple(n for n in names if n != "none")


def split_args(boosts: tuple[str, ...], raw: dict[str, Any], *, others: tuple[str, ...] = ()) -> tuple[
        dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``--boost-arg`` pairs -> per boost (options that affect answers, operational options), validated.

    ``others``: boosts of the other variants of an ablation; an option meant for one of them is passed over.
    """
    owned: dict[str, dict[str, Any]] = {b: {} for b in boosts}
    for key, value in raw.items():
        name, dot, field = key.partition(".")
        if dot:
            if name not in owned:
                if name in others:
                    continue
                raise InputError(f"--boost-arg {key}: boost '{name}' is not part of --boost")
            owned[name][field] = value
            continue
        owners = [b for b in boosts if boost_class(b).owns(key)]
        if not owners and any(boost_class(b).owns(key) for b in others):
            continue
        if not owners:
            raise InputError(f"--boost-arg {key}: {_not_in_run(key, boosts)}")
        if len(owners) > 1:
            raise InputError(f"--boost-arg {key}: several boosts have it ({', '.join(owners)}); write "
                             f"{owners[0]}.{key}=VALUE to say which")
        owned[owners[0]][key] = value
    hashed: dict[str, dict[str, Any]] = {}
    runtime: dict[str, dict[str, Any]] = {}
    for name, args in owned.items():
        h, r = boost_class(name).split_options(args)
        if h:
            hashed[name] = h
        if r:
            runtime[name] = r
    return hashed, runtime


def _not_in_run(key: str, boosts: tuple[str, ...]) -> str:
    """Why an option without a boost name has no owner, and what to write instead."""
    having = [name for name in BOOSTS if name != "none" and boost_class(name).owns(key)]
    run = "+".join(boosts) if boosts else "none"
    if not having:
        return f"no boost has this option (mmeval boosts lists them; --boost is {run})"
    return (f"an option of {' and of '.join(having)}, which --boost ({run}) does not apply; add it, e.g. "
            f"--boost {'+'.join([*boosts, having[0]])}")


def build_boosts(boosts: tuple[str, ...], args: dict[str, dict[str, Any]], context: BoostContext) -> list[Boost]:
    """The run's boosts, in order, built from their (already split) options."""
    out = []
    for name in boosts:
        cls = boost_class(name)
        out.append(cls(optionspec.validate(cls.Options, args.get(name, {}), f"--boost-arg ({name})"), context))
    return out
