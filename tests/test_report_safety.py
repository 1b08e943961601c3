"""Reports that do not mislead: comparisons on different data, reference figures on other data, the
official scorer's quirks, spreadsheet formulas in names, files outside the data root, process time."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import materialise

from mmeval.cli import main
from mmeval.report.analysis.timings import latency
from mmeval.report.answer_rows import image_path
from mmeval.report.csvsafe import spreadsheet_safe


def cli(data: Path, out: Path, *extra: str) -> int:
    return main(["run", "--model", "random", "--data", str(data), "--out", str(out), "--no-progress", *extra])


# ------------------------------------------------------------------------------------------ compare


def test_compare_stands_on_the_questions_every_run_shares(official_records: dict, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    full = materialise(official_records, tmp_path / "full")
    fewer = dict(official_records)
    dropped = next(iter(fewer))
    del fewer[dropped]
    part = materialise(fewer, tmp_path / "part")
    assert cli(full, tmp_path / "a", "--seed", "1") == 0
    assert cli(part, tmp_path / "b", "--seed", "1") == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")]) == 0
    err = capsys.readouterr().err
    assert "do not hold the same questions" in err
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    n_full = sum(len(r["conversation"]) for r in official_records.values())
    assert saved["coverage"]["per_run"] == [n_full, n_full - len(official_records[dropped]["conversation"])]
    assert saved["coverage"]["shared"] == saved["coverage"]["per_run"][1]
    assert "do not hold the same questions" in (tmp_path / "cmp" / "compare.html").read_text(encoding="utf-8")
    for test in saved["tests"]:  # the paired test counts only shared questions
        assert sum(row["paired"] for row in test["mcnemar"] if row["task"] == "All") == saved["coverage"]["shared"]


def test_compare_refuses_runs_on_unrelated_data(official_records: dict, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    data = materialise(official_records, tmp_path / "d")
    assert cli(data, tmp_path / "a") == 0
    flipped = json.loads(data.read_text())
    for rec in flipped.values():  # the same ids, other answers: other questions
        for item in rec["conversation"]:
            options = list(item["Options"])
            item["Answer"] = options[(options.index(item["Answer"]) + 1) % len(options)]
    other = tmp_path / "e"
    shutil.copytree(data.parent, other)
    (other / "mmad.json").write_text(json.dumps(flipped), encoding="utf-8")
    assert cli(other / "mmad.json", tmp_path / "b") == 0
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "share no question" in capsys.readouterr().err


def test_reference_figures_are_not_a_gap_on_other_data(official_data: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    assert cli(official_data, tmp_path / "mmad-like") == 0  # the fixture's datasets are MMAD's
    page = (tmp_path / "mmad-like" / "report.html").read_text(encoding="utf-8")
    assert "gap to human expert" in page and "not comparable" not in page
    assert cli(Path("synthetic"), tmp_path / "synth") == 0  # SynthTexture / SynthObject: not MMAD
    page = (tmp_path / "synth" / "report.html").read_text(encoding="utf-8")
    assert "gap to human expert" not in page and "not comparable" in page and "on MMAD" in page
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "synth"), "--with", "human,gpt-4o"]) == 0
    assert "shown for orientation only" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ score-mmad


def _official_walk(answers: list[dict]) -> list[dict]:
    """MMAD's summary loop, run literally: remove from the list being walked."""
    counted = []
    for answer in answers:
        if answer["correct_answer"] not in ["A", "B", "C", "D", "E"] or answer["gpt_answer"] not in [
                "A", "B", "C", "D", "E"]:
            answers.remove(answer)
            continue
        counted.append(answer)
    return counted


