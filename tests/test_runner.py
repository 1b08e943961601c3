"""The run loop end to end: determinism, resume after interruption, config guards, CLI exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from mmeval.cli import main
from mmeval.config import RunConfig
from mmeval.model_adapters.base import AdapterSettings
from mmeval.model_adapters.baselines import RandomAdapter
from mmeval.predictions import read_predictions
from mmeval.prompting.messages import Request, Response
from mmeval.run.runner import run


def cli_run(data: Path, out: Path, *extra: str) -> int:
    return main(["run", "--model", "random", "--data", str(data), "--out", str(out), "--no-progress", *extra])


def test_same_seed_byte_identical_and_other_seed_differs(official_data: Path, tmp_path: Path) -> None:
    assert cli_run(official_data, tmp_path / "a", "--seed", "5") == 0
    assert cli_run(official_data, tmp_path / "b", "--seed", "5") == 0
    assert cli_run(official_data, tmp_path / "c", "--seed", "6") == 0
    a = (tmp_path / "a" / "predictions.jsonl").read_bytes()
    assert a == (tmp_path / "b" / "predictions.jsonl").read_bytes()
    def orders(run_dir: Path) -> list[list[str]]:
        return [list(p.options.values()) for p in read_predictions(run_dir / "predictions.jsonl")]
    assert orders(tmp_path / "a") != orders(tmp_path / "c")
    for name in ("scores.csv", "scores.json", "heatmap.svg"):
        assert (tmp_path / "a" / name).is_file()


def test_no_shuffle_keeps_file_order(official_data: Path, official_records: dict, tmp_path: Path) -> None:
    assert cli_run(official_data, tmp_path / "r", "--no-shuffle") == 0
    for p in read_predictions(tmp_path / "r" / "predictions.jsonl"):
        item = official_records[p.image]["conversation"][int(p.id.rsplit("#", 1)[1])]
        assert p.options == item["Options"] and p.answer == item["Answer"]


def test_shuffled_answer_points_at_same_text(official_data: Path, official_records: dict, tmp_path: Path) -> None:
    assert cli_run(official_data, tmp_path / "r", "--seed", "11") == 0
    for p in read_predictions(tmp_path / "r" / "predictions.jsonl"):
        item = official_records[p.image]["conversation"][int(p.id.rsplit("#", 1)[1])]
        assert p.options[p.answer] == item["Options"][item["Answer"]]


def test_different_config_refuses_same_dir(official_data: Path, tmp_path: Path, capsys) -> None:
    assert cli_run(official_data, tmp_path / "r", "--seed", "1") == 0
    assert cli_run(official_data, tmp_path / "r", "--seed", "2") == 2
    assert "different config" in capsys.readouterr().err
    assert cli_run(official_data, tmp_path / "r", "--seed", "2", "--overwrite") == 0
    assert {p.config for p in read_predictions(tmp_path / "r" / "predictions.jsonl")} == {
        RunConfig(model="random", data=str(official_data.resolve()), shots=1, seed=2).digest()}


class Interrupting(RandomAdapter):
    """Answers a few questions, then raises as Ctrl-C would."""

    def __init__(self, after: int, seed: int) -> None:
        super().__init__("random", settings=AdapterSettings(seed=seed))
        self.after, self.batch_size = after, 2

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        for r in super().predict(batch):
            if self.after == 0:
                raise KeyboardInterrupt
            self.after -= 1
            yield r


def test_interrupt_then_resume_equals_uninterrupted(official_data: Path, tmp_path: Path) -> None:
    cfg = RunConfig(model="random", data=str(official_data), shots=1, seed=3)
    run(cfg, tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "cut", progress=False, adapter=Interrupting(after=5, seed=3))
    assert len(read_predictions(tmp_path / "cut" / "predictions.jsonl")) == 5
    with open(tmp_path / "cut" / "predictions.jsonl", "a") as fh:  # a torn line, as a killed write leaves
        fh.write('{"id":"DS-MVTec/bottle/image/good/003.png#1","ima')
    run(cfg, tmp_path / "cut", progress=False)
    full = (tmp_path / "full" / "predictions.jsonl").read_bytes()
    assert (tmp_path / "cut" / "predictions.jsonl").read_bytes() == full


def test_limit_then_continue(official_data: Path, tmp_path: Path) -> None:
    assert cli_run(official_data, tmp_path / "full") == 0
    assert cli_run(official_data, tmp_path / "part", "--limit", "4") == 0
    assert len(read_predictions(tmp_path / "part" / "predictions.jsonl")) == 4
    assert cli_run(official_data, tmp_path / "part") == 0
    full = (tmp_path / "full" / "predictions.jsonl").read_bytes()
    assert (tmp_path / "part" / "predictions.jsonl").read_bytes() == full


class Flaky(RandomAdapter):
    """Fails on some questions (as an API past its retry budget would)."""

    def __init__(self, fail: set[str]) -> None:
        super().__init__("random", settings=AdapterSettings(seed=0))
        self.fail, self.asked = fail, []

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        for r in super().predict(batch):
            self.asked.append(r.id)
            yield Response(id=r.id, error="HTTP 500 after 5 attempts") if r.id in self.fail else r


def test_errors_are_recorded_and_only_they_are_retried(official_data: Path, tmp_path: Path) -> None:
    cfg = RunConfig(model="random", data=str(official_data), shots=1)
    bad = {"DS-MVTec/bottle/image/broken_large/000.png#3", "MVTec-LOCO/breakfast_box/test/good/000.png#0"}
    result = run(cfg, tmp_path / "r", progress=False, adapter=Flaky(bad))
    assert result.errors == 2
    preds = read_predictions(tmp_path / "r" / "predictions.jsonl")
    assert {p.id for p in preds if p.error} == bad and all(p.choice is None for p in preds if p.error)
    again = Flaky(set())
    result = run(cfg, tmp_path / "r", progress=False, adapter=again)
    assert sorted(again.asked) == sorted(bad) and result.errors == 0
    ids = [p.id for p in read_predictions(tmp_path / "r" / "predictions.jsonl")]
    assert len(ids) == len(set(ids)) == result.total


class Garbled(RandomAdapter):
    """Replies with half of a UTF-16 surrogate pair, as a server sending the JSON escape \\ud800 would."""

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        for r in super().predict(batch):
            yield Response(id=r.id, text=f"{r.text} \ud800", note="cut \udc00 here")


def test_half_surrogate_pair_in_a_reply_is_replaced(official_data: Path, tmp_path: Path) -> None:
    cfg = RunConfig(model="random", data=str(official_data), shots=1, limit=3)
    result = run(cfg, tmp_path / "r", progress=False, adapter=Garbled("random", settings=AdapterSettings(seed=0)))
    preds = read_predictions(tmp_path / "r" / "predictions.jsonl")
    assert result.answered == 3 and [p.response[-2:] for p in preds] == [" \ufffd"] * 3
    assert [p.note for p in preds] == ["cut \ufffd here"] * 3


SLOW_RUN = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from mmeval.config import RunConfig
    from mmeval.run.runner import run
    from mmeval.model_adapters.base import AdapterSettings
    from mmeval.model_adapters.baselines import RandomAdapter

    class Slow(RandomAdapter):
        default_batch_size = 1
        def predict(self, batch):
            for r in super().predict(batch):
                time.sleep(0.15)
                yield r

    cfg = RunConfig(model="random", data=sys.argv[1], shots=1, seed=4)
    run(cfg, Path(sys.argv[2]), progress=False, adapter=Slow("random", settings=AdapterSettings(seed=4)))
''')


def test_sigkill_midway_then_rerun_identical(official_data: Path, tmp_path: Path) -> None:
    cfg = RunConfig(model="random", data=str(official_data), shots=1, seed=4)
    run(cfg, tmp_path / "full", progress=False)
    script = tmp_path / "slow_run.py"
    script.write_text(SLOW_RUN)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(official_data), str(out)])
    pred = out / "predictions.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (pred.exists() and pred.read_bytes().count(b"\n") >= 3):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = pred.read_bytes().count(b"\n")
    assert 3 <= done < 12, "the kill should land midway"
    run(cfg, out, progress=False)
    assert pred.read_bytes() == (tmp_path / "full" / "predictions.jsonl").read_bytes()


def test_cli_bad_flag_and_data_exit_2(official_data: Path, tmp_path: Path, capsys) -> None:
    assert main(["run", "--model", "nosuch", "--data", str(official_data), "--out", str(tmp_path / "x")]) == 2
    assert "unknown model 'nosuch'" in capsys.readouterr().err
    assert main(["run", "--model", "random", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["run", "--model", "random", "--data", str(official_data), "--strict", "--shots", "2",
                 "--out", str(tmp_path / "x")]) == 2
    assert "record 'MVTec-LOCO/breakfast_box/test/good/000.png'" in capsys.readouterr().err


def test_skipped_records_listed_in_report(tmp_path: Path, official_records: dict) -> None:
    from conftest import materialise

    official_records["DS-MVTec/bottle/image/good/003.png"]["conversation"][0]["Answer"] = "Z"
    data = materialise(official_records, tmp_path / "d")
    assert cli_run(data, tmp_path / "r") == 0
    report = json.loads((tmp_path / "r" / "scores.json").read_text())
    assert report["skipped"]["count"] == 1
    rec = report["skipped"]["records"][0]
    assert rec["key"] == "DS-MVTec/bottle/image/good/003.png" and "answer 'Z'" in rec["reason"]


@pytest.mark.parametrize("command", [[], ["run"], ["report"], ["compare"], ["score-mmad"], ["build"], ["models"],
                                     ["tasks"], ["boosts"], ["experts"]])
def test_help_explains_every_flag(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: mmeval" in text
    if command == ["run"]:
        for flag in ("--model", "--data", "--shots", "--templates", "--seed", "--limit", "--out", "--no-shuffle",
                     "--image-root", "--strict", "--model-arg", "--answer-mode", "--batch-size", "--concurrency",
                     "--boost", "--boost-arg", "--config", "mmeval models show"):
            assert flag in text


def test_operational_options_stay_out_of_the_hash() -> None:
    from pydantic import BaseModel, Field

    from mmeval.optionspec import normalise

    class Opts(BaseModel):
        max_tokens: int = 64
        retries: int = Field(8, json_schema_extra={"affects_predictions": False})

    hashed, runtime = normalise(Opts, {"max_tokens": "32", "retries": "4"}, "--model-arg")
    assert hashed == {"max_tokens": 32} and runtime == {"retries": 4}
    base = dict(model="random", data="synthetic", model_args=hashed)
    a = RunConfig(**base, runtime_args=runtime)
    b = RunConfig(**base, runtime_args={"retries": 64}, batch_size=3, concurrency=99)
    assert a.digest() == b.digest() and a.adapter_options() == {"max_tokens": 32, "retries": 4}
    assert RunConfig(**{**base, "model_args": {"max_tokens": 16}}).digest() != a.digest()
    assert RunConfig(**base, answer_mode="likelihood").digest() != a.digest()


def test_credentials_in_options_are_redacted_on_disk() -> None:
    cfg = RunConfig(model="random", data="synthetic",
                    model_args={"base_url": "https://bob:hunter2@api.example/v1?api_key=sk-123&x=1"})
    text = json.dumps(cfg.public())
    assert "hunter2" not in text and "sk-123" not in text and "x=1" in text


def test_unknown_types_get_their_own_column(tmp_path: Path, official_records: dict) -> None:
    from conftest import materialise

    official_records["DS-MVTec/bottle/image/broken_large/000.png"]["conversation"][3]["type"] = "Defect Smell"
    data = materialise(official_records, tmp_path / "d")
    assert cli_run(data, tmp_path / "r", "--allow-unknown-types", "--no-shuffle") == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "r" / "scores.csv", index_col=0)
    assert list(table.columns)[-1] == "Defect Smell"
    assert not pd.isna(table.loc["DS-MVTec", "Defect Smell"])
    asked = [q["type"] for rec in official_records.values() for q in rec["conversation"]]
    assert "Defect Description" not in asked  # it was the only one of its type: its column is not shown, not empty
    assert "Defect Description" not in table.columns and "Defect Analysis" in table.columns


def test_batches_keep_images_whole_and_shards_split_by_image(official_data: Path) -> None:
    from mmeval.data import load_benchmark
    from mmeval.run.prepare import prepare
    from mmeval.run.runner import batches
    from mmeval.run.shard import my_share

    bench = load_benchmark(official_data, official_data.parent, shots=1)
    prepared = prepare(bench.questions, RunConfig(model="random", data=str(official_data), shots=1))
    sizes = [[p.request.image for p in b] for b in batches(prepared, 4)]
    assert sum(len(b) for b in sizes) == len(prepared)
    assert all(len(b) <= 4 for b in sizes)
    # the 5-question image is split (it alone exceeds the batch); no other image spans two batches
    spans = {}
    for i, b in enumerate(sizes):
        for image in b:
            spans.setdefault(image, set()).add(i)
    assert [img for img, s in spans.items() if len(s) > 1] == ["DS-MVTec/bottle/image/broken_large/000.png"]
    shares = [my_share(prepared, r, 2) for r in range(2)]
    assert sorted(p.request.id for s in shares for p in s) == sorted(p.request.id for p in prepared)
    assert not {p.request.image for p in shares[0]} & {p.request.image for p in shares[1]}


def test_a_process_share_does_not_depend_on_answers_others_have_written(official_data: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 1 starts after rank 0 has answered a whole image of its own share: rank 1 still takes its own images
    (shares dealt from the answers left would shift by one image, and leave images to nobody)."""
    from mmeval.predictions import PredictionWriter
    from mmeval.run import shard
    from mmeval.run.prepare import prepare
    from mmeval.run.runner import load, to_prediction

    config = RunConfig(model="random", data=str(official_data), shots=0)
    groups = shard.by_image(prepare(load(config).questions, config))
    assert len(groups) >= 4
    out = tmp_path / "run"
    out.mkdir()
    with PredictionWriter(out / "predictions.rank0.jsonl") as writer:  # rank 0's first image, already answered
        for p in groups[0]:
            writer.write(to_prediction(p, Response(id=p.request.id, text="A"), config.model, config.digest()))
    shard.mark(out, 0, "alive")
    shard.mark(out, 0, "ready")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    run(config, out, progress=False)
    answered = {p.id for p in read_predictions(out / "predictions.rank1.jsonl")}
    assert answered == {p.request.id for g in groups[1::2] for p in g}


