"""Each analysis metric on hand-built predictions whose answers are known."""

from __future__ import annotations

import json
import math
import os
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmeval import scoring
from mmeval.errors import InputError
from mmeval.predictions import Prediction
from mmeval.report import analysis, references

AD, DC, DL, OA = "Anomaly Detection", "Defect Classification", "Defect Localization", "Object Analysis"
YES_NO = {"A": "Yes.", "B": "No."}
FOUR = {"A": "Scratch.", "B": "Hole.", "C": "Stain.", "D": "Crack."}
PROBE_OPTS = {"A": "Scratch.", "B": "Hole.", "C": "There is no defect.", "D": "Crack."}


def P(qid: str, image: str, task: str, *, answer: str = "A", choice: str | None = "A", options: dict | None = None,
      normal: bool = False, dataset: str = "D1", category: str = "c1", variant: str | None = None,
      base_id: str | None = None, scores: dict | None = None, response: str | None = None) -> Prediction:
    opts = options or (YES_NO if task == AD else PROBE_OPTS if variant == "probe" else FOUR)
    return Prediction(id=qid, image=image, dataset=dataset, category=category, type=task, task=task,
                      is_normal=normal, question="q?", options=opts, answer=answer,
                      response=response if response is not None else (choice or "?"), choice=choice, scores=scores,
                      variant=variant, base_id=base_id, model="toy", config="c0")


def ad(image: str, *, normal: bool, says_defect: bool | None, **kw) -> Prediction:
    """An Anomaly Detection answer with A = Yes, B = No."""
    choice = None if says_defect is None else ("A" if says_defect else "B")
    return P(f"{image}#ad", image, AD, answer="B" if normal else "A", choice=choice, normal=normal, **kw)


def probe(image: str, picked: str | None, **kw) -> Prediction:
    """A probe whose correct answer is C ("There is no defect.")."""
    return P(f"{image}#probe", image, "Defect Probe", answer="C", choice=picked, normal=True, variant="probe", **kw)


# ------------------------------------------------------------------------------------------ bootstrap


def synthetic_preds(images_per_dataset: int, seed: int = 1) -> list[Prediction]:
    """Two datasets; each image: one AD question, anomalous images also two defect questions."""
    rng = np.random.default_rng(seed)
    preds = []
    for ds, i in product(["D1", "D2"], range(images_per_dataset)):
        image = f"{ds}/c/{i}.png"
        normal = i % 3 == 0
        right = rng.random() < 0.7
        preds.append(ad(image, normal=normal, says_defect=(not normal) if right else normal, dataset=ds))
        if not normal:
            for t in (DC, OA):
                ok = rng.random() < 0.6
                preds.append(P(f"{image}#{t}", image, t, answer="A", choice="A" if ok else "B", dataset=ds))
    return preds


def _width(ci: pd.DataFrame, ds: str, metric: str) -> float:
    row = ci[(ci["dataset"] == ds) & (ci["metric"] == metric)].iloc[0]
    return float(row["hi"] - row["lo"])


def test_bootstrap_point_matches_score_table_and_ci_contains_it() -> None:
    preds = synthetic_preds(30)
    ci = analysis.bootstrap_ci(preds, n_boot=400, seed=0)
    table = scoring.score_table(scoring.frame(preds))
    assert set(ci["dataset"]) == {"D1", "D2", "Average"}
    for r in ci.itertuples():
        expected = table.loc[r.dataset, r.metric]
        if math.isnan(expected):
            assert math.isnan(r.value)
            continue
        assert r.value == expected  # the same kernel: the same number, bit for bit
        assert r.lo <= r.value <= r.hi, r
        assert r.hi - r.lo > 0  # the data are not degenerate
    assert ci.loc[ci["dataset"] == "D1", "images"].iloc[0] == 30
    assert ci.loc[ci["dataset"] == "Average", "images"].iloc[0] == 60


