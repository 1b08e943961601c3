"""Which predictions are which: plain questions and defect probes; percentages.

Shared by the other analysis modules. Which task is detection, which tasks presuppose a defect and
what an option's Yes / No means are task semantics: :mod:`mmeval.tasks` owns them.
"""

from __future__ import annotations

from collections.abc import Iterable

from mmeval.layout import PROBE
from mmeval.predictions import Prediction

__all__ = ["PROBE", "pct", "plain_preds", "probe_preds"]


def plain_preds(preds: Iterable[Prediction]) -> list[Prediction]:
    return [p for p in preds if p.variant is None]


def probe_preds(preds: Iterable[Prediction]) -> list[Prediction]:
    return [p for p in preds if p.variant == PROBE]


def pct(num: float, den: float) -> float:
    """``100 * num / den``; NaN when ``den`` is 0."""
    return 100.0 * num / den if den else float("nan")
