"""Evaluating checkpoints as they train: ``mmeval watch`` on a live training folder, PEFT adapters against the
merged model, the curve files, resuming after ``kill -9``, adapters loaded into a (fake) vLLM server.

A tiny random LLaVA (tests/tiny_models.py) is the base; its adapters are made with the ``peft`` package and
its full checkpoint by moving the weights, each with the trainer_state.json a Trainer writes. The questions
are a fixed subset of the bundled synthetic benchmark (``mmeval data subset``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

import tiny_models  # noqa: E402
from launchers import launch  # noqa: E402

from mmeval.cli import build_parser, main  # noqa: E402
from mmeval.cli.watch import template_config  # noqa: E402
from mmeval.watch import checkpoints as ck  # noqa: E402
from mmeval.watch.follow import Watch, WatchSettings  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
FINAL = 6


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The base, what a training saves (two adapters, the first with a projector file, one full checkpoint) and
    a subset of 14 questions, built once for the module."""
    root = tmp_path_factory.mktemp("watch")
    base = tiny_models.build_tiny("llava", root / "base")
    parts = root / "parts"
    tiny_models.make_lora(base, parts / "checkpoint-2", seed=1, projector=True)
    tiny_models.make_lora(base, parts / "checkpoint-4", seed=2)
    tiny_models.make_full(base, parts / f"checkpoint-{FINAL}", seed=3)
    for step in (2, 4, FINAL):
        tiny_models.trainer_state(parts / f"checkpoint-{step}", step, FINAL)
    os.environ.setdefault("MMEVAL_HOME", str(root / "home"))
    subset = ["data", "subset", "synthetic", "--per-type", "1", "--seed", "0", "--out", str(root / "subset.json")]
    assert main(subset) == 0
    return {"root": root, "base": base, "parts": parts, "subset": root / "subset.json"}


def _copy(made: dict[str, Path], dest: Path, steps: tuple[int, ...] = (2, 4, FINAL)) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for step in steps:
        shutil.copytree(made["parts"] / f"checkpoint-{step}", dest / f"checkpoint-{step}")
    return dest


def _watch_args(made: dict[str, Path], ckpts: Path, out: Path, *extra: str) -> list[str]:
    return ["watch", str(ckpts), "--subset", str(made["subset"]), "--out", str(out), "--poll", "0.05",
            "--no-progress", "-M", "dtype=fp32", *extra]


def _rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _scores(run_dir: Path) -> dict[str, dict[str, float]]:
    lines = (run_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return {p["id"]: p["scores"] for p in map(json.loads, lines)}


# ------------------------------------------------------------------------------------------ readiness (no model)


def test_readiness_never_takes_tmp_or_half_written_folders(tmp_path: Path) -> None:
    (tmp_path / "tmp-checkpoint-9").mkdir()
    tiny_models.trainer_state(tmp_path / "tmp-checkpoint-9", 9, 9)
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "adapter_config.json").write_text("{}")
    assert list(ck.listing(tmp_path)) == [3]  # tmp-checkpoint-* is never listed
    ready = ck.Readiness()
    folder = tmp_path / "checkpoint-3"
    assert not ready.ready(folder) and not ready.ready(folder)  # no trainer_state.json: being written
    tiny_models.trainer_state(folder, 3, 9)
    assert not ready.ready(folder)  # first sight
    with open(folder / "adapter_config.json", "a") as fh:  # still growing between two polls
        fh.write(" ")
    assert not ready.ready(folder)
    assert ready.ready(folder)  # unchanged over two polls
    assert not ck.is_final(folder)
    tiny_models.trainer_state(folder, 9, 9)
    assert ck.is_final(folder)


# ------------------------------------------------------------------------------------------ a live training


@pytest.fixture(scope="module")
def finished(made: dict[str, Path]) -> dict[str, Path]:
    """``mmeval watch --until-final`` over a finished training (two adapters, one full checkpoint), logging to
    TensorBoard: the reference the other tests compare with."""
    ckpts = _copy(made, made["root"] / "finished")
    out, tb = made["root"] / "finished-curve", made["root"] / "tb"
    assert main(_watch_args(made, ckpts, out, "--until-final", "--log-to", f"tensorboard:{tb}")) == 0
    return {"ckpts": ckpts, "out": out, "tb": tb}


