"""benchmarks/local_throughput.py: speed-ups come from runs paired within a round, not from separate medians."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import local_throughput as lt  # noqa: E402


def _results(cpu: dict[str, list[float]], positions: dict[str, float]) -> dict[str, dict]:
    return {name: {"seconds": {"runner_cpu": seconds}, "positions_per_question": positions[name]}
            for name, seconds in cpu.items()}


def test_rounds_run_every_configuration_once_alternating_direction() -> None:
    names = ["a", "a2", "c2"]
    assert lt.rounds_order(names, 0) == ["a", "a2", "c2"]
    assert lt.rounds_order(names, 1) == ["c2", "a2", "a"]
    assert lt.rounds_order(names, 2) == ["a", "a2", "c2"]


def test_speedup_is_the_median_of_paired_round_ratios() -> None:
    # round 2 ran fast for both; the ratio of the separate medians (10 / 3 = 3.33) would mix the spells
    a2, c2 = "a2_mmad_generate_2tok", "c2_likelihood_reuse_invariant"
    results = _results({a2: [10.0, 5.0, 10.0], c2: [4.0, 2.5, 3.0]}, {a2: 600.0, c2: 200.0})
    ratios, limits, each = lt.speedups(results)
    key = f"{c2}/a2"
    assert each[key] == pytest.approx([2.5, 2.0, 10 / 3])
    assert ratios[key] == pytest.approx(2.5)
    assert limits[key] == pytest.approx(3.0)


def test_rag_cost_is_paired_with_the_plain_run() -> None:
    rag, plain = "c2_rag_likelihood_reuse_invariant", "c2_likelihood_reuse_invariant"
    results = _results({plain: [2.0, 4.0], rag: [4.0, 6.0]}, {plain: 200.0, rag: 400.0})
    ratios, limits, each = lt.speedups(results)
    assert each[f"{rag}/c2"] == pytest.approx([0.5, 2 / 3])
    assert limits[f"{rag}/c2"] == pytest.approx(0.5)


def test_labels_tell_the_rag_row_apart() -> None:
    assert [lt.label(n) for n in lt.CONFIGS] == ["a", "a2", "b", "c", "c2", "c2 rag"]
