"""Scores on hand-built predictions with known answers, and re-scoring official answers files."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmeval import scoring
from mmeval.cli import main
from mmeval.predictions import Prediction
from mmeval.report.official import answers_frame, read_answers
from mmeval.report.score_files import OfficialScores

TASKS = ["Anomaly Detection", "Defect Classification", "Defect Localization", "Defect Description",
         "Defect Analysis", "Object Classification", "Object Analysis"]


def pred(i: int, task: str, normal: bool, correct: bool | None, dataset: str = "D1") -> Prediction:
    """correct=None makes an invalid answer (no option named)."""
    choice = None if correct is None else ("A" if correct else "B")
    return Prediction(id=f"{dataset}/c/{'good' if normal else 'bad'}/{i}.png#0", image=f"{dataset}/c/x/{i}.png",
                      dataset=dataset, category="c", type=task, task=task, is_normal=normal, question="q",
                      options={"A": "a", "B": "b"}, answer="A", response="", choice=choice, model="m", config="x")


def test_balanced_detection_and_detection_metrics() -> None:
    preds = ([pred(i, "Anomaly Detection", False, i < 3) for i in range(4)]      # 3/4 anomalous right
             + [pred(10 + i, "Anomaly Detection", True, i < 1) for i in range(2)])  # 1/2 normal right
    row = scoring.score_table(scoring.frame(preds)).loc["D1"]
    assert row["Anomaly Detection"] == pytest.approx(100 * (0.75 + 0.5) / 2)
    assert row["Recall"] == pytest.approx(75.0)
    assert row["Precision"] == pytest.approx(100 * 3 / (3 + 1))
    assert row["F1"] == pytest.approx(75.0)
    assert row["Overkill"] == pytest.approx(50.0)
    assert row["Miss"] == pytest.approx(25.0)


def test_always_one_answer_scores_fifty_on_detection() -> None:
    preds = ([pred(i, "Anomaly Detection", False, True) for i in range(7)]
             + [pred(20 + i, "Anomaly Detection", True, False) for i in range(3)])
    assert scoring.score_table(scoring.frame(preds)).loc["D1", "Anomaly Detection"] == pytest.approx(50.0)


def test_invalid_counts_wrong_and_is_counted() -> None:
    preds = [pred(0, "Defect Classification", False, True), pred(1, "Defect Classification", False, None),
             pred(2, "Defect Classification", False, False), pred(3, "Defect Classification", False, True)]
    df = scoring.frame(preds)
    assert scoring.score_table(df).loc["D1", "Defect Classification"] == pytest.approx(50.0)
    assert scoring.score_table(df, drop_invalid=True).loc["D1", "Defect Classification"] == pytest.approx(200 / 3)
    assert scoring.counts(df).invalid == 1
    assert scoring.counts(df).per_task["Defect Classification"].model_dump() == {"questions": 4, "invalid": 1,
                                                                                 "errors": 0, "correct": 2}


def test_average_row_and_column_order() -> None:
    preds = [pred(i, t, False, i % 2 == 0, d) for d in ("D1", "D2") for t in TASKS[1:5] for i in range(4)]
    preds += [pred(9, "Object Classification", True, True, "D1"), pred(9, "Object Classification", True, False, "D2")]
    preds += [pred(10, "Object Analysis", True, True, "D2")]
    table = scoring.score_table(scoring.frame(list(reversed(preds))))
    # the tasks asked, in the registry's order whatever order the data gives; no detection task, no Recall ...
    assert list(table.columns) == TASKS[1:] + ["Average"]
    assert list(table.index) == ["D2", "D1", "Average"]
    assert table.loc["D1", "Object Classification"] == 100 and table.loc["D2", "Object Classification"] == 0
    assert np.isnan(table.loc["D1", "Object Analysis"])  # absent task: NaN, not a 0 that drags the mean
    assert table.loc["D1", "Average"] == pytest.approx(np.mean([50, 50, 50, 50, 100]))
    assert table.loc["Average", "Object Classification"] == pytest.approx(50)
    assert table.loc["Average", "Average"] == pytest.approx(table.loc[["D1", "D2"], "Average"].mean())


def official_summary(answers: list[dict]) -> pd.DataFrame:
    """The MMAD summary algorithm, written out independently from its description (valid answers only)."""
    total, correct, ad = {}, {}, {}
    for a in answers:
        ds = a["image"].split("/")[0]
        t = a["question_type"]
        t = "Object Analysis" if t in ("Object Structure", "Object Details") else t
        total.setdefault(ds, {}).setdefault(t, 0)
        correct.setdefault(ds, {}).setdefault(t, 0)
        total[ds][t] += 1
        correct[ds][t] += a["gpt_answer"] == a["correct_answer"]
        if t == "Anomaly Detection":
            g = "normal" if "good" in a["image"] else "abnormal"
            cell = ad.setdefault(ds, {}).setdefault(g, [0, 0])
            cell[0] += 1
            cell[1] += a["gpt_answer"] == a["correct_answer"]
    rows = {}
    for ds in total:
        acc = {t: 100 * correct[ds][t] / total[ds][t] for t in total[ds]}
        n_acc = ad[ds]["normal"][1] / ad[ds]["normal"][0]
        a_acc = ad[ds]["abnormal"][1] / ad[ds]["abnormal"][0]
        acc["Anomaly Detection"] = 100 * (n_acc + a_acc) / 2
        acc["Average"] = np.mean([acc[t] for t in TASKS])
        acc["Overkill"], acc["Miss"] = 100 * (1 - n_acc), 100 * (1 - a_acc)
        rows[ds] = acc
    table = pd.DataFrame(rows).T
    table.loc["Average"] = table.mean(axis=0)
    return table


def fake_official_answers(seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for ds in ("DS-MVTec", "VisA", "GoodsAD"):
        for i in range(60):
            normal = i % 3 == 0
            image = f"{ds}/cat{i % 4}/test/{'good' if normal else 'broken'}/{i:03d}.png"
            types = (["Anomaly Detection", "Object Classification", "Object Structure", "Object Details"] if normal
                     else ["Anomaly Detection"] + TASKS[1:5])
            for t in types:
                letters = "AB" if t == "Anomaly Detection" else "ABCD"
                right = rng.choice(letters)
                given = right if rng.random() < 0.6 else rng.choice(letters)
                out.append({"image": image, "question": {"type": "text", "text": "q"}, "question_type": t,
                            "correct_answer": right, "gpt_answer": given})
    return out


def test_score_mmad_equals_official_summary(tmp_path: Path) -> None:
    answers = fake_official_answers(1)
    path = tmp_path / "answers_1_shot_model.json"
    path.write_text(json.dumps(answers), encoding="utf-8")
    assert main(["score-mmad", str(path), "--out", str(tmp_path / "out")]) == 0
    ours = pd.read_csv(tmp_path / "out" / "scores.csv", index_col=0)
    ref = official_summary(answers)
    for col in TASKS + ["Average", "Overkill", "Miss"]:
        np.testing.assert_allclose(ours.loc[ref.index, col].to_numpy(), ref[col].to_numpy(), atol=1e-3, err_msg=col)
    assert (tmp_path / "out" / "heatmap.svg").stat().st_size > 1000


def test_score_mmad_invalid_answers(tmp_path: Path) -> None:
    answers = fake_official_answers(2)
    answers[0]["gpt_answer"] = ""
    answers[5]["gpt_answer"] = "The answer is unclear"
    path = tmp_path / "a.json"
    path.write_text(json.dumps(answers), encoding="utf-8")
    df = answers_frame(read_answers(path))
    assert int((~df["valid"]).sum()) == 2
    assert main(["score-mmad", str(path), "--out", str(tmp_path / "o"), "--drop-invalid"]) == 0
    saved = json.loads((tmp_path / "o" / "scores.json").read_text())
    assert saved["counts"]["questions"] == len(answers) - 2
    record = OfficialScores.model_validate_json((tmp_path / "o" / "scores.json").read_text())
    assert record.drop_invalid is True and record.source == str(path.resolve()) and record.version == 1


def test_score_mmad_bad_file_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"image": "x/y/z.png", "question_type": "Anomaly Detection"}]), encoding="utf-8")
    assert main(["score-mmad", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "answer #0: correct_answer" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the kernel


def mmad_table(df: pd.DataFrame) -> pd.DataFrame:
    """The score table as MMAD's pandas summary computes it, written out cell by cell (the reference the kernel
    must match bit for bit: same values summed in the same order)."""
    rows = {}
    for ds in dict.fromkeys(df["dataset"]):
        sub = df[df["dataset"] == ds]
        row: dict[str, float] = {}
        for t in TASKS:
            q = sub[sub["task"] == t]
            if q.empty:
                row[t] = np.nan
            elif t == "Anomaly Detection":
                row[t] = float(100 * q.groupby("is_normal")["correct"].mean().mean())
            else:
                row[t] = float(100 * q["correct"].mean())
        row["Average"] = float(np.nanmean([row[t] for t in TASKS])) if any(
            not np.isnan(row[t]) for t in TASKS) else np.nan
        ad = sub[sub["task"] == "Anomaly Detection"]
        anom, norm = ad[~ad["is_normal"]], ad[ad["is_normal"]]
        tp = int(anom["correct"].sum())
        fn, fp = len(anom) - tp, len(norm) - int(norm["correct"].sum())
        recall = 100 * tp / (tp + fn) if tp + fn else np.nan
        precision = 100 * tp / (tp + fp) if tp + fp else np.nan
        row["Recall"], row["Precision"] = recall, precision
        row["F1"] = (2 * precision * recall / (precision + recall) if precision and recall
                     else (0.0 if tp + fn and tp + fp else np.nan))
        row["Overkill"] = 100 * fp / len(norm) if len(norm) else np.nan
        row["Miss"] = 100 * fn / len(anom) if len(anom) else np.nan
        for extra in scoring.extra_tasks(df):
            q = sub[sub["task"] == extra]
            row[extra] = float(100 * q["correct"].mean()) if len(q) else np.nan
        rows[ds] = row
    asked = [t for t in TASKS if (df["task"] == t).any()]
    metrics = ["Recall", "Precision", "F1", "Overkill", "Miss"] if "Anomaly Detection" in asked else []
    table = pd.DataFrame(list(rows.values()), index=list(rows),
                         columns=asked + ["Average"] + metrics + scoring.extra_tasks(df))
    table.loc["Average"] = table.mean(axis=0, skipna=True)
    return table


def random_preds(seed: int, datasets: int, images: int) -> list[Prediction]:
    rng = np.random.default_rng(seed)
    out = []
    for d, i in itertools.product(range(datasets), range(images)):
        normal = bool(rng.random() < 0.35)
        for t in TASKS + ["Unknown Type"]:
            if rng.random() < 0.3:
                continue
            for q in range(int(rng.integers(1, 3))):
                r = rng.random()
                p = pred(100 * i + q, t, normal, None if r < 0.05 else bool(r < 0.65), dataset=f"D{d}")
                out.append(p.model_copy(update={"id": f"{p.id}/{t}", "image": f"D{d}/c/{i}.png"}))
    return out


@pytest.mark.parametrize("seed,datasets,images", [(0, 1, 3), (1, 2, 9), (2, 5, 13), (3, 9, 7), (4, 17, 4), (5, 3, 40)])
def test_kernel_matches_the_mmad_summary_bit_for_bit(seed: int, datasets: int, images: int) -> None:
    df = scoring.frame(random_preds(seed, datasets, images))
    for drop in (False, True):
        ours = scoring.score_table(df, drop_invalid=drop)
        ref = mmad_table(df[df["valid"]] if drop else df)
        assert list(ours.columns) == list(ref.columns) and list(ours.index) == list(ref.index)
        a, b = ours.to_numpy(dtype=float), ref.to_numpy(dtype=float)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        assert same.all(), [(ours.index[i], ours.columns[j], a[i, j], b[i, j]) for i, j in np.argwhere(~same)[:5]]


def test_kernel_weights_count_images_as_often_as_drawn() -> None:
    preds = random_preds(6, 2, 6)
    counts = scoring.image_counts(scoring.frame(preds))
    # weight 2 on every image: the same table; weight 0 on a dataset's first image: the table without it
    double = scoring.score_cells(counts, {ds: np.full((1, len(ims)), 2.0) for ds, ims in counts.images.items()})
    once = scoring.score_cells(counts)
    for key, value in once.items():
        np.testing.assert_allclose(double[key], value, rtol=1e-12, equal_nan=True)
    first = counts.images["D0"][0]
    weights = {ds: np.ones((1, len(ims))) for ds, ims in counts.images.items()}
    weights["D0"][0, 0] = 0.0
    dropped = scoring.score_cells(counts, weights)
    without = scoring.score_table(scoring.frame([p for p in preds if p.image != first]))
    for (row, col), value in dropped.items():
        expected = without.loc[row, col] if row in without.index else np.nan
        assert value[0] == pytest.approx(expected, nan_ok=True), (row, col)


def test_a_task_that_exists_but_is_not_asked_changes_no_number(monkeypatch: pytest.MonkeyPatch) -> None:
    """An eighth task file makes nine values in every Average's sum if it takes a place there (numpy then sums
    pairwise, in another order, and the last bit moves); a task no question asks must take none."""
    from mmeval import tasks

    df = scoring.frame(random_preds(8, 40, 6))
    before = scoring.score_table(df)
    registered = tasks.all_tasks()
    extra = tasks.TaskDef(name="Surface Finish", aliases=("Surface Finish",), asked_about="normal",
                          scoring="accuracy", order=8)
    monkeypatch.setattr(tasks, "all_tasks", lambda: (*registered, extra))
    after = scoring.score_table(df)
    assert list(after.columns) == list(before.columns) and "Surface Finish" not in after.columns
    a, b = before.to_numpy(dtype=float), after.to_numpy(dtype=float)
    assert ((a == b) | (np.isnan(a) & np.isnan(b))).all()
    # asked, it is a column of its own and part of each dataset's Average
    asked = pd.concat([df, df.head(1).assign(task="Surface Finish", id="x#9")], ignore_index=True)
    table = scoring.score_table(asked)
    assert "Surface Finish" in table.columns and list(table.columns).index("Surface Finish") < list(
        table.columns).index("Average")