def test_three_checkpoints_give_four_points(made: dict[str, Path], finished: dict[str, Path]) -> None:
    ckpts, out = finished["ckpts"], finished["out"]
    rows = _rows(out / "curve.csv")
    assert list(rows[0]) == ["step", "checkpoint", "task", "accuracy", "ci_low", "ci_high", "n", "p_correct",
                             "invalid_rate", "mcnemar_p"]
    assert sorted({int(r["step"]) for r in rows}) == [0, 2, 4, FINAL]
    average = {int(r["step"]): r for r in rows if r["task"] == "Average"}
    assert all(int(r["n"]) == 14 for r in average.values())
    assert len({r["accuracy"] + r["p_correct"] for r in average.values()}) == 4  # four different models
    assert all(float(r["ci_low"]) <= float(r["accuracy"]) <= float(r["ci_high"]) for r in average.values())
    assert average[0]["mcnemar_p"] == "" and all(average[s]["mcnemar_p"] for s in (2, 4, FINAL))
    record = json.loads((out / "curve.json").read_text())
    assert {e["step"]: e["kind"] for e in record["steps"]} == {0: "base", 2: "adapter", 4: "adapter", FINAL: "full"}
    accuracies = {s: float(r["accuracy"]) for s, r in average.items()}
    assert record["best_step"] == min(s for s, a in accuracies.items() if a == max(accuracies.values()))
    # every step is an ordinary run directory whose identity holds the step and the weights' digest
    step2 = json.loads((out / "steps" / "step-0000002" / "run.json").read_text())["config"]
    assert step2["weights"] == {"step": 2, "digest": ck.weights_digest(ckpts / "checkpoint-2")}
    assert step2["model_args"]["adapter"] == str(ckpts / "checkpoint-2")
    full = json.loads((out / "steps" / f"step-{FINAL:07d}" / "run.json").read_text())["config"]
    assert full["model"] == f"hf:{ckpts / f'checkpoint-{FINAL}'}"
    assert full["model_args"]["processor"] == str(made["base"])  # saved without one: the base's
    assert (out / "steps" / "step-0000004" / "report.html").is_file()
    # the page and the figure need nothing from outside the file
    html = (out / "curve.html").read_text(encoding="utf-8")
    assert "<svg" in html and "<script" not in html and "<link" not in html and "@import" not in html
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html) + re.findall(r"url\(([^)]*)\)", html)
    assert all(r.startswith(("#", "data:")) for r in references)  # only the page's own parts
    assert (out / "curve.svg").read_text().lstrip().startswith("<?xml")
    # TensorBoard got mmad/average per step (read back from the event file)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(finished["tb"]))
    events.Reload()
    assert [e.step for e in events.Scalars("mmad/average")] == [0, 2, 4, FINAL]
    assert [round(e.value, 4) for e in events.Scalars("mmad/average")] == [round(float(average[s]["accuracy"]), 4)
                                                                           for s in (0, 2, 4, FINAL)]


def _head_and_steps(csv_path: Path, steps: set[int]) -> list[str]:
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    return lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) in steps]


