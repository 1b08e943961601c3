"""Which predictions are which: plain questions and defect probes, the Anomaly Detection task and the
tasks that presuppose a defect, the Yes / No meaning of an option's text; percentages.

Shared by the other analysis modules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mmeval import tasks as task_registry
from mmeval.predictions import Prediction

PROBE = "probe"


def detection_task() -> str | None:
    """The task scored as balanced accuracy (Anomaly Detection)."""
    return next((t.name for t in task_registry.all_tasks() if t.scoring == "balanced"), None)


def defect_tasks() -> list[str]:
    """Tasks asked only about anomalous images: their questions presuppose a defect."""
    return [t.name for t in task_registry.all_tasks() if t.asked_about == "anomalous"]


def plain_preds(preds: Iterable[Prediction]) -> list[Prediction]:
    return [p for p in preds if p.variant is None]


def probe_preds(preds: Iterable[Prediction]) -> list[Prediction]:
    return [p for p in preds if p.variant == PROBE]


_WORD = re.compile(r"[a-z]+")


def polarity(text: str) -> str | None:
    """'yes' or 'no' when an option's text means Yes / No (``Yes.``, ``no``, ``No, it is fine``)."""
    m = _WORD.search(text.strip().lower())
    if not m:
        return None
    return m.group(0) if m.group(0) in ("yes", "no") else None


def _pct(num: float, den: float) -> float:
    return 100.0 * num / den if den else float("nan")
