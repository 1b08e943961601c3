"""Argument types shared by every command: each numeric flag is checked by argparse, whose message names the
flag (``argument --seed: must be a whole number of at least 0, got -1``) and whose exit code is 2.

A value that comes from a config file instead of the command line is checked by the same type
(:func:`check_setting`), so a setting has one rule wherever it is given.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


def whole(at_least: int | None = None, at_most: int | None = None) -> Callable[[str], int]:
    """A type for a whole-number flag within ``[at_least, at_most]`` (either bound may be open)."""
    if at_least is not None and at_most is not None:
        bounds = f"from {at_least} to {at_most}"
    elif at_least is not None:
        bounds = f"of at least {at_least}"
    elif at_most is not None:
        bounds = f"of at most {at_most}"
    else:
        bounds = ""
    wanted = f"a whole number {bounds}".rstrip()

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if (at_least is not None and value < at_least) or (at_most is not None and value > at_most):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {value}")
        return value

    parse.__name__ = wanted  # what argparse would show for an error the type does not word itself
    return parse


def number(wanted: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    """A type for a finite number flag that ``ok`` accepts; ``wanted`` says which, for the message."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if not (math.isfinite(value) and ok(value)):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    parse.__name__ = wanted
    return parse


#: a seed: every random choice derives from it (numpy's generators take no negative seed)
seed = whole(at_least=0)
#: how many of something there must be at least one of (questions, resamples, attempts, templates)
count = whole(at_least=1)
#: how many of something, zero allowed (template images shown)
count_or_zero = whole(at_least=0)
#: requests in flight at once
concurrency = whole(at_least=1, at_most=1024)
#: a TCP port; 0 lets the system pick a free one
port = whole(at_least=0, at_most=65535)
#: a share of something
fraction = number("a number strictly between 0 and 1", lambda v: 0 < v < 1)
#: a production line's cycle time
positive_ms = number("a positive number of milliseconds", lambda v: v > 0)


def check_setting(name: str, value: Any, kind: Callable[[str], Any], where: str) -> Any:
    """A setting read from ``where`` (a config file), checked by its flag's type; an InputError naming it."""
    from mmeval.errors import InputError

    if isinstance(value, bool):  # YAML reads 'yes' as True: no number
        raise InputError(f"{where}: {name}: expected a number, got {value}")
    try:
        return kind(str(value))
    except argparse.ArgumentTypeError as exc:
        raise InputError(f"{where}: {name}: {exc}") from None
