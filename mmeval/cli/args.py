"""Argument types shared by several commands (argparse turns their errors into exit code 2)."""

from __future__ import annotations

import argparse
import math


def positive_ms(text: str) -> float:
    """A positive, finite number of milliseconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of milliseconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of milliseconds, got {text}")
    return value