def test_each_line_is_flushed_at_once_and_synced_in_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmeval import predictions as pmod

    syncs = []
    monkeypatch.setattr(pmod.os, "fsync", lambda fd: syncs.append(fd))
    monkeypatch.setattr(pmod, "FSYNC_EVERY_SECONDS", 1e9)  # lines only, whatever the machine's speed
    pred = pmod.Prediction(id="q", image="i", dataset="d", category="c", type="t", task="t", is_normal=True,
                           question="?", options={"A": "a", "B": "b"}, answer="A", response="A", choice="A",
                           model="m", config="c")
    path = tmp_path / "p.jsonl"
    writer = pmod.PredictionWriter(path)
    for i in range(600):
        writer.write(pred.model_copy(update={"id": f"q{i}"}))
        assert path.read_bytes().count(b"\n") == i + 1  # on disk for any other reader before the next answer
    assert len(syncs) == 600 // pmod.FSYNC_EVERY_LINES  # every 256 lines
    writer.close()
    assert len(syncs) == 600 // pmod.FSYNC_EVERY_LINES + 1  # the rest at close
    monkeypatch.setattr(pmod, "FSYNC_EVERY_SECONDS", 0.0)
    syncs.clear()
    with pmod.PredictionWriter(path) as w:
        for _ in range(5):
            w.write(pred)
    assert len(syncs) == 5  # a time window of 0: every line


