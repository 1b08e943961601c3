"""The demo's job end to end on the bundled benchmark: baselines land where they should."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mmeval.cli import main
from mmeval.data.synthetic.cache import synthetic_home, synthetic_scale
from mmeval.errors import InputError

FOUR_OPTION = ["Defect Classification", "Defect Localization", "Defect Description", "Defect Analysis",
               "Object Classification", "Object Analysis"]


def run_synthetic(out: Path, model: str, *extra: str) -> pd.DataFrame:
    assert main(["run", "--model", model, "--data", "synthetic", "--out", str(out), "--no-progress", *extra]) == 0
    for name in ("predictions.jsonl", "scores.csv", "scores.json", "heatmap.svg"):
        assert (out / name).is_file(), name
    return pd.read_csv(out / "scores.csv", index_col=0)


def test_random_scores_near_chance(tmp_path: Path) -> None:
    # chance is a property of the seed, not of one draw: average a few seeds
    tables = [run_synthetic(tmp_path / f"r{s}", "random", "--seed", str(s)) for s in range(3)]
    avg = sum(t.loc["Average"] for t in tables) / len(tables)
    assert 40 <= avg["Anomaly Detection"] <= 60
    for task in FOUR_OPTION:
        assert 15 <= avg[task] <= 36, (task, avg[task])


def test_expert_beats_chance_on_detection_and_localization(tmp_path: Path) -> None:
    # seed 0 of the demo scale gives about 80 and 92; the blind rules of `mmeval data check` stay near 50 and 25
    table = run_synthetic(tmp_path / "expert", "expert", "--shots", "2")
    assert table.loc["Average", "Anomaly Detection"] >= 72
    assert table.loc["Average", "Defect Localization"] >= 75
    report = json.loads((tmp_path / "expert" / "scores.json").read_text())
    assert report["counts"]["invalid"] == 0 and report["skipped"]["count"] == 0


def test_always_normal_has_no_overkill(tmp_path: Path) -> None:
    table = run_synthetic(tmp_path / "lazy", "always-normal")
    assert table.loc["Average", "Overkill"] == 0 and table.loc["Average", "Miss"] == 100
    assert table.loc["Average", "Anomaly Detection"] == pytest.approx(50)


def test_synthetic_is_built_once_per_generator_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmeval.data.synthetic import cache as synthetic_cache

    monkeypatch.setenv("MMEVAL_HOME", str(tmp_path))
    first = synthetic_cache.ensure_synthetic()
    stamp = first.stat().st_mtime_ns
    assert synthetic_cache.ensure_synthetic() == first and first.stat().st_mtime_ns == stamp  # reused
    monkeypatch.setattr(synthetic_cache, "generator_version", lambda: "changed")
    second = synthetic_cache.ensure_synthetic()
    assert second != first and second.is_file() and second.read_bytes() == first.read_bytes()
    assert not list(tmp_path.glob("*.tmp*")) and len(list(tmp_path.iterdir())) == 2  # no half-built leftovers


def test_data_spec_picks_the_scale(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert synthetic_scale("synthetic") == "demo"
    assert synthetic_scale("synthetic:standard") == "standard"
    assert synthetic_scale("synthetic:demo") == "demo"
    assert synthetic_scale("data/synthetic") is None and synthetic_scale("synthetic.json") is None
    assert synthetic_home("standard") != synthetic_home() and "standard" in synthetic_home("standard").name
    with pytest.raises(InputError, match="unknown scale 'huge'"):
        synthetic_scale("synthetic:huge")
    assert main(["run", "--model", "random", "--data", "synthetic:huge", "--out", str(tmp_path / "x")]) == 2
    assert "known: demo, standard" in capsys.readouterr().err