def test_a_curve_of_another_setup_is_refused(made: dict[str, Path], finished: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    before = (finished["out"] / "curve.csv").read_bytes()
    assert main(_watch_args(made, finished["ckpts"], finished["out"], "--until-final", "--seed", "1")) == 2
    assert "another setup" in capsys.readouterr().err
    assert (finished["out"] / "curve.csv").read_bytes() == before


def test_watch_follows_a_live_training(made: dict[str, Path], finished: dict[str, Path], tmp_path: Path) -> None:
    """Checkpoints appear while the watch runs: a tmp-checkpoint and a half-written one are never evaluated, one
    deleted before it was finished is recorded as skipped, and the watch stops after the final checkpoint."""
    ckpts, out = tmp_path / "training", tmp_path / "curve"
    ckpts.mkdir()
    shutil.copytree(made["parts"] / "checkpoint-2", ckpts / "tmp-checkpoint-2")  # being saved, under its tmp name
    doomed = ckpts / "checkpoint-1"
    polls = []

    def training(poll: int) -> None:
        polls.append(poll)
        if poll == 1:
            shutil.copytree(made["parts"] / "checkpoint-4", doomed)
            (doomed / "trainer_state.json").unlink()  # half-written: its trainer state is not there yet
        if poll == 3:
            assert not (out / "steps" / "step-0000002").exists() and not (out / "steps" / "step-0000001").exists()
            shutil.rmtree(doomed)  # save_total_limit removed it before it was finished
            (ckpts / "tmp-checkpoint-2").rename(ckpts / "checkpoint-2")
            tiny_models.trainer_state(ckpts / "checkpoint-2", 2, 2)  # the last step
        assert poll < 10, "the watch should have stopped after the final checkpoint"

    # the base is named (no adapter is there to name it at first), so step 0 runs at the first poll
    args = build_parser().parse_args(_watch_args(made, ckpts, out, "--base", str(made["base"])))
    settings = WatchSettings(ckpt_dir=ckpts, out=out, base=str(made["base"]), poll=0.05, until_final=True,
                             progress=False, on_poll=training)
    assert Watch(template_config(args), settings).follow() is None
    steps = {e["step"]: (e["kind"], e["status"]) for e in json.loads((out / "curve.json").read_text())["steps"]}
    assert steps == {0: ("base", "done"), 1: ("adapter", "skipped"), 2: ("adapter", "done")}
    assert polls[-1] == 5  # checkpoint-2 appeared at poll 4, was unchanged at poll 5, and was the last
    assert _head_and_steps(out / "curve.csv", {0, 2}) == _head_and_steps(finished["out"] / "curve.csv", {0, 2})
    assert _head_and_steps(out / "curve.csv", {0, 2}) == (out / "curve.csv").read_text().splitlines()


def test_adapter_answers_equal_the_merged_model(made: dict[str, Path], finished: dict[str, Path],
                                                tmp_path: Path) -> None:
    """Step 2 (adapter and projector swapped onto the base), `mmeval run -M adapter=` and the merged model agree;
    step 4, answered after step 2 on the same base, equals that adapter loaded alone (the swap leaves no trace)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmeval.model_adapters.hf.peft_adapters import projector_tensors

    ckpts, out = finished["ckpts"], finished["out"]
    base = AutoModelForImageTextToText.from_pretrained(made["base"])
    merged = PeftModel.from_pretrained(base, ckpts / "checkpoint-2").merge_and_unload()
    projector = projector_tensors(ckpts / "checkpoint-2", merged)
    name = "model.multi_modal_projector.linear_1.weight"
    assert list(projector) == [name]
    with torch.no_grad():
        merged.get_parameter(name).copy_(projector[name])
    merged.save_pretrained(tmp_path / "merged")
    AutoProcessor.from_pretrained(made["base"]).save_pretrained(tmp_path / "merged")
    common = ["--subset", str(made["subset"]), "--answer-mode", "likelihood", "-M", "dtype=fp32", "--no-progress"]
    assert main(["run", "--model", f"hf:{tmp_path / 'merged'}", "--out", str(tmp_path / "m"), *common]) == 0
    assert main(["run", "--model", f"hf:{made['base']}", "-M", f"adapter={ckpts / 'checkpoint-4'}",
                 "--out", str(tmp_path / "a"), *common]) == 0
    swapped, merged_scores = _scores(out / "steps" / "step-0000002"), _scores(tmp_path / "m")
    assert swapped.keys() == merged_scores.keys() and len(swapped) == 14
    assert max(abs(swapped[q][k] - merged_scores[q][k]) for q in swapped for k in swapped[q]) < 1e-5
    base_scores = _scores(out / "steps" / "step-0000000")
    assert max(abs(swapped[q][k] - base_scores[q][k]) for q in swapped for k in swapped[q]) > 1e-3  # it did change
    step4, alone = _scores(out / "steps" / "step-0000004"), _scores(tmp_path / "a")
    assert max(abs(step4[q][k] - alone[q][k]) for q in step4 for k in step4[q]) < 1e-5


def test_a_mismatched_base_exits_2_naming_both(made: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    ckpts = tmp_path / "training"
    tiny_models.make_lora(made["base"], ckpts / "checkpoint-2", seed=1, base_name="org/other-base-7b")
    tiny_models.trainer_state(ckpts / "checkpoint-2", 2, 2)
    status = main(_watch_args(made, ckpts, tmp_path / "curve", "--base", str(made["base"]), "--until-final"))
    err = capsys.readouterr().err
    assert status == 2
    assert "org/other-base-7b" in err and str(made["base"]) in err and "Traceback" not in err


def test_kill_9_and_rerun_give_the_same_curve(made: dict[str, Path], finished: dict[str, Path],
                                             tmp_path: Path) -> None:
    """Killed in the middle of step 2, then run again: the same curve as a watch that was never interrupted."""
    ckpts, out = _copy(made, tmp_path / "training", steps=(2,)), tmp_path / "killed"
    tiny_models.trainer_state(ckpts / "checkpoint-2", 2, 2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "mmeval", *_watch_args(made, ckpts, out, "--until-final", "--batch-size", "1")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victim = out / "steps" / "step-0000002" / "predictions.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if victim.is_file() and victim.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= victim.read_bytes().count(b"\n") < 14, "the watch was to be killed in the middle of step 2"
    assert main(_watch_args(made, ckpts, out, "--until-final")) == 0
    # the same bytes as the uninterrupted watch's curve up to that step (the later steps are not in this folder)
    assert (out / "curve.csv").read_text().splitlines() == _head_and_steps(finished["out"] / "curve.csv", {0, 2})


# ------------------------------------------------------------------------------------------ the Trainer callback

NUMBERS = ("task", "accuracy", "ci_low", "ci_high", "n", "p_correct", "invalid_rate")


def _numbers(rows: list[dict[str, str]], step: int) -> list[tuple[str, ...]]:
    return [tuple(r[k] for k in NUMBERS) for r in rows if int(r["step"]) == step]


def test_trainer_callback_logs_every_two_steps_to_tensorboard(made: dict[str, Path], finished: dict[str, Path],
                                                              tmp_path: Path) -> None:
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from train_tiny import train

    seen: list[tuple[bool, bool, bool]] = []  # (training, grad enabled, inference mode) at each evaluation forward

    def hooks(model: object) -> None:
        def record(module: torch.nn.Module, args: object, kwargs: dict) -> None:
            if "labels" not in kwargs:  # the benchmark's calls, not the training steps
                seen.append((module.training, torch.is_grad_enabled(), torch.is_inference_mode_enabled()))
        model.register_forward_pre_hook(record, with_kwargs=True)  # type: ignore[attr-defined]

    trainer = train(made["base"], tmp_path, lr=0.05, subset=made["subset"], max_steps=4, every=2, hooks=hooks)
    assert trainer.model.training  # train mode restored
    assert seen and set(seen) == {(False, False, False)}  # eval mode, no_grad (not inference mode)
    rows = _rows(tmp_path / "curve" / "curve.csv")
    average = {int(r["step"]): float(r["accuracy"]) for r in rows if r["task"] == "Average"}
    assert sorted(average) == [0, 2, 4]
    (events_dir,) = (tmp_path / "trainer" / "runs").iterdir()
    events = EventAccumulator(str(events_dir))
    events.Reload()
    logged = events.Scalars("train/mmad/average")  # TensorBoard's integration puts train/ before logged names
    assert [e.step for e in logged] == [0, 2, 4]
    assert [round(e.value, 4) for e in logged] == [round(average[s], 4) for s in (0, 2, 4)]
    # before training, the model in memory answers as the base read from disk by mmeval watch
    assert _numbers(rows, 0) == _numbers(_rows(finished["out"] / "curve.csv"), 0)
    assert len({tuple(_numbers(rows, s)) for s in (0, 2, 4)}) > 1  # training moved the answers


def test_callback_under_two_processes_gives_the_numbers_of_one(made: dict[str, Path], finished: dict[str, Path],
                                                               tmp_path: Path) -> None:
    """torch.distributed (gloo) with two CPU processes: each answers its share, rank 0 merges. With a learning
    rate of 0 the weights stay the base's, so every step must give the single-process numbers of the base."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(REPO / "tests" / "train_tiny.py"), str(made["base"]), str(tmp_path), "--lr", "0",
           "--subset", str(made["subset"])]
    done = launch(cmd, env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(tmp_path / "curve" / "curve.csv")
    one = _numbers(_rows(finished["out"] / "curve.csv"), 0)
    assert [_numbers(rows, s) for s in (0, 2, 4)] == [one, one, one]
    usage = (tmp_path / "curve" / "steps" / "step-0000002" / "usage.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["rank"] for line in usage) == [0, 1]  # both processes answered


def test_callback_refuses_fsdp_and_points_to_watch() -> None:
    from types import SimpleNamespace

    from mmeval.errors import InputError
    from mmeval.watch.callback import refuse_sharded

    with pytest.raises(InputError, match="mmeval watch"):
        refuse_sharded(SimpleNamespace(fsdp="full_shard"))
    refuse_sharded(SimpleNamespace(fsdp=""))  # plain DDP is fine


# ------------------------------------------------------------------------------------------ through a vLLM server


def test_openai_backend_loads_each_adapter_into_the_server(made: dict[str, Path], tmp_path: Path) -> None:
    from fake_openai_server import FakeOpenAIServer

    ckpts = tmp_path / "training"
    for step in (2, 4):  # the server loads them, so they need only be adapters that name the served base
        folder = ckpts / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "fake-vlm",
                                                                "r": step}))
        (folder / "adapter_model.safetensors").write_bytes(bytes([step]) * 64)
        tiny_models.trainer_state(folder, step, 4)
    with FakeOpenAIServer() as srv:
        status = main(["watch", str(ckpts), "--backend", "openai", "--base", "fake-vlm",
                       "-M", f"base_url={srv.base_url}", "-M", "no_cache=true", "--subset", str(made["subset"]),
                       "--answer-mode", "generate",
                       "--out", str(tmp_path / "curve"), "--poll", "0.05", "--until-final", "--no-progress"])
        calls, left = list(srv.lora_calls), dict(srv.loras)
    assert status == 0
    names = [f"checkpoint-{s}-{ck.weights_digest(ckpts / f'checkpoint-{s}')[:12]}" for s in (2, 4)]
    assert calls == [("load", names[0]), ("unload", names[0]), ("load", names[1]), ("unload", names[1])]
    assert left == {}
    rows = _rows(tmp_path / "curve" / "curve.csv")
    assert sorted({int(r["step"]) for r in rows}) == [0, 2, 4]
    preds = {s: _scores_or_choice(tmp_path / "curve" / "steps" / f"step-{s:07d}") for s in (0, 2, 4)}
    assert preds[0] != preds[2] != preds[4]  # each adapter answered under its own name
    assert json.loads((tmp_path / "curve" / "steps" / "step-0000002" / "run.json").read_text())["config"]["model"] \
        == f"openai:{names[0]}"


