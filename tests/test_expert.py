"""The training-free few-shot detector ("expert" model) on the synthetic benchmark."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmeval.data import Question, load_benchmark
from mmeval.data.synthetic.generator import build_synthetic
from mmeval.errors import InputError
from mmeval.model_adapters import build_adapter
from mmeval.model_adapters.base import AdapterError, AdapterSettings
from mmeval.model_adapters.expert import ExpertAdapter
from mmeval.prompting.messages import ImagePart, Message, Request, Response, TextPart
from mmeval.regions import option_region
from mmeval.tasks import yes_no_letters

AD, DL = "Anomaly Detection", "Defect Localization"


@pytest.fixture(scope="module")
def bench_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_synthetic(tmp_path_factory.mktemp("synthetic-expert"), seed=0)


def questions(path: Path, shots: int, templates: str = "random") -> list[Question]:
    return load_benchmark(path, path.parent, shots=shots, templates=templates, strict=True).questions


def request(q: Question, templates: tuple[str, ...] | None = None, options: dict[str, str] | None = None) -> Request:
    tpl = q.template_paths if templates is None else templates
    parts = [ImagePart(path=t, role="template") for t in tpl]
    parts += [ImagePart(path=q.query_path, role="query"), TextPart(text=q.question)]
    return Request(id=q.id, task=q.task, image=q.image, options=dict(q.options if options is None else options),
                   message=Message(parts=parts, prefix_len=len(parts) - 1))


def answers(adapter: ExpertAdapter, reqs: list[Request], batch: int = 16) -> dict[str, Response]:
    out: dict[str, Response] = {}
    for i in range(0, len(reqs), batch):
        for r in adapter.predict(reqs[i:i + batch]):
            assert r.id not in out
            out[r.id] = r
    assert set(out) == {r.id for r in reqs}
    return out


def scores(qs: list[Question], got: dict[str, Response]) -> tuple[float, float]:
    normal = [got[q.id].text == q.answer for q in qs if q.task == AD and q.is_normal]
    defective = [got[q.id].text == q.answer for q in qs if q.task == AD and not q.is_normal]
    loc = [got[q.id].text == q.answer for q in qs if q.task == DL]
    assert len(normal) >= 24 and len(defective) >= 36 and len(loc) >= 36
    return (float(np.mean(normal)) + float(np.mean(defective))) / 2, float(np.mean(loc))


@pytest.fixture(scope="module")
def shared() -> ExpertAdapter:
    """One adapter for the accuracy tests: its caches carry over between shot counts."""
    return ExpertAdapter("expert", settings=AdapterSettings(seed=0))


@pytest.fixture(scope="module")
def two_shot(bench_path: Path, shared: ExpertAdapter) -> tuple[list[Question], dict[str, Response]]:
    qs = questions(bench_path, shots=2)
    return qs, answers(shared, [request(q) for q in qs])


def test_two_shot_detection_and_localization_beat_chance(two_shot) -> None:
    qs, got = two_shot
    balanced, loc = scores(qs, got)
    assert balanced >= 0.65, balanced
    assert loc >= 0.40, loc


def test_every_answer_is_a_letter_with_consistent_scores(two_shot) -> None:
    qs, got = two_shot
    for q in qs:
        r = got[q.id]
        assert r.error is None and r.text in q.options, (q.id, r)
        if q.task in (AD, DL):
            assert r.scores and set(r.scores) <= set(q.options) and len(r.scores) >= 2
            assert max(r.scores, key=r.scores.get) == r.text  # the runner decides by scores: they must agree
            assert all(np.isfinite(v) and v <= 0 for v in r.scores.values())  # log-probability-like
        else:
            assert r.scores is None  # chance answers claim no confidence
    ad = [q for q in qs if q.task == AD]
    # AD scores are two log-sigmoids of opposite margins: they sum to a probability of one
    for q in ad[:20]:
        s = got[q.id].scores
        assert abs(sum(np.exp(v) for v in s.values()) - 1) < 1e-4


def test_scores_rank_defective_images_above_normal_ones(two_shot) -> None:
    """The yes-score is a usable anomaly score (AUROC well above 0.5), not just a thresholded bit."""
    qs, got = two_shot
    pos, neg = [], []
    for q in qs:
        if q.task != AD:
            continue
        yes, _ = yes_no_letters(q.options)
        (neg if q.is_normal else pos).append(got[q.id].scores[yes])
    pos_a, neg_a = np.array(pos)[:, None], np.array(neg)[None, :]
    auroc = float((pos_a > neg_a).mean() + 0.5 * (pos_a == neg_a).mean())
    assert auroc >= 0.75, auroc


def test_same_seed_same_answers_whatever_the_batching(bench_path: Path, two_shot) -> None:
    qs, first = two_shot
    subset = [q for q in qs if q.category in ("tile", "pcb")]
    reqs = [request(q) for q in subset]
    random.Random(3).shuffle(reqs)
    again = answers(ExpertAdapter("expert", settings=AdapterSettings(seed=0)), reqs, batch=7)
    for q in subset:
        assert again[q.id].text == first[q.id].text, q.id
        assert again[q.id].scores == first[q.id].scores, q.id


def test_zero_shots_still_answers_everything_by_seeded_chance(bench_path: Path) -> None:
    qs = questions(bench_path, shots=0)
    reqs = [request(q, templates=()) for q in qs]
    a = ExpertAdapter("expert", settings=AdapterSettings(seed=0))
    got = answers(a, reqs)
    assert all(got[q.id].text in q.options and got[q.id].error is None for q in qs)
    assert a.run_info() == {"expert": "patch", "answered_by_detector": 0, "answered_by_chance": len(qs)}
    same = answers(ExpertAdapter("expert", settings=AdapterSettings(seed=0)), list(reversed(reqs)), batch=5)
    assert all(same[q.id].text == got[q.id].text for q in qs)
    other = answers(ExpertAdapter("expert", settings=AdapterSettings(seed=1)), reqs)
    assert sum(other[q.id].text != got[q.id].text for q in qs) > len(qs) // 4  # the seed matters
    # chance is chance: no letter dominates the 4-option questions
    letters = [got[q.id].text for q in qs if len(q.options) == 4]
    assert max(letters.count(x) for x in "ABCD") / len(letters) < 0.35


def test_only_detection_and_localization_use_the_detector(two_shot) -> None:
    qs, got = two_shot
    a = ExpertAdapter("expert", settings=AdapterSettings(seed=0))
    sample = [q for q in qs if q.category == "washer"]
    answers(a, [request(q) for q in sample])
    n_detector = sum(q.task in (AD, DL) for q in sample)
    assert a.run_info() == {"expert": "patch", "answered_by_detector": n_detector,
                            "answered_by_chance": len(sample) - n_detector}


def test_one_and_four_shots(bench_path: Path, shared: ExpertAdapter) -> None:
    for shots, floor in ((1, 0.6), (4, 0.7)):
        qs = [q for q in questions(bench_path, shots=shots) if q.task in (AD, DL)]
        balanced, loc = scores(qs, answers(shared, [request(q) for q in qs]))
        assert balanced >= floor, (shots, balanced)
        assert loc >= 0.40, (shots, loc)


def test_localization_follows_the_option_wording(two_shot) -> None:
    """Options reworded and reordered: the same region is still chosen; absent regions fall back sensibly."""
    qs, got = two_shot
    wording = {"Top left.": "At the upper left corner.", "Top.": "Near the top edge.", "Top right.": "Top-right area.",
               "Left.": "On the left side.", "Center.": "In the middle.", "Right.": "On the right side.",
               "Bottom left.": "Lower left.", "Bottom.": "Along the bottom.",
               "Bottom right.": "In the bottom right corner."}
    dl = [q for q in qs if q.task == DL][:24]
    reworded = []
    for q in dl:
        texts = [wording[t] for t in q.options.values()][::-1]
        reworded.append(request(q, options=dict(zip("ABCD", texts, strict=True))))
    again = answers(ExpertAdapter("expert", settings=AdapterSettings(seed=0)), reworded)
    for q, r in zip(dl, reworded, strict=True):
        chosen_before = q.options[got[q.id].text]
        assert r.options[again[q.id].text] == wording[chosen_before], q.id
    # options that name no region at all: chance, still a valid letter
    nowhere = {"A": "Somewhere.", "B": "Nowhere.", "C": "Everywhere.", "D": "Unclear."}
    vague = [request(q, options=nowhere) for q in dl[:4]]
    for r in answers(ExpertAdapter("expert"), vague).values():
        assert r.text in "ABCD" and r.scores is None


def test_parsers() -> None:
    assert option_region("Top left.") == (0, 0)
    assert option_region("Top.") == (0, 1)
    assert option_region("Right.") == (1, 2)
    assert option_region("Center.") == (1, 1)
    assert option_region("In the middle of the object.") == (1, 1)
    assert option_region("bottom RIGHT") == (2, 2)
    assert option_region("Bottom.") == (2, 1)
    assert option_region("Lower left corner") == (2, 0)
    assert option_region("No defect.") is None
    assert yes_no_letters({"A": "No.", "B": "Yes."}) == ("B", "A")
    assert yes_no_letters({"A": "yes", "B": "no", "C": "Maybe.", "D": "Unknown."}) == ("A", "B")
    assert yes_no_letters({"A": "Noticeable.", "B": "Yesterday."}) == (None, None)


def test_detection_with_four_options_and_odd_wording(two_shot) -> None:
    qs, got = two_shot
    ad = [q for q in qs if q.task == AD][:10]
    for q in ad:
        yes = [k for k, t in q.options.items() if t == "Yes."][0]
        opts = {"A": "Maybe.", "B": "NO", "C": "Unknown.", "D": "yes, there is"}
        r = answers(ExpertAdapter("expert"), [request(q, options=opts)])[q.id]
        assert r.text == ("D" if got[q.id].text == yes else "B")
        assert set(r.scores) == {"B", "D"}


def test_unreadable_image_gives_an_error_not_a_crash(bench_path: Path, tmp_path: Path) -> None:
    q = next(q for q in questions(bench_path, shots=2) if q.task == AD)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    req = Request(id=q.id, task=q.task, image=q.image, options=dict(q.options),
                  message=Message(parts=[ImagePart(path=q.template_paths[0], role="template"),
                                         ImagePart(path=str(broken), role="query"), TextPart(text=q.question)]))
    (r,) = list(ExpertAdapter("expert").predict([req]))
    assert r.error and "expert" in r.error and not r.text


def test_anomaly_map_points_at_the_defect(bench_path: Path, shared: ExpertAdapter) -> None:
    """The map's peak falls inside (or right next to) the ground-truth mask on most defective images."""
    qs = [q for q in questions(bench_path, shots=2) if q.task == AD and not q.is_normal]
    a = shared
    hits = 0
    for q in qs:
        amap = a.detector.analyse(q.query_path, list(q.template_paths))
        i, j = np.unravel_index(int(np.argmax(amap.map)), amap.map.shape)
        mask = np.asarray(Image.open(q.mask_path)) > 0
        y, x = int(amap.rows[i] * mask.shape[0]), int(amap.cols[j] * mask.shape[1])  # patch centre in pixels
        hits += bool(mask[max(0, y - 8):y + 8, max(0, x - 8):x + 8].any())
    assert hits / len(qs) >= 0.6, hits / len(qs)


def test_registered_and_options_are_cli_safe() -> None:
    adapter = build_adapter("expert", {"patch": 8, "threshold_scale": 1.2}, AdapterSettings(seed=3))
    assert isinstance(adapter, ExpertAdapter) and adapter.family == "expert" and adapter.seed == 3
    assert adapter.detector.options.threshold_scale == 1.2 and adapter.detector.name == "patch"
    docs = ExpertAdapter.option_docs()
    assert {"expert", "temperature", "patch", "size", "threshold_scale"} <= {d.name for d in docs}
    assert all(d.help for d in docs)
    hashed, runtime = ExpertAdapter.split_options({"patch": "8", "cache": "16", "temperature": "4"})
    assert hashed == {"patch": 8, "temperature": 4.0} and runtime == {"cache": 16}  # normalised, cache is operational
    with pytest.raises(AdapterError, match="patch"):
        build_adapter("expert", {"patch": 2})
    with pytest.raises(InputError, match="unknown option"):
        ExpertAdapter.split_options({"patchsize": 8})
    with pytest.raises(InputError, match="Did you mean 'patch'"):
        ExpertAdapter.split_options({"expert": "patc"})
