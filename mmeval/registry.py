"""What the lazy registries share (model families, boosts, experts): a "did you mean" hint for an unknown
name, and loading a registered ``"module:Class"`` only when it is used (so listing or running a baseline
never imports torch)."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from typing import Any


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest known name, or ``""``; then the known names."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1)
    return (f" Did you mean '{close[0]}'?" if close else "") + f" Known: {', '.join(known)}"


def load_class(target: str, base: type) -> Any:
    """Import ``"module:Class"`` and check that it is a subclass of ``base`` (ImportError passes through).

    Typed ``Any``: the registries' bases are abstract, which ``type[T]`` would refuse; callers declare the type.
    """
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"{target} is not a {base.__name__}")
    return cls