def test_bootstrap_is_seeded_and_narrows_with_more_data() -> None:
    small = synthetic_preds(24)
    a = analysis.bootstrap_ci(small, n_boot=300, seed=7)
    b = analysis.bootstrap_ci(small, n_boot=300, seed=7)
    c = analysis.bootstrap_ci(small, n_boot=300, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["lo"].to_numpy(), c["lo"].to_numpy(), equal_nan=True)
    # the same per-image outcomes, 8x as many images: intervals shrink (~ 1/sqrt(8))
    big = [p.model_copy(update={"id": f"{k}/{p.id}", "image": f"{k}/{p.image}"}) for k in range(8) for p in small]
    wide, narrow = a, analysis.bootstrap_ci(big, n_boot=300, seed=7)
    for metric in ("Average", AD, DC):
        assert _width(narrow, "Average", metric) < 0.6 * _width(wide, "Average", metric)
        assert narrow.query("dataset == 'Average' and metric == @metric")["value"].iloc[0] == pytest.approx(
            wide.query("dataset == 'Average' and metric == @metric")["value"].iloc[0])


def test_bootstrap_resamples_images_not_questions() -> None:
    # one image, both of its questions right or both wrong: every resample gives 0 or 100, never 50
    preds = [P("i0#1", "i0", DC), P("i0#2", "i0", DC), P("i1#1", "i1", DC, choice="B"), P("i1#2", "i1", DC, choice="B")]
    ci = analysis.bootstrap_ci(preds, n_boot=200, seed=0)
    cell = ci[(ci["dataset"] == "D1") & (ci["metric"] == DC)].iloc[0]
    assert cell.value == 50 and cell.lo == 0 and cell.hi == 100


# -------------------------------------------------------------------------------------------- McNemar


def test_mcnemar_exact_matches_binomtest() -> None:
    p, method = analysis.mcnemar(1, 9)
    assert method == "exact"
    assert p == pytest.approx(0.021484375)  # 2 * (1 + 10) / 2**10
    assert p == pytest.approx(stats.binomtest(1, 10, 0.5).pvalue)
    assert analysis.mcnemar(9, 1)[0] == pytest.approx(p)
    assert analysis.mcnemar(0, 0) == (1.0, "none")


def test_mcnemar_large_counts_use_chi2_with_continuity_correction() -> None:
    p, method = analysis.mcnemar(10, 30)
    assert method == "chi2-cc"
    assert p == pytest.approx(stats.chi2.sf((20 - 1) ** 2 / 40, 1))
    assert 0.002 < p < 0.003


def test_holm() -> None:
    assert analysis.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = analysis.holm([0.5, float("nan")])
    assert out[0] == 0.5 and math.isnan(out[1])


def test_paired_mcnemar_counts_pairs_and_verdict() -> None:
    a, b = [], []
    for i in range(12):  # DC: 1 question only A right, 9 only B right, 2 both right
        a_ok = i == 0 or i >= 10
        b_ok = i >= 1
        a.append(P(f"q{i}", f"img{i}", DC, choice="A" if a_ok else "B"))
        b.append(P(f"q{i}", f"img{i}", DC, choice="A" if b_ok else "B"))
    for i in range(4):  # OA: 2 vs 2 discordant
        a.append(P(f"o{i}", f"img{i}", OA, choice="A" if i < 2 else "B"))
        b.append(P(f"o{i}", f"img{i}", OA, choice="B" if i < 2 else "A"))
    a.append(P("only-a", "img0", DC))  # unpaired
    a.append(P("moved", "img0", DC, answer="A"))
    b.append(P("moved", "img0", DC, answer="B"))  # same id, a different correct text: not the same question
    b.append(P("q0@rot1", "img0", DC, variant="rot1", base_id="q0"))  # variants are not paired
    table = analysis.paired_mcnemar(a, b).set_index("task")
    dc = table.loc[DC]
    assert (dc.paired, dc.a_only, dc.b_only, dc.both_right, dc.both_wrong) == (12, 1, 9, 2, 0)
    assert dc.p == pytest.approx(0.021484375) and dc.method == "exact"
    assert table.loc[OA, "p"] == pytest.approx(1.0)
    assert dc.p_holm == pytest.approx(min(1, 2 * dc.p))  # two tasks
    assert dc.verdict == "B better"
    assert table.loc[OA, "verdict"] == "no significant difference"
    assert table.loc["All", "paired"] == 16
    assert table.loc["All", "acc_b"] == pytest.approx(100 * 13 / 16)


# ------------------------------------------------------------------------------- AUROC, AUPR, ECE


