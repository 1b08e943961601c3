"""``mmeval data check``: blind baselines find leaks in any mmad.json (no images needed), and say so clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmeval.cli import main
from mmeval.errors import InputError
from mmeval.report import data_check
from mmeval.report.data_check import load_data_check

OPTS = ("Crack.", "Scratch.", "Hole.", "Stain.")


def _q(question: str, options: list[str], answer: int, qtype: str) -> dict:
    letters = "ABCD"[: len(options)]
    return {"Question": question, "Options": dict(zip(letters, options, strict=True)), "Answer": letters[answer],
            "type": qtype, "annotation": True}


def _leaky_records(n: int = 80) -> dict:
    """Four ways to leak and one fair type, over two categories, with every file answer at letter A.

    * Defect Classification: the answer is the longest option.
    * Defect Description: the answer is fixed by the category (same four texts offered everywhere).
    * Object Analysis: one fixed question per category with a fixed answer (the old generator's flaw).
    * Defect Localization: fair (the answer is uniform among the offered cells).
    """
    records = {}
    for i in range(n):
        cat = "a" if i % 2 else "b"
        normal = i % 4 < 2
        key = f"Set/{cat}/test/{'good' if normal else 'crack'}/{i:03d}.png"
        conv = [_q("Is there any defect in the object?", ["No." if normal else "Yes.", "Yes." if normal else "No."],
                   0, "Anomaly Detection")]
        if normal:
            conv.append(_q(f"What is the {cat}?", [f"Answer of {cat}.", "Other one.", "Other two.", "Other three."],
                           0, "Object Details"))
        else:
            long = ["A long and very detailed description.", "Short.", "Tiny.", "Brief."]
            conv.append(_q("What is the type?", long, 0, "Defect Classification"))
            texts = list(OPTS) if cat == "a" else [OPTS[1], OPTS[0], OPTS[2], OPTS[3]]
            conv.append(_q("What does it look like?", texts, 0, "Defect Description"))
            cells = ["Top left.", "Top.", "Center.", "Bottom."]
            right = (i // 4) % 4
            conv.append(_q("Where is the defect?", cells[right:] + cells[:right], 0, "Defect Localization"))
        records[key] = {"conversation": conv, "mask_path": "", "similar_templates": [], "random_templates": []}
    return records


@pytest.fixture
def leaky(tmp_path: Path) -> Path:
    path = tmp_path / "leaky" / "mmad.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_leaky_records()), encoding="utf-8")
    return path


def test_finds_each_kind_of_leak_and_passes_the_fair_type(leaky: Path) -> None:
    result = data_check.check([leaky], seed=0)
    verdicts = {v.task: v for v in result.verdicts}
    assert verdicts["Defect Classification"].best_rule == "longest option"
    assert verdicts["Defect Classification"].best_accuracy == 100.0
    assert verdicts["Defect Description"].best_rule == "most often right text, knowing the category"
    assert verdicts["Object Analysis"].best_accuracy == 100.0
    for task in ("Defect Classification", "Defect Description", "Object Analysis"):
        assert verdicts[task].verdict == "leak", task
    assert verdicts["Anomaly Detection"].verdict == "fair" and verdicts["Anomaly Detection"].chance == 50.0
    assert verdicts["Defect Localization"].verdict in ("fair", "inconclusive")  # 40 questions: wide intervals
    assert result.images == 80 and result.questions == 80 + 40 + 3 * 40
    rows = {(r.task, r.rule): r for r in result.rules}
    for r in rows.values():
        assert r.ci_low <= r.accuracy <= r.ci_high and r.questions > 0
    # rules that learn are scored on images they did not learn from: no better than chance without a leak
    loc = rows[("Defect Localization", "most often right text")]
    assert loc.accuracy <= 60


def test_letter_balance_in_the_file_and_after_the_shuffle(leaky: Path) -> None:
    letters = {(lb.options, lb.order): lb for lb in data_check.check([leaky], seed=0).letters}
    assert letters[(4, "file")].top_share == 100.0 and letters[(4, "file")].p_value < 1e-6
    assert letters[(4, "shuffled")].p_value > 0.001 and letters[(4, "shuffled")].top_share < 40
    assert letters[(2, "file")].counts == {"A": 80, "B": 0}


def test_category_is_the_answer_only_for_object_classification(tmp_path: Path) -> None:
    labels = ["Carpet.", "Wood.", "Tile.", "Nut."]
    records = {}
    for i in range(40):
        cat = ("carpet", "wood", "tile", "nut")[i % 4]
        opts = [labels[i % 4]] + [t for t in labels if t != labels[i % 4]]
        records[f"D/{cat}/test/good/{i:03d}.png"] = {"conversation": [
            _q("What kind of product is in the image?", opts, 0, "Object Classification")]}
    (tmp_path / "mmad.json").write_text(json.dumps(records), encoding="utf-8")
    result = data_check.check([tmp_path / "mmad.json"])
    (verdict,) = result.verdicts
    assert verdict.verdict == "fair" and verdict.best_rule != "most often right text, knowing the category"
    knowing = [r for r in result.rules if r.knows_category]
    assert knowing[0].accuracy == 100.0 and not knowing[0].counted


def test_cli_writes_the_check_beside_the_benchmark(leaky: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", str(leaky.parent), "--seed", "3"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str((leaky.parent / "data_check.csv").resolve())
    assert "Defect Classification" in err and "leak" in err and "LEAKS in" in err
    loaded = load_data_check(leaky.parent)
    assert loaded is not None and loaded.seed == 3 and loaded == data_check.check([leaky], seed=3)
    assert load_data_check(leaky) == loaded  # the mmad.json's path works too
    csv = (leaky.parent / "data_check.csv").read_text(encoding="utf-8").splitlines()
    assert csv[0].startswith("task,rule,knows_category,counted,questions,accuracy,ci_low,ci_high,chance")
    assert len(csv) == 1 + 5 * len(loaded.verdicts)


def test_pooled_benchmarks_need_an_out_folder(leaky: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", str(leaky), str(leaky)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["data", "check", str(leaky), str(leaky), "--out", str(tmp_path / "pool")]) == 0
    pooled = load_data_check(tmp_path / "pool")
    assert pooled is not None and pooled.images == 160 and len(pooled.sources) == 2


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nowhere"
    assert main(["data", "check", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": [1,\n', encoding="utf-8")
    assert main(["data", "check", str(broken)]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "invalid JSON at line" in err and "Traceback" not in err
    empty = tmp_path / "empty.json"
    empty.write_text('{"x/y/z.png": {"conversation": []}}', encoding="utf-8")
    assert main(["data", "check", str(empty)]) == 2
    assert "no questions" in capsys.readouterr().err


def test_load_data_check_without_or_with_a_broken_check(tmp_path: Path) -> None:
    assert load_data_check(tmp_path) is None
    (tmp_path / "data_check.json").write_text('{"sources": 3}', encoding="utf-8")
    with pytest.raises(InputError, match="data_check.json"):
        load_data_check(tmp_path)


def test_a_type_with_a_single_question_is_checked(tmp_path: Path) -> None:
    """One question of a type: one half of the images has it and the other none, so a rule is fitted on
    nothing or tested on nothing; the check still gives the type its row (too few questions to say more)."""
    records = _leaky_records(20)
    key = next(k for k in records if "good" in k)
    records[key]["conversation"].append(_q("How smooth is the surface?", ["Matte.", "Glossy.", "Rough.", "Smooth."],
                                           2, "Object Classification"))
    path = tmp_path / "mmad.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    for seed in range(4):  # the single question falls in either half
        result = data_check.check([path], seed=seed)
        (verdict,) = [v for v in result.verdicts if v.task == "Object Classification"]
        assert verdict.questions == 1 and verdict.verdict in ("fair", "inconclusive")