def test_sorting_rewrites_only_a_file_out_of_question_order(tmp_path: Path) -> None:
    from mmeval import predictions as pmod

    pred = pmod.Prediction(id="q", image="i", dataset="d", category="c", type="t", task="t", is_normal=True,
                           question="?", options={"A": "a", "B": "é"}, answer="A", response="A", choice="A",
                           model="m", config="c")
    preds = {f"q{i}": pred.model_copy(update={"id": f"q{i}"}) for i in range(5)}
    order = list(preds)
    path = tmp_path / "p.jsonl"
    for written, rewritten in [(order, False), (order[::-1], True), (order[:4], True), (order + ["q0"], True)]:
        path.unlink(missing_ok=True)
        with pmod.PredictionWriter(path) as w:
            for qid in written:
                w.write(preds[qid])
        before = path.stat().st_ino
        ordered = pmod.write_sorted(path, preds, order)
        assert [p.id for p in ordered] == order
        assert path.read_text(encoding="utf-8") == "".join(pmod.dumps(preds[i]) + "\n" for i in order)
        assert (path.stat().st_ino != before) == rewritten, written


def test_timing_lines_are_what_json_writes() -> None:
    from mmeval.run.runner import _timing_line

    for qid, seconds, size in [("DS/c/test/good/0.png#0", 0.0001234567, 8), ('q"é\\', 12.5, 1), ("k", 1e-07, 3)]:
        expected = json.dumps({"id": qid, "seconds": round(seconds, 6), "batch_size": size}) + "\n"
        assert _timing_line(qid, seconds, size) == expected


def test_predictions_share_their_set_of_given_fields_and_copies_do_not() -> None:
    from mmeval.predictions import Prediction

    base = {"id": "k#0", "image": "k", "dataset": "D", "category": "c", "type": "t", "task": "t", "is_normal": True,
            "question": "?", "options": {"A": "Yes.", "B": "No."}, "answer": "B", "response": "B", "choice": "B",
            "model": "m", "config": "c"}
    a, b = Prediction(**base), Prediction(**{**base, "id": "k#1"})
    assert a.model_fields_set is b.model_fields_set  # one set for every prediction that gave the same fields
    c = a.model_copy(update={"note": "edited"})
    assert "note" in c.model_fields_set and "note" not in a.model_fields_set and "note" not in b.model_fields_set
    assert Prediction.model_validate_json(a.model_dump_json()) == a