def _answers(seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(300):
        ds = ("DS-MVTec", "VisA")[i % 2]
        normal = i % 3 == 0
        t = "Anomaly Detection" if i % 5 == 0 else "Defect Classification"
        options = {"A": "Yes.", "B": "No."} if t == "Anomaly Detection" else {k: k for k in "ABCD"}
        right = rng.choice(list(options))
        given = right if rng.random() < 0.6 else rng.choice(list(options))
        if rng.random() < 0.12:
            given = rng.choice(["", "I cannot tell", "F", " B", "AB"])
        out.append({"image": f"{ds}/c{i % 3}/{'good' if normal else 'bad'}/{i:03d}.png",
                    "question": {"type": "text", "text": f"q{i}", "options": options},
                    "question_type": t, "correct_answer": right, "gpt_answer": given})
    return out


def test_official_quirks_reproduce_the_summary_loop_exactly(tmp_path: Path) -> None:
    from mmeval.report.official import answers_frame, read_answers

    answers = _answers(3)
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(answers), encoding="utf-8")
    counted = _official_walk(json.loads(path.read_text()))
    df = answers_frame(read_answers(path), official_quirks=True)
    df = df[df["valid"]]
    assert len(df) == len(counted)
    assert [int(i.rsplit("#", 1)[1]) for i in df["id"]] == [answers.index(a) for a in counted]
    dropped_honestly = answers_frame(read_answers(path))
    assert int((~dropped_honestly["valid"]).sum()) > len(answers) - len(df) - 40  # the quirk skipped some valid ones
    assert main(["score-mmad", str(path), "--out", str(tmp_path / "q"), "--official-quirks"]) == 0
    assert json.loads((tmp_path / "q" / "scores.json").read_text())["official_quirks"] is True
    assert main(["score-mmad", str(path), "--out", str(tmp_path / "d"), "--drop-invalid"]) == 0
    quirky = pd.read_csv(tmp_path / "q" / "scores.csv", index_col=0)
    honest = pd.read_csv(tmp_path / "d" / "scores.csv", index_col=0)
    assert (quirky["Defect Classification"] != honest["Defect Classification"]).any()


def test_a_letter_the_question_did_not_offer_is_invalid(tmp_path: Path) -> None:
    from mmeval.report.official import answers_frame, read_answers

    answers = [{"image": "D/c/bad/0.png", "question": {"type": "text", "text": "q", "options": {"A": "Yes.",
                                                                                                "B": "No."}},
                "question_type": "Anomaly Detection", "correct_answer": "A", "gpt_answer": given}
               for given in ("A", "C", "F", "H")]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(answers), encoding="utf-8")
    assert list(answers_frame(read_answers(path))["valid"]) == [True, False, False, False]


# ------------------------------------------------------------------------------------------ files


def test_names_that_look_like_formulas_are_neutralised(official_records: dict, tmp_path: Path) -> None:
    records = {k.replace("DS-MVTec", "=HYPERLINK(1)", 1): v for k, v in official_records.items()}
    for rec in records.values():
        rec["random_templates"] = [t.replace("DS-MVTec", "=HYPERLINK(1)", 1) for t in rec.get("random_templates", [])]
        rec["similar_templates"] = [t.replace("DS-MVTec", "=HYPERLINK(1)", 1) for t in rec.get("similar_templates", [])]
    data = materialise(records, tmp_path / "d")
    assert cli(data, tmp_path / "r") == 0
    for name in ("scores.csv", "ci.csv"):
        with open(tmp_path / "r" / name, encoding="utf-8") as fh:
            cells = [c for row in csv.reader(fh) for c in row]
        assert not any(c.startswith(("=", "+", "@")) for c in cells), name
        assert "'=HYPERLINK(1)" in cells
    frame = spreadsheet_safe(pd.DataFrame({"x": ["-1+2", "ok", 3.5], "y": [-1.0, 2.0, 3.0]}, index=["@a", "b", "c"]))
    assert list(frame["x"]) == ["'-1+2", "ok", 3.5] and list(frame["y"]) == [-1.0, 2.0, 3.0]
    assert list(frame.index) == ["'@a", "b", "c"]


def test_reports_embed_only_images_under_the_data_root(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(b"x")
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"s")
    (root / "a" / "link.png").symlink_to(outside)
    assert image_path(root, "a/x.png") == (root / "a" / "x.png").resolve()
    assert image_path(root, str(outside)) is None
    assert image_path(root, "../secret.png") is None
    assert image_path(root, "a/link.png") is None


def test_reported_wall_time_of_parallel_processes_is_not_their_sum() -> None:
    per_q = {f"q{i}": 0.1 for i in range(8)}
    batches = [{"batch_seconds": 2.0, "batch_size": 4, "process": "timings.rank0.jsonl"},
               {"batch_seconds": 2.0, "batch_size": 4, "process": "timings.rank1.jsonl"}]
    lat = latency(per_q, batches, {q: "img" for q in per_q})
    assert lat.total_seconds == 2.0 and lat.questions_per_second == 4.0
