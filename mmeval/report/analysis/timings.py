"""Latency and throughput of a run, from its timings.jsonl.

Latency (:func:`latency`): from timings.jsonl; per question = seconds since the previous answer of
its batch (with batches > 1 the first answer carries the batch's compute); per image = the sum over
the image's questions in the run; throughput = answered questions / wall time, where the wall time is
the batch time summed per process and, for several processes working side by side, the longest of
those sums (not their total).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from mmeval.layout import TIMINGS

KeepsUp = Literal["yes", "on average only", "no"]


class Latency(BaseModel):
    """Latency (ms) and throughput of a run; the figures are None when ``available`` is False (no timings),
    ``keeps_up`` and ``headroom`` None without a line cycle time."""

    model_config = ConfigDict(frozen=True)

    available: bool
    cycle_ms: float | None = None
    questions: int | None = None
    images: int | None = None
    question_p50_ms: float | None = None
    question_p95_ms: float | None = None
    question_mean_ms: float | None = None
    image_p50_ms: float | None = None
    image_p95_ms: float | None = None
    image_mean_ms: float | None = None
    total_seconds: float | None = None
    questions_per_second: float | None = None
    images_per_second: float | None = None
    max_batch_size: int | None = None
    keeps_up: KeepsUp | None = None
    headroom: float | None = None  # cycle time / p95 per image


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); NaN for no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def _records(text: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines text; a torn line (an interrupted run's last) is passed over.

    The lines are parsed as one JSON list first (one call into the C parser for tens of thousands of lines),
    line by line only when that fails.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        records = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return [r for r in records if isinstance(r, dict)]


def read_timings(run_dir: Path) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(question id -> seconds, last line per id wins; batch lines) from timings*.jsonl of a run dir."""
    per_q: dict[str, float] = {}
    batches: list[dict[str, Any]] = []
    files = [run_dir / TIMINGS] + sorted(run_dir.glob("timings.rank*.jsonl"))
    for path in files:
        if not path.is_file():
            continue
        for rec in _records(path.read_text(encoding="utf-8")):
            if "id" in rec and "seconds" in rec:
                per_q[str(rec["id"])] = float(rec["seconds"])
            elif "batch_seconds" in rec:
                batches.append({**rec, "process": path.name})
    return per_q, batches


def latency(per_question: dict[str, float], batches: Sequence[dict[str, Any]], image_of: dict[str, str],
            cycle_ms: float | None = None) -> Latency:
    """Latency percentiles (ms), throughput and, with a line cycle time, whether the model keeps up.

    Only questions present in ``image_of`` (the run's predictions) count. ``keeps_up``: "yes" when the
    95th percentile of per-image time fits in the cycle, "on average only" when the mean does but the
    p95 does not, "no" otherwise.
    """
    ids = [q for q in per_question if q in image_of]
    if not ids:
        return Latency(available=False, cycle_ms=cycle_ms)
    q_ms = [1000 * per_question[q] for q in ids]
    per_image: dict[str, float] = defaultdict(float)
    for q in ids:
        per_image[image_of[q]] += 1000 * per_question[q]
    img_ms = list(per_image.values())
    per_process: dict[str, float] = defaultdict(float)
    for b in batches:
        per_process[str(b.get("process", ""))] += float(b["batch_seconds"])
    total_s = max(per_process.values()) if per_process else sum(q_ms) / 1000
    sizes = [int(b.get("batch_size", 1)) for b in batches]
    p95, mean = percentile(img_ms, 95), float(np.mean(img_ms))
    keeps_up: KeepsUp | None = None
    headroom = None
    if cycle_ms:
        keeps_up = "yes" if p95 <= cycle_ms else ("on average only" if mean <= cycle_ms else "no")
        headroom = cycle_ms / p95 if p95 > 0 else float("inf")
    return Latency(
        available=True, cycle_ms=cycle_ms, questions=len(ids), images=len(img_ms),
        question_p50_ms=percentile(q_ms, 50), question_p95_ms=percentile(q_ms, 95),
        question_mean_ms=float(np.mean(q_ms)),
        image_p50_ms=percentile(img_ms, 50), image_p95_ms=p95, image_mean_ms=mean,
        total_seconds=total_s,
        questions_per_second=len(ids) / total_s if total_s > 0 else float("nan"),
        images_per_second=len(img_ms) / total_s if total_s > 0 else float("nan"),
        max_batch_size=max(sizes) if sizes else 1, keeps_up=keeps_up, headroom=headroom)
