"""The bundled benchmark is a fair ruler: built with two seeds, no rule that ignores the image, or that
ignores where things are in it, does as well as looking.

* Blind rules (:mod:`mmeval.report.data_check`, options as a model sees them after the seeded shuffle)
  stay within 10 points of chance on every question type; rules that know the category are excepted
  for Object Classification, whose answer is the category.
* Pixel statistics that ignore position (a colour-histogram distance to the templates, the share of
  colours the templates never show) detect anomalies worse than the `expert` baseline, which compares
  the query with the templates place by place.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmeval import tasks
from mmeval.data import Question, load_benchmark
from mmeval.data.synthetic.generator import build_synthetic
from mmeval.model_adapters.base import AdapterSettings
from mmeval.model_adapters.expert import ExpertAdapter
from mmeval.prompting.messages import ImagePart, Message, Request, TextPart
from mmeval.report import data_check

SEEDS = (0, 1)
MARGIN = 10.0
AD = "Anomaly Detection"


@pytest.fixture(scope="module")
def benchmarks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("fair-ruler")
    return [build_synthetic(root / f"seed{s}", seed=s) for s in SEEDS]


@pytest.fixture(scope="module")
def detection(benchmarks: list[Path]) -> list[Question]:
    """Every Anomaly Detection question with two random templates, as ``--shots 2`` asks them."""
    return [q for path in benchmarks for q in load_benchmark(path, path.parent, shots=2, strict=True).questions
            if q.task == AD]


def test_no_blind_rule_beats_chance_by_more_than_ten_points(benchmarks: list[Path]) -> None:
    result = data_check.check(benchmarks, seed=0)
    asked = {tasks.get(q["type"]).name for path in benchmarks
             for rec in json.loads(path.read_text(encoding="utf-8")).values() for q in rec["conversation"]}
    assert [v.task for v in result.verdicts] == tasks.in_order(asked)
    assert list(dict.fromkeys(r.task for r in result.rules)) == tasks.in_order(asked)
    too_good = [(r.task, r.rule, round(r.accuracy, 1), round(r.chance, 1)) for r in result.rules
                if r.counted and r.accuracy > r.chance + MARGIN]
    assert too_good == []
    assert all(v.verdict != "leak" for v in result.verdicts)
    assert result.blind_average <= result.chance_average + 5
    excepted = [r for r in result.rules if not r.counted]
    assert [(r.task, r.knows_category) for r in excepted] == [("Object Classification", True)]
    assert excepted[0].accuracy == 100.0  # the check does see the category; it is the answer there


def _pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int64)


def _histogram(px: np.ndarray, bins: int) -> np.ndarray:
    q = px // (256 // bins)
    index = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    h = np.bincount(index.ravel(), minlength=bins ** 3).astype(float)
    return h / h.sum()


def histogram_distance(q: Question) -> float:
    """L1 distance between 8x8x8 colour histograms, to the nearest template."""
    query = _histogram(_pixels(q.query_path), 8)
    return min(float(np.abs(query - _histogram(_pixels(t), 8)).sum()) for t in q.template_paths)


def novel_colours(q: Question) -> float:
    """Share of the query's pixels in 16x16x16 colour bins that no template pixel falls in."""
    seen = sum(_histogram(_pixels(t), 16) for t in q.template_paths)
    return float(_histogram(_pixels(q.query_path), 16)[seen == 0].sum())


def best_balanced_accuracy(scores: list[float], defective: list[bool]) -> float:
    """The rule's balanced accuracy at its best threshold, chosen with the answers known (flattering it)."""
    s, y = np.array(scores), np.array(defective)
    return max(100 * ((s[y] >= t).mean() + (s[~y] < t).mean()) / 2 for t in np.unique(s))


def expert_balanced_accuracy(questions: list[Question]) -> float:
    adapter = ExpertAdapter("expert", settings=AdapterSettings(seed=0))
    reqs = [Request(id=q.id, task=q.task, image=q.image, options=dict(q.options),
                    message=Message(parts=[*(ImagePart(path=t, role="template") for t in q.template_paths),
                                           ImagePart(path=q.query_path, role="query"), TextPart(text=q.question)],
                                    prefix_len=len(q.template_paths) + 1))
            for q in questions]
    got = [r.text for r in adapter.predict(reqs)]  # in order: both seeds use the same question ids
    right = np.array([text == q.answer for text, q in zip(got, questions, strict=True)])
    normal = np.array([q.is_normal for q in questions])
    return 100 * (right[normal].mean() + right[~normal].mean()) / 2


def test_position_blind_pixel_statistics_detect_worse_than_the_expert(detection: list[Question]) -> None:
    defective = [not q.is_normal for q in detection]
    assert sum(defective) == 2 * 72 and len(detection) - sum(defective) == 2 * 48
    expert = expert_balanced_accuracy(detection)
    assert expert >= 70, expert
    for rule in (histogram_distance, novel_colours):
        pixel = best_balanced_accuracy([rule(q) for q in detection], defective)
        assert pixel < expert - 5, (rule.__name__, pixel, expert)