def _brute_auroc(y, s) -> float:
    pos = [v for v, t in zip(s, y, strict=True) if t]
    neg = [v for v, t in zip(s, y, strict=True) if not t]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_auroc_and_aupr_known_cases() -> None:
    y = [0, 0, 1, 1]
    assert analysis.auroc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert analysis.average_precision(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert analysis.auroc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    # reversed: precision 1/3 at recall 1/2, 1/2 at recall 1
    assert analysis.average_precision(y, [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.5 / 3 + 0.5 / 2)
    assert analysis.auroc(y, [0.5] * 4) == 0.5
    assert analysis.average_precision(y, [0.5] * 4) == pytest.approx(0.5)  # one threshold: precision = prevalence
    assert math.isnan(analysis.auroc([1, 1], [0.2, 0.3]))
    rng = np.random.default_rng(0)
    yy = rng.integers(0, 2, 60)
    ss = np.round(rng.random(60), 1)  # with ties
    assert analysis.auroc(yy, ss) == pytest.approx(_brute_auroc(yy, ss))


def test_detection_scores_from_option_scores() -> None:
    preds = []
    for i in range(6):
        normal = i < 3
        # half the questions put Yes on B: P(defect) must follow the text, not the letter
        opts = YES_NO if i % 2 else {"A": "No.", "B": "Yes."}
        yes = next(k for k, t in opts.items() if t == "Yes.")
        no = next(k for k, t in opts.items() if t == "No.")
        p_yes = 0.1 + 0.05 * i if normal else 0.7 + 0.05 * i
        preds.append(P(f"i{i}#ad", f"i{i}", AD, options=opts, answer=no if normal else yes,
                       choice=yes if p_yes > 0.5 else no, normal=normal,
                       scores={yes: math.log(p_yes), no: math.log(1 - p_yes)}))
    assert analysis.p_defect(preds[0]) == pytest.approx(0.1)
    det = analysis.detection_scores(preds)
    assert det.available and det.images == 6 and det.anomalous == 3
    assert det.auroc == 1.0 and det.aupr == 1.0
    flipped = [p.model_copy(update={"is_normal": not p.is_normal}) for p in preds]
    assert analysis.detection_scores(flipped).auroc == 0.0
    assert analysis.detection_scores([P("x", "x", AD)]).available is False


def test_ece_known_cases() -> None:
    value, bins = analysis.ece([0.9] * 10, [True] * 8 + [False] * 2)
    assert value == pytest.approx(0.1)
    assert [b.model_dump() for b in bins] == [{"lo": 0.9, "hi": 1.0, "n": 10, "confidence": pytest.approx(0.9),
                                               "accuracy": pytest.approx(0.8)}]
    # half at 0.9 all right (gap 0.1), half at 0.6 one of five right (gap 0.4): 0.5*0.1 + 0.5*0.4
    value, _ = analysis.ece([0.9] * 5 + [0.6] * 5, [True] * 5 + [True] + [False] * 4)
    assert value == pytest.approx(0.25)
    assert analysis.ece([1.0, 0.0], [True, False])[0] == pytest.approx(0.0)  # edges fall in the end bins


def test_calibration_from_predictions() -> None:
    preds = [P(f"q{i}", f"i{i}", DC, choice="A", answer="A" if i < 3 else "B",
               scores={"A": math.log(0.75), "B": math.log(0.25), "C": -1e9, "D": -1e9}) for i in range(4)]
    preds.append(P("noscore", "i9", DC))
    cal = analysis.calibration(preds)
    assert cal.questions == 4
    assert cal.ece == pytest.approx(0.0, abs=1e-9)  # 75% confident, 75% right
    assert cal.mean_confidence == pytest.approx(0.75)
    assert analysis.calibration([P("x", "x", DC)]).available is False


# ------------------------------------------------------------------------------------- hallucination


def test_position_bias_counts() -> None:
    preds = [P("1", "i", DC, answer="A", choice="A"), P("2", "i", DC, answer="A", choice="A"),
             P("3", "i", DC, answer="B", choice="A"), P("4", "i", DC, answer="C", choice=None)]
    pb = analysis.position_bias(preds)
    dc = pb[pb["task"] == DC].set_index("letter")
    assert dc.loc["A", "chosen"] == 3 and dc.loc["A", "correct"] == 2
    assert dc.loc["A", "chosen_pct"] == pytest.approx(100.0)  # of the 3 valid answers
    assert dc.loc["A", "correct_pct"] == pytest.approx(50.0)  # of the 4 questions
    assert dc.loc["A", "ratio"] == pytest.approx(2.0)
    assert dc.loc["B", "chosen"] == 0 and dc.loc["B", "correct"] == 1
    assert dc.loc["D", "correct"] == 0 and math.isnan(dc.loc["D", "ratio"])
    assert set(pb["task"]) == {DC, "All"}


def test_fabrication_rate() -> None:
    preds = [probe("n1", "A"), probe("n2", "B"), probe("n3", "D"), probe("n4", "C"), probe("n5", None),
             P("n1#ad", "n1", AD, normal=True, answer="B", choice="B")]
    fab = analysis.fabrication(preds)
    assert fab.model_dump() == {"probes": 5, "valid": 4, "invalid": 1, "fabricated": 3, "rate": 75.0}
    assert math.isnan(analysis.fabrication([P("x", "x", DC)]).rate)


def test_self_inconsistency() -> None:
    preds = [
        ad("a1", normal=False, says_defect=False), P("a1#dc", "a1", DC), P("a1#dl", "a1", DL, choice="B"),  # hit
        ad("a2", normal=False, says_defect=False), P("a2#dc", "a2", DC, choice="B"),  # denied, nothing right
        ad("a3", normal=False, says_defect=True), P("a3#dc", "a3", DC), P("a3#dl", "a3", DL),
        ad("n4", normal=True, says_defect=False), probe("n4", "A"),  # contradiction
        ad("n5", normal=True, says_defect=False), probe("n5", "C"),
        ad("n6", normal=True, says_defect=True), probe("n6", "C"),  # reverse
        ad("n7", normal=True, says_defect=None), probe("n7", "A"),  # invalid AD: not judged
        ad("n8", normal=True, says_defect=False), probe("n8", None),  # invalid probe: not judged
    ]
    inc = analysis.self_inconsistency(preds)
    assert inc.denied_but_described.model_dump() == {"images": 2, "inconsistent": 1, "rate": 50.0}
    assert inc.defect_accuracy_when_denied == pytest.approx(100 / 3)
    assert inc.defect_questions_when_denied == 3
    assert inc.defect_accuracy_when_detected == 100.0
    assert inc.probe_contradiction.model_dump() == {"images": 2, "inconsistent": 1, "rate": 50.0}
    assert inc.probe_reverse.model_dump() == {"images": 1, "inconsistent": 1, "rate": 100.0}
    assert inc.all.model_dump() == {"images": 5, "inconsistent": 3, "rate": 60.0}


def test_hallucination_table_per_category() -> None:
    preds = [ad("x1", normal=True, says_defect=True, category="bottle"),
             ad("x2", normal=True, says_defect=False, category="bottle"),
             ad("x3", normal=True, says_defect=None, category="bottle"),  # invalid counts as overkill
             ad("x4", normal=False, says_defect=False, category="bottle"),
             ad("y1", normal=False, says_defect=True, category="cable", dataset="D2"),
             probe("x2", "A", category="bottle")]
    h = analysis.hallucination(preds).set_index(["dataset", "category"])
    bottle = h.loc[("D1", "bottle")]
    assert (bottle.overkill_n, bottle.normal_questions, bottle.miss_n, bottle.anomalous_questions) == (2, 3, 1, 1)
    assert bottle.overkill == pytest.approx(200 / 3) and bottle.miss == 100.0 and bottle.ad_invalid == 1
    assert bottle.fabrication == 100.0 and bottle.probe_contradiction_n == 1
    assert h.loc[("D2", "cable"), "miss"] == 0.0
    assert h.loc[("D2", "*"), "anomalous_questions"] == 1
    assert h.loc[("*", "*"), "normal_questions"] == 3 and h.loc[("*", "*"), "miss_n"] == 1
    # the same as the detection columns of scores.csv
    table = scoring.score_table(scoring.frame(preds))
    assert h.loc[("*", "*"), "overkill"] == pytest.approx(table.loc["D1", "Overkill"])


def test_invalid_rates() -> None:
    preds = [P("1", "i", DC, choice=None), P("2", "i", DC), P("3", "i", OA), probe("i", None),
             P("1@rot1", "i", DC, choice=None, variant="rot1", base_id="1")]
    inv = analysis.invalid_rates(preds).set_index("task")
    assert inv.loc[DC, "invalid"] == 1 and inv.loc[DC, "invalid_rate"] == 50.0
    assert inv.loc[OA, "invalid_rate"] == 0.0
    assert inv.loc["All questions", "questions"] == 3
    assert inv.loc["Defect probes", "invalid_rate"] == 100.0
    assert inv.loc["Rotations (CircularEval)", "invalid"] == 1


# ------------------------------------------------------------------------------------------- circular


def test_circular_accuracy() -> None:
    preds = []
    for q, rot_ok in [("q1", [True, True, True]), ("q2", [True, False, True]), ("q3", [True, True, True])]:
        base_right = q != "q3"
        preds.append(P(q, "i", DC, choice="A" if base_right else "B"))
        for k, ok in enumerate(rot_ok, 1):
            preds.append(P(f"{q}@rot{k}", "i", DC, choice="A" if ok else "B", variant=f"rot{k}", base_id=q))
    preds.append(P("q4", "i", DC))
    preds.append(P("q4@rot1", "i", DC, variant="rot1", base_id="q4"))  # rotations missing: incomplete
    preds.append(P("q5", "i", OA))  # no rotations at all: not in the table
    table = analysis.circular(preds).set_index("task")
    assert list(table.index) == [DC, "Average"]
    assert table.loc[DC, "questions"] == 3 and table.loc[DC, "incomplete"] == 1
    assert table.loc[DC, "plain"] == pytest.approx(200 / 3)
    assert table.loc[DC, "circular"] == pytest.approx(100 / 3)
    assert table.loc[DC, "drop"] == pytest.approx(100 / 3)
    assert analysis.circular([P("x", "x", DC)]).empty


# -------------------------------------------------------------------------------------------- latency


def test_latency_from_handwritten_timings(tmp_path: Path) -> None:
    lines = [json.dumps({"id": "q0", "seconds": 9.0, "batch_size": 10})]  # retried later: the last line wins
    for i in range(100):
        lines.append(json.dumps({"id": f"q{i}", "seconds": (i + 1) / 1000, "batch_size": 10}))
        if i % 10 == 9:
            lines.append(json.dumps({"batch_of": f"q{i - 9}", "batch_size": 10, "batch_seconds": 0.5}))
    lines.append(json.dumps({"id": "stranger", "seconds": 5.0, "batch_size": 1}))  # not in the predictions
    (tmp_path / "timings.jsonl").write_text("\n".join(lines) + '\n{"id": "q5", "seco', encoding="utf-8")
    per_q, batches = analysis.read_timings(tmp_path)
    assert per_q["q0"] == 0.001 and len(batches) == 10
    image_of = {f"q{i}": f"img{i // 10}" for i in range(100)}
    lat = analysis.latency(per_q, batches, image_of, cycle_ms=1000)
    assert lat.questions == 100 and lat.images == 10
    assert lat.question_p50_ms == pytest.approx(50.5)
    assert lat.question_p95_ms == pytest.approx(95.05)
    # image k: sum of (10k+1 .. 10k+10) ms = 100k + 55
    assert lat.image_p50_ms == pytest.approx(505.0)
    assert lat.image_p95_ms == pytest.approx(910.0)
    assert lat.questions_per_second == pytest.approx(100 / 5.0)
    assert lat.images_per_second == pytest.approx(10 / 5.0)
    assert lat.keeps_up == "yes"
    assert analysis.latency(per_q, batches, image_of, cycle_ms=600).keeps_up == "on average only"
    assert analysis.latency(per_q, batches, image_of, cycle_ms=100).keeps_up == "no"
    assert analysis.latency(per_q, batches, image_of).keeps_up is None
    assert analysis.latency({}, [], image_of).available is False


# ----------------------------------------------------------------------------------------- references


def test_reference_names_and_values() -> None:
    names = references.known_names()
    assert {"human", "human-ordinary", "gpt-4o", "claude-3-5-sonnet-20241022"} <= set(names)
    assert references.resolve("GPT-4o") == "gpt-4o"
    assert references.resolve("Human") == "human"
    with pytest.raises(InputError, match="known: .*gpt-4o"):
        references.resolve("gpt-5")
    human = references.reference_row("human")
    assert human.scores["Anomaly Detection"] == 95.4 and human.scores["Average"] == 86.6 and human.kind == "human"
    assert references.reference_row("human-ordinary").scores["Average"] == pytest.approx(78.9)
    gpt = references.reference_row("gpt-4o")
    assert gpt.scores["Average"] == pytest.approx(74.31, abs=0.01) and gpt.shots == 1
    assert "arXiv:2410.09453" in references.SOURCE and "approximate" in references.HUMAN_CAVEAT
    pub = references.published()
    assert pub["model"].nunique() == 22
    assert (pub.groupby("model").size() == 5).all()


# the raw published CSVs, where a checkout has them beside it (../shared/mmad-reference) or
# MMEVAL_REFERENCE_DIR points at a copy; the shipped table is checked against them cell by cell
SHARED = Path(os.environ.get("MMEVAL_REFERENCE_DIR")
              or Path(__file__).resolve().parents[2] / "shared" / "mmad-reference")


@pytest.mark.skipif(not SHARED.is_dir(), reason="the raw MMAD result CSVs are not on this machine")
def test_published_table_matches_the_source_csvs() -> None:
    pub = references.published()
    files = sorted(SHARED.glob("*_shot_*.csv"))
    assert len(files) == pub["model"].nunique()
    for f in files:
        shots, _, model = f.stem.partition("_shot_")
        src = pd.read_csv(f, index_col=0)
        mine = pub[pub["model"] == model].set_index("dataset")
        assert int(mine["shots"].iloc[0]) == int(shots)
        for ds, col in product(src.index, src.columns):
            want, got = src.loc[ds, col], mine.loc[ds, col]
            assert (pd.isna(want) and pd.isna(got)) or got == pytest.approx(want, abs=1e-4), (model, ds, col)
    human = pd.read_csv(SHARED / "human_baseline.csv").set_index("task")["expert_radar_approx"]
    assert references.human_expert() == pytest.approx(human.to_dict())


def test_human_gap() -> None:
    preds = synthetic_preds(12)
    table = scoring.score_table(scoring.frame(preds))
    gap = analysis.human_gap(table, analysis.bootstrap_ci(preds, n_boot=50)).set_index("task")
    assert gap.loc[AD, "gap"] == pytest.approx(table.loc["Average", AD] - 95.4)
    assert gap.loc[AD, "lo"] <= gap.loc[AD, "run"] <= gap.loc[AD, "hi"]
    assert list(gap.index) == [AD, DC, OA, "Average"]  # the tasks asked: no row for Defect Localization
    # the human Average averages what the run's does: the three readings, not the chart's seven
    human = references.human_expert()
    assert gap.loc["Average", "human_expert"] == pytest.approx((human[AD] + human[DC] + human[OA]) / 3)
    every = [t for t in human if t != "Average"]
    full = scoring.score_table(scoring.frame([P(f"x/c/{i}.png#{t}", f"x/c/{i}.png", t, answer="A", choice="A",
                                                dataset="x") for i, t in enumerate(every)]))
    assert analysis.human_gap(full).set_index("task").loc["Average", "human_expert"] == human["Average"] == 86.6


def test_bootstrap_resamples_are_multinomial_draws() -> None:
    from mmeval.report.analysis.bootstrap import _resample_counts

    m, n = 50, 4000
    w = _resample_counts(np.random.default_rng(3), m, n)
    assert w.shape == (n, m) and (w.sum(axis=1) == m).all() and (w >= 0).all()
    assert np.array_equal(w, _resample_counts(np.random.default_rng(3), m, n))  # seeded
    assert not np.array_equal(w, _resample_counts(np.random.default_rng(4), m, n))
    # each image's count is Binomial(m, 1/m): mean 1, variance 1 - 1/m; counts of two images covary by -1/m
    cov = np.cov(w.T)
    assert w.mean() == pytest.approx(1.0, abs=0.01)
    assert np.diag(cov).mean() == pytest.approx(1 - 1 / m, abs=0.03)
    assert cov[~np.eye(m, dtype=bool)].mean() == pytest.approx(-1 / m, abs=0.005)
