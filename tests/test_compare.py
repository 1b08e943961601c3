"""``mmeval compare`` end to end on two real runs of the bundled synthetic benchmark, and ``--cycle-ms``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mmeval.cli import main
from mmeval.data.synthetic.generator import build_synthetic
from mmeval.predictions import read_predictions
from mmeval.report import analysis, references

LIMIT = "90"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("compare")
    data = build_synthetic(root / "synth", seed=0)
    a, b = root / "random", root / "expert"
    assert main(["run", "--model", "random", "--data", str(data), "--limit", LIMIT, "--circular", "--probes",
                 "--out", str(a), "--no-progress"]) == 0
    assert main(["run", "--model", "expert", "--shots", "2", "--data", str(data), "--limit", LIMIT, "--probes",
                 "--out", str(b), "--no-progress", "--cycle-ms", "50"]) == 0
    return a, b


def test_run_writes_the_full_report(two_runs: tuple[Path, Path]) -> None:
    a, b = two_runs
    for run in (a, b):
        for name in ("report.html", "analysis.json", "ci.csv", "mmad_answers.json"):
            assert (run / name).is_file(), (run, name)
    info_b = json.loads((b / "analysis.json").read_text())
    assert info_b["latency"]["cycle_ms"] == 50 and info_b["latency"]["keeps_up"] in ("yes", "no", "on average only")
    assert info_b["detection_scores"]["available"] is True  # the expert model gives option scores
    info_a = json.loads((a / "analysis.json").read_text())
    assert info_a["circular"] and info_a["circular"][-1]["task"] == "Average"
    assert info_a["fabrication"]["probes"] > 0


def test_report_cycle_ms_flag(two_runs: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    a, _ = two_runs
    assert main(["report", str(a), "--cycle-ms", "0.000001"]) == 0
    assert json.loads((a / "analysis.json").read_text())["latency"]["keeps_up"] == "no"
    assert main(["report", str(a)]) == 0
    assert "keeps_up" not in json.loads((a / "analysis.json").read_text())["latency"]


def test_compare_end_to_end(two_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = two_runs
    out = tmp_path / "cmp"
    assert main(["compare", str(a), str(b), "--with", "human,GPT-4o", "--out", str(out), "--cycle-ms", "50",
                 "--bootstrap", "200"]) == 0
    captured = capsys.readouterr()
    assert str(out / "compare.html") in captured.out
    assert "McNemar" in captured.err and "approximate" in captured.err
    for name in ("compare.html", "compare.csv", "compare.json", "heatmap.svg"):
        assert (out / name).is_file(), name

    table = pd.read_csv(out / "compare.csv", index_col=0)
    assert list(table["kind"]) == ["run", "run", "human", "published"]
    assert list(table.index) == ["random (1-shot)", "expert (2-shot)", "human expert (approx.)",
                                 "gpt-4o (1-shot, published)"]
    for run, label in ((a, "random (1-shot)"), (b, "expert (2-shot)")):
        scores = pd.read_csv(run / "scores.csv", index_col=0)
        for col in ("Anomaly Detection", "Average", "Overkill"):
            assert table.loc[label, col] == pytest.approx(scores.loc["Average", col], abs=1e-3)
        assert table.loc[label, "Average_lo"] <= table.loc[label, "Average"] <= table.loc[label, "Average_hi"]
    assert table.loc["human expert (approx.)", "Anomaly Detection"] == pytest.approx(95.4)
    gpt = references.reference_row("gpt-4o")
    assert table.loc["gpt-4o (1-shot, published)", "Average"] == pytest.approx(gpt.scores["Average"])

    # the McNemar counts agree with a recount from the two prediction files
    payload = json.loads((out / "compare.json").read_text())
    rows = {r["task"]: r for r in payload["tests"][0]["mcnemar"]}
    pa = {p.id: p for p in read_predictions(a / "predictions.jsonl") if p.variant is None}
    pb = {p.id: p for p in read_predictions(b / "predictions.jsonl") if p.variant is None}
    both = [i for i in pa if i in pb]
    assert rows["All"]["paired"] == len(both) == int(LIMIT)
    a_only = sum(pa[i].correct and not pb[i].correct for i in both)
    b_only = sum(pb[i].correct and not pa[i].correct for i in both)
    assert (rows["All"]["a_only"], rows["All"]["b_only"]) == (a_only, b_only)
    assert rows["All"]["p"] == pytest.approx(analysis.mcnemar(a_only, b_only)[0])
    assert {"random (1-shot)", "expert (2-shot)"} == {s["label"] for s in payload["summaries"]}

    html = (out / "compare.html").read_text(encoding="utf-8")
    for section in ("summary", "heatmap", "tasks-vs-human", "significance", "hallucination", "wrong-answers"):
        assert f'id="{section}"' in html


def test_compare_unknown_reference_exits_2_listing_names(two_runs: tuple[Path, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", str(two_runs[0]), "--with", "human,gpt-17", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "gpt-17" in err and "gpt-4o" in err and "claude-3-5-sonnet-20241022" in err and "human" in err
    assert not (tmp_path / "x").exists()


def test_compare_bad_run_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", str(tmp_path / "nope")]) == 2
    assert "predictions.jsonl" in capsys.readouterr().err


def test_compare_one_run_without_out_prints_the_table(two_runs: tuple[Path, Path],
                                                      capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", str(two_runs[1]), "--with", "Human-Ordinary", "--bootstrap", "50"]) == 0
    err = capsys.readouterr().err
    assert "expert (2-shot)" in err and "human ordinary" in err and "78.9" in err
