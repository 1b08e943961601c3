"""The shared sampler: ``mmeval data subset`` (stratified, seeded, named by a digest) and ``mmeval run --subset``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mmeval.cli import build_parser, main
from mmeval.config import RunConfig, RunRecord
from mmeval.data import load_benchmark, resolve
from mmeval.data.subset import Subset, draw, ids_digest, read_subset
from mmeval.errors import InputError
from mmeval.predictions import read_predictions


@pytest.fixture(scope="module")
def demo_questions(synthetic_demo: Path) -> list:
    json_path, root = resolve(str(synthetic_demo))
    return load_benchmark(json_path, root, shots=1).questions


def test_draw_is_stratified_seeded_and_named_by_its_ids(demo_questions: list) -> None:
    sample = draw(demo_questions, 5, seed=3)
    available = Counter((q.dataset, q.task) for q in demo_questions)
    by_id = {q.id: q for q in demo_questions}
    drawn = Counter((by_id[i].dataset, by_id[i].task) for i in sample.ids)
    assert len(available) >= 7  # every question type of the bundled benchmark
    assert drawn == {cell: min(5, n) for cell, n in available.items()}
    assert {(s.dataset, s.task): (s.available, s.drawn) for s in sample.strata} == \
        {cell: (n, min(5, n)) for cell, n in available.items()}
    order = [q.id for q in demo_questions]
    assert sample.ids == sorted(sample.ids, key=order.index)  # the data's order
    assert sample.digest == ids_digest(sample.ids) == ids_digest(list(reversed(sample.ids)))
    assert draw(demo_questions, 5, seed=3) == sample  # same seed, same sample
    other = draw(demo_questions, 5, seed=4)
    assert other.ids != sample.ids and other.digest != sample.digest
    # a cell's draw is its own: removing another cell's questions leaves it unchanged
    ad = sample.strata[0]
    rest = [q for q in demo_questions if (q.dataset, q.task) != (ad.dataset, ad.task) or q.id in sample.ids]
    assert [i for i in draw(rest, 5, seed=3).ids] == sample.ids


def test_subset_file_is_checked(tmp_path: Path, demo_questions: list) -> None:
    sample = draw(demo_questions, 2, seed=0)
    path = tmp_path / "subset.json"
    sample.write(path)
    assert read_subset(path) == sample
    raw = json.loads(path.read_text())
    assert raw["version"] == 1 and raw["digest"] == sample.digest
    raw["ids"] = raw["ids"][1:]  # edited by hand: the digest no longer matches
    path.write_text(json.dumps(raw))
    with pytest.raises(InputError, match="does not match its ids"):
        read_subset(path)
    with pytest.raises(ValueError, match="twice"):
        Subset(digest=ids_digest(["a", "a"]), per_type=1, seed=0, ids=["a", "a"])


def test_data_subset_then_run_answers_exactly_the_sample(synthetic_demo: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    sub = tmp_path / "subset.json"
    assert main(["data", "subset", str(synthetic_demo), "--per-type", "3", "--seed", "7", "--out", str(sub)]) == 0
    assert capsys.readouterr().out.strip() == str(sub.resolve())
    sample = read_subset(sub)
    assert len(sample.ids) == 3 * len(sample.strata)
    out = tmp_path / "run"
    assert main(["run", "--model", "random", "--data", str(synthetic_demo), "--subset", str(sub), "--out", str(out),
                 "--no-progress"]) == 0
    preds = read_predictions(out / "predictions.jsonl")
    assert [p.id for p in preds] == sample.ids
    record = RunRecord.read(out / "run.json")
    assert record.config.subset == sample.digest and record.config.subset_path == str(sub.resolve())
    assert {p.config for p in preds} == {record.digest}
    # the sample is part of the identity; its file's place is not; a run on all questions keeps its old hash
    base = RunConfig(model="random", data="synthetic")
    assert "subset" not in base.hashed_fields()
    with_sample = base.model_copy(update={"subset": sample.digest, "subset_path": "/a"})
    assert with_sample.digest() != base.digest()
    assert with_sample.model_copy(update={"subset_path": "/b"}).digest() == with_sample.digest()
    # another sample into the same directory is another config: refused
    other = tmp_path / "other.json"
    assert main(["data", "subset", str(synthetic_demo), "--per-type", "3", "--seed", "8", "--out", str(other)]) == 0
    capsys.readouterr()
    assert main(["run", "--model", "random", "--data", str(synthetic_demo), "--subset", str(other), "--out", str(out),
                 "--no-progress"]) == 2
    assert "different config" in capsys.readouterr().err


def test_a_sample_of_other_data_is_a_clear_error(official_data: Path, synthetic_demo: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    sub = tmp_path / "subset.json"
    assert main(["data", "subset", str(synthetic_demo), "--per-type", "1", "--out", str(sub)]) == 0
    capsys.readouterr()
    out = tmp_path / "run"
    assert main(["run", "--model", "random", "--data", str(official_data), "--subset", str(sub), "--out", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "are not in the data" in err and sorted(read_subset(sub).ids)[0] in err and "Traceback" not in err
    assert str(sub.resolve()) in err
    assert not (out / "predictions.jsonl").exists()
    assert main(["run", "--model", "random", "--data", str(official_data), "--subset", str(tmp_path / "nope.json"),
                 "--out", str(out), "--no-progress"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_sample_file_changed_under_a_run_is_refused(synthetic_demo: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    from mmeval.cli.run import build_config, settings
    from mmeval.run.runner import run

    sub = tmp_path / "subset.json"
    assert main(["data", "subset", str(synthetic_demo), "--per-type", "1", "--out", str(sub)]) == 0
    args = build_parser().parse_args(
        ["run", "--model", "random", "--data", str(synthetic_demo), "--subset", str(sub)])
    config = build_config(settings(args))
    assert main(["data", "subset", str(synthetic_demo), "--per-type", "2", "--out", str(sub)]) == 0
    with pytest.raises(InputError, match="this run was started on sample"):
        run(config, tmp_path / "run", progress=False)