def test_a_step_with_errors_stops_the_watch_with_exit_3_and_a_rerun_finishes_it(
        made: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fake_openai_server import FakeOpenAIServer

    ckpts = tmp_path / "training"
    folder = ckpts / "checkpoint-2"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "fake-vlm"}))
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    tiny_models.trainer_state(folder, 2, 2)
    out = tmp_path / "curve"
    with FakeOpenAIServer(fail_first=3, fail_status=400) as srv:  # three questions refused: errors a rerun retries
        args = ["watch", str(ckpts), "--backend", "openai", "--base", "fake-vlm", "-M", f"base_url={srv.base_url}",
                "-M", "no_cache=true", "--subset", str(made["subset"]), "--answer-mode", "generate",
                "--out", str(out), "--poll", "0.05", "--until-final", "--no-progress"]
        assert main(args) == 3
        assert "step 0" in capsys.readouterr().err
        assert json.loads((out / "curve.json").read_text())["steps"] == []  # an incomplete step is no point
        assert main(args) == 0
    assert sorted({int(r["step"]) for r in _rows(out / "curve.csv")}) == [0, 2]


def _scores_or_choice(run_dir: Path) -> dict[str, str | None]:
    lines = (run_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return {p["id"]: p["choice"] for p in map(json.loads, lines)}


def test_log_to_names_the_extra_when_the_library_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmeval.errors import InputError
    from mmeval.watch.sinks import open_sink

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(InputError, match=r"mmeval\[wandb\]"):
        open_sink("wandb:my-project")
    with pytest.raises(InputError, match="tensorboard:DIR"):
        open_sink("neptune:x")


def test_wandb_and_mlflow_get_the_numbers_through_their_logging_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sinks' calls into wandb (init/log/finish) and mlflow (set_tracking_uri/start_run/log_metrics/end_run),
    recorded by stand-in modules (neither library is a test dependency)."""
    import types

    from mmeval.watch.sinks import open_sink

    calls: list[tuple] = []
    wandb = types.ModuleType("wandb")
    run = types.SimpleNamespace(log=lambda values, step: calls.append(("wandb.log", step, values)),
                                finish=lambda: calls.append(("wandb.finish",)))
    wandb.init = lambda **kw: calls.append(("wandb.init", kw)) or run  # type: ignore[attr-defined]
    mlflow = types.ModuleType("mlflow")
    mlflow.set_tracking_uri = lambda uri: calls.append(("mlflow.uri", uri))  # type: ignore[attr-defined]
    mlflow.start_run = lambda **kw: calls.append(("mlflow.start", kw))  # type: ignore[attr-defined]
    mlflow.log_metrics = lambda values, step: calls.append(("mlflow.log", step, values))  # type: ignore[attr-defined]
    mlflow.end_run = lambda: calls.append(("mlflow.end",))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    values = {"mmad/average": 41.5, "mmad/Anomaly Detection": 60.0}
    for spec in ("wandb:inspection", "mlflow:file:///tmp/mlruns"):
        sink = open_sink(spec)
        sink.log(200, values)
        sink.close()
    assert calls == [("wandb.init", {"project": "inspection", "job_type": "mmeval-watch"}),
                     ("wandb.log", 200, values), ("wandb.finish",),
                     ("mlflow.uri", "file:///tmp/mlruns"), ("mlflow.start", {"run_name": "mmeval-watch"}),
                     ("mlflow.log", 200, values), ("mlflow.end",)]


def test_an_adapter_with_its_own_chat_template_is_loaded_whole(made: dict[str, Path], tmp_path: Path) -> None:
    from mmeval.watch.backends import HFBackend

    ckpts = _copy(made, tmp_path / "training", steps=(2, 4))
    (ckpts / "checkpoint-4" / "chat_template.jinja").write_text("{{ messages }} changed", encoding="utf-8")
    args = build_parser().parse_args(_watch_args(made, ckpts, tmp_path / "curve"))
    backend = HFBackend(template_config(args), str(made["base"]))
    same = backend.config(ck.Checkpoint(2, ckpts / "checkpoint-2", "adapter"), "d2")
    own = backend.config(ck.Checkpoint(4, ckpts / "checkpoint-4", "adapter"), "d4")
    assert "processor" not in same.model_args  # swapped onto the loaded base
    assert own.model_args["processor"] == str(ckpts / "checkpoint-4")  # its own processor: loaded whole
    assert own.weights is not None and own.weights.step == 4 and own.weights.digest == "d4"


def test_in_process_adapter_answers_with_a_peft_models_adapter(made: dict[str, Path]) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmeval.model_adapters.hf.in_process import adapter_for_model

    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(made["base"]),
                                      made["parts"] / "checkpoint-4")
    adapter = adapter_for_model(model, AutoProcessor.from_pretrained(made["base"]), options={"dtype": "fp32"})
    ids = torch.tensor([[1, 40, 41, 42, 43]])
    with adapter.grad_off():
        assert not torch.is_inference_mode_enabled() and not torch.is_grad_enabled()
        inner = adapter.loaded.model(input_ids=ids).logits
        outer = model(input_ids=ids).logits
        plain = AutoModelForImageTextToText.from_pretrained(made["base"])(input_ids=ids).logits
    assert adapter.loaded.model is model.get_base_model()
    assert torch.equal(inner, outer) and not torch.allclose(inner, plain)
    adapter.close()
    assert adapter.loaded.model is model.get_base_model()  # the caller's model is never let go


CHROMIUM = Path("/usr/bin/chromium")


class RecordingProxy:
    """A proxy that forwards nothing: it records the first line of every request the browser sends it (``GET
    http://host/...`` or ``CONNECT host:443``) and closes the connection."""

    def __init__(self) -> None:
        import socket
        import threading

        self.lines: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.lines.append(conn.recv(4096).decode("latin-1").split("\r\n", 1)[0])
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def hosts(self) -> set[str]:
        return {line.split()[1].split("/")[2] if "://" in line.split()[1] else line.split()[1]
                for line in self.lines if len(line.split()) > 1}


@pytest.mark.skipif(shutil.which(str(CHROMIUM)) is None,
                    reason="/usr/bin/chromium is not installed (CI installs it: apt-get install chromium)")
def test_curve_page_opens_in_a_browser_with_no_network(finished: dict[str, Path], tmp_path: Path) -> None:
    """Every request of the browser goes to a proxy that records it and forwards nothing: the page asks for nothing
    more than an empty page does (the browser's own background requests), and still draws its figure."""
    import numpy as np
    from PIL import Image

    proxy = RecordingProxy()

    def browse(page: Path, name: str) -> tuple[set[str], str, Path]:
        proxy.lines.clear()
        shot = tmp_path / f"{name}.png"
        cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--proxy-server=http://127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>",
               f"--user-data-dir={tmp_path / ('profile-' + name)}", "--dump-dom", f"--screenshot={shot}",
               "--window-size=1280,1400", page.resolve().as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr[-2000:]
        return proxy.hosts(), done.stdout, shot

    (tmp_path / "empty.html").write_text("<html><body><p>empty</p></body></html>")
    (tmp_path / "fetches.html").write_text('<html><body><img src="http://figures.example.org/curve.png"></body></html>')
    baseline, _, _ = browse(tmp_path / "empty.html", "empty")
    fetching, _, _ = browse(tmp_path / "fetches.html", "fetches")
    assert "figures.example.org" in fetching  # the proxy sees what a page asks for
    asked, dom, shot = browse(finished["out"] / "curve.html", "curve")
    assert asked <= baseline, asked - baseline
    assert "Accuracy against step" in dom and "<svg" in dom
    with Image.open(shot) as im:
        grey = np.asarray(im.convert("L"), dtype=float)
    assert grey.std() > 20 and len(np.unique(grey)) > 50  # the figure drew (a blank page has one colour)


def test_reference_lines_only_on_mmad_data(finished: dict[str, Path], tmp_path: Path) -> None:
    """The human expert and published models are drawn when the data is MMAD's, and only then."""
    from mmeval.watch.curve import CurveRecord
    from mmeval.watch.plots import draw_svg, write_html

    record = CurveRecord.model_validate_json((finished["out"] / "curve.json").read_bytes())
    assert not record.on_mmad  # the bundled synthetic benchmark
    assert "human expert" not in draw_svg(record)
    on_mmad = record.model_copy(update={"on_mmad": True})
    svg = draw_svg(on_mmad, ("gpt-4o", "llava-v1.5-7b"))
    assert "human expert (approx.)" in svg and "gpt-4o (1-shot, published)" in svg and "llava-v1.5-7b" in svg
    page = write_html(tmp_path / "curve.html", on_mmad, svg, "t", ("gpt-4o",)).read_text(encoding="utf-8")
    assert "Reference lines: human expert (approx.); gpt-4o (1-shot, published)" in page
