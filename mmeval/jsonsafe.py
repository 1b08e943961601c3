"""JSON in and out: the one guarded reader for JSON that users and models supply, and values made fit for strict
JSON (NaN/inf become null, numpy scalars plain Python numbers).

Every JSON text mmeval reads from a user (a benchmark file, a knowledge file, a table cell, a checkpoint's
config) or from a model (a writer's reply, a server's response) goes through :func:`parse_json`. Python's parser
recurses once per nesting level and ends in ``RecursionError`` on a text such as ``[[[[...]]]]`` a few thousand
levels deep; here that is an :class:`~mmeval.errors.InputError` naming the source, like any other malformed text.
Values nested deeper than :data:`MAX_DEPTH` are refused too (no file mmeval reads needs more than a handful of
levels), so code that later walks a value recursively (validation, printing, ``json.dumps``) never meets one
that is too deep for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from mmeval.errors import InputError

#: the deepest nesting accepted by default (MMAD's files use five levels)
MAX_DEPTH = 64


def parse_json(text: str | bytes, source: str, *, max_depth: int | None = MAX_DEPTH,
               object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None) -> Any:
    """The value of a JSON text; any problem is an :class:`InputError` starting with ``source`` (a file or "the reply").

    ``max_depth``: the deepest nesting accepted (None: only what the parser itself can read, for large files
    whose readers never walk a value recursively, where a walk over every value would cost time).
    """
    if isinstance(text, bytes):
        text = decode_utf8(text, source)
    try:
        value = json.loads(text, object_pairs_hook=object_pairs_hook)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{source}: JSON nested too deeply to read") from None
    if max_depth is not None and _deeper_than(value, max_depth):
        raise InputError(f"{source}: JSON nested too deeply (more than {max_depth} levels of brackets)")
    return value


def decode_utf8(raw: bytes, source: str) -> str:
    """``raw`` as UTF-8 text; an :class:`InputError` naming the line and column where it is not (JSON files, and
    the YAML and TOML config files, which their formats also define as UTF-8)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        where = f"line {line}, column {col} (byte {exc.start})"
        raise InputError(f"{source}: not UTF-8 at {where}; save it as UTF-8") from None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and dicts more than ``limit`` levels deep (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def json_safe(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
