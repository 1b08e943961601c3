"""The anomalygpt family against the stand-in checkout (tests/standins/anomalygpt), through the real worker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from standin_env import anomalygpt_checkout, make_python, read_log

from mmeval.cli import main
from mmeval.config import RunConfig
from mmeval.experts.base import AnomalyMap
from mmeval.model_adapters import build_adapter
from mmeval.model_adapters.anomalygpt import crop_map_to_image, resized_crop_frame
from mmeval.model_adapters.base import AdapterError, AdapterSettings
from mmeval.model_adapters.worker import request_seed
from mmeval.run.runner import run

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("STANDIN_LOG", str(log))
    return {"repo": anomalygpt_checkout(tmp_path), "python": make_python(tmp_path / "env"), "log": log}


# ---------------------------------------------------------------------------------------------- the frame


def test_crop_frame_arithmetic_is_torchvisions() -> None:
    # Resize(224) truncates the long side; CenterCrop(224) rounds its offsets
    assert resized_crop_frame(400, 300) == (298, 224, 37, 0)
    assert resized_crop_frame(300, 400) == (224, 298, 0, 37)
    assert resized_crop_frame(1024, 1024) == (224, 224, 0, 0)
    assert resized_crop_frame(225, 224) == (225, 224, 0, 0)  # round(0.5) is 0, as in torchvision
    assert resized_crop_frame(641, 480) == (299, 224, 38, 0)


@pytest.mark.parametrize("width,height", [(400, 300), (300, 400), (256, 256)])
def test_map_goes_back_to_the_whole_image_with_unknown_borders(width: int, height: int) -> None:
    grid = np.zeros((224, 224), dtype=np.float32)
    grid[100, 50] = 1.0  # the peak, in the crop's frame
    full = crop_map_to_image(grid, width, height)
    new_w, new_h, left, top = resized_crop_frame(width, height)
    assert full.shape == (new_h, new_w)
    assert np.unravel_index(np.nanargmax(full), full.shape) == (100 + top, 50 + left)
    known = np.isfinite(full)
    assert known.sum() == 224 * 224 and known[top:top + 224, left:left + 224].all()
    # at the image's own resolution the peak lands where it is in the image, the cut borders stay unknown
    image = AnomalyMap(full, 1.0, 0.5).to_image(height, width)
    y, x = np.unravel_index(np.nanargmax(image), image.shape)
    assert abs(y - (100 + top + 0.5) * height / new_h) <= 1.5 and abs(x - (50 + left + 0.5) * width / new_w) <= 1.5
    if left:
        assert np.isnan(image[:, 0]).all() and np.isnan(image[:, -1]).all()
        assert np.isfinite(image[:, width // 2]).all()


# ---------------------------------------------------------------------------------------------- the model


def test_run_calls_anomalygpt_as_its_authors_do(env: dict[str, Path], tmp_path: Path) -> None:
    config = RunConfig(model=f"anomalygpt:{env['repo']}", runtime_args={"python": str(env["python"])},
                       data="synthetic", shots=2, seed=3, limit=10)
    out = tmp_path / "run"
    result = run(config, out, progress=False)
    assert result.errors == 0 and result.answered == 10
    calls = read_log(env["log"])
    init = next(c for c in calls if c["event"] == "init")
    repo = env["repo"]
    assert init["args"] == {
        "model": "openllama_peft", "stage": 2, "max_tgt_len": 128, "lora_r": 32, "lora_alpha": 32, "lora_dropout": 0.1,
        "imagebind_ckpt_path": str(repo / "pretrained_ckpt/imagebind_ckpt/imagebind_huge.pth"),
        "vicuna_ckpt_path": str(repo / "pretrained_ckpt/vicuna_ckpt/7b_v0"),
        "delta_ckpt_path": str(repo / "pretrained_ckpt/pandagpt_ckpt/7b/pytorch_model.pt"),
        "anomalygpt_ckpt_path": str(repo / "code/ckpt/train_mvtec/pytorch_model.pt")}
    assert init["cwd"] == str(repo / "code")
    assert [c["strict"] for c in calls if c["event"] == "load_state_dict"] == [False, False]
    generates = [c for c in calls if c["event"] == "generate"]
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    from mmeval.run.prepare import prepare
    from mmeval.run.runner import load

    prepared = {p.request.id: p.request for p in prepare(load(config).questions[:10], config)}
    for call, pred in zip(generates, preds, strict=True):
        request = prepared[pred["id"]]
        inputs = call["inputs"]
        assert inputs["prompt"] == "".join(p.text for p in request.message.parts if p.type == "text")
        assert "<image>" not in inputs["prompt"] and "<Img>" not in inputs["prompt"]
        assert inputs["image_paths"] == [str(p) for p in request.image_paths("query")]
        assert inputs["normal_img_paths"] == [str(p) for p in request.image_paths("template")]
        assert len(inputs["normal_img_paths"]) == 2
        assert (inputs["top_p"], inputs["temperature"], inputs["max_tgt_len"]) == (0.1, 0.01, 50)
        assert inputs["audio_paths"] == inputs["video_paths"] == inputs["thermal_paths"] == []
        assert call["web_demo"] is False and call["seed"] == request_seed(3, pred["id"])
        # the map and its image score
        art = pred["artifacts"]
        with np.load(out / art["map"]) as f:
            assert f["map"].shape == (224, 224)  # the synthetic images are square: nothing was cut away
            assert art["image_score"] == pytest.approx(float(np.nanmax(f["map"])), abs=1e-3)
    assert (out / "artifacts" / "logs" / "anomalygpt.log").read_text().count("Initializing visual encoder") == 1


def test_missing_files_are_all_named_with_where_to_get_them(env: dict[str, Path]) -> None:
    repo = env["repo"]
    (repo / "pretrained_ckpt/imagebind_ckpt/imagebind_huge.pth").unlink()
    (repo / "code/ckpt/train_mvtec/pytorch_model.pt").unlink()
    with pytest.raises(AdapterError) as err:
        build_adapter(f"anomalygpt:{repo}", {"delta": "train_mvtec"})
    text = str(err.value)
    assert "imagebind_huge.pth not found" in text and "dl.fbaipublicfiles.com" in text
    assert "code/ckpt/train_mvtec/pytorch_model.pt not found" in text and "FantasticGNU/AnomalyGPT" in text
    assert "-M python=PATH_TO_ENV/bin/python" in text  # the environment is missing too
    assert "vicuna" not in text.split("missing:")[1].split("Steps")[0]  # what is there is not listed
    with pytest.raises(AdapterError, match="has no code/model/openllama.py"):
        build_adapter(f"anomalygpt:{repo / 'elsewhere'}", {"python": str(env["python"])})


def _first_answer(env: dict[str, Path], tmp_path: Path, **options: str) -> None:
    adapter = build_adapter(f"anomalygpt:{env['repo']}", {"python": str(env["python"]), **options},
                            AdapterSettings(artifacts_dir=tmp_path / "artifacts"))
    config = RunConfig(model="random", data="synthetic", shots=1, limit=1)
    from mmeval.run.prepare import prepare
    from mmeval.run.runner import load

    with adapter:
        list(adapter.predict([prepare(load(config).questions[:1], config)[0].request]))


def test_no_cuda_is_said_plainly(env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_CUDA", "0")
    with pytest.raises(AdapterError) as err:
        _first_answer(env, tmp_path)
    assert "AnomalyGPT needs a CUDA GPU" in str(err.value) and "Traceback" not in str(err.value)


def test_a_missing_package_is_named(env: dict[str, Path], tmp_path: Path) -> None:
    source = env["repo"] / "code" / "model" / "openllama.py"
    source.write_text("import deepspeed\n" + source.read_text())
    with pytest.raises(AdapterError) as err:
        _first_answer(env, tmp_path)
    assert "the package 'deepspeed' is missing" in str(err.value) and "requirements.txt" in str(err.value)


def test_a_reference_image_is_refused_per_question(env: dict[str, Path], tmp_path: Path) -> None:
    config = RunConfig(model=f"anomalygpt:{env['repo']}", runtime_args={"python": str(env["python"])},
                       data="synthetic", shots=1, limit=3, boosts=("agent",), boost_args={"agent": {"view": "bbox"}})
    result = run(config, tmp_path / "run", progress=False)
    preds = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert result.errors == 3 and all("cannot be shown an extra reference image" in p["error"] for p in preds)
    assert all(p["retryable"] is False for p in preds)


def test_mmad_style_sends_the_scripts_cumulative_prompt(env: dict[str, Path], tmp_path: Path) -> None:
    config = RunConfig(model=f"anomalygpt:{env['repo']}", runtime_args={"python": str(env["python"])},
                       data="synthetic", shots=1, limit=5, prompt_style="mmad-anomalygpt")
    run(config, tmp_path / "run", progress=False)
    prompts = [c["inputs"]["prompt"] for c in read_log(env["log"]) if c["event"] == "generate"]
    opening = ("This is a photo of a object for anomaly detection, which should be round, without any damage, "
               "flaw, defect, scratch, hole or broken part.")
    assert prompts[0] == opening + " Is there any anomaly in the image?"
    first_image = prompts[:4]  # the first synthetic image has four questions; the fifth is the next image's
    for earlier, later in zip(first_image, first_image[1:], strict=False):
        assert later.startswith(earlier) and later.endswith("Answer with the option's letter from the given "
                                                            "choices directly.")
    assert prompts[4] == prompts[0]  # a new image starts again
    preds = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    detection = preds[0]
    assert detection["task"] == "Anomaly Detection" and detection["choice"] is not None  # "Yes, ..." / "No, ..."
    said_no = detection["response"].startswith("No")
    assert detection["options"][detection["choice"]].startswith("No" if said_no else "Yes")


def test_stand_in_run_on_the_bundled_benchmark_reports_localisation(env: dict[str, Path], tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report"
    code = main(["run", "--model", f"anomalygpt:{env['repo']}", "-M", f"python={env['python']}", "--data",
                 "synthetic", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    loc = json.loads((out / "analysis.json").read_text())["localisation"]
    source = loc["sources"][0]
    assert source["source"] == "model" and source["images"] == 120 and source["pixel_images"] == 120
    assert 0 <= source["image_auroc"] <= 1 and 0 <= source["pixel_auroc"] <= 1 and 0 <= source["aupro"] <= 1
    html = (out / "report.html").read_text()
    assert 'id="localisation"' in html and "anomaly maps against the masks" in html


def test_replies_naming_no_option_are_read_as_the_closest_with_either_prompt_style(env: dict[str, Path],
                                                                                  tmp_path: Path) -> None:
    """AnomalyGPT answers in words ("Yes, there is an anomaly ... at the top left"); the family reads a reply that
    names no option as the closest option, with mmeval's prompts too, and each prediction says which were read so."""
    from mmeval.answers import CLOSEST_NOTE, closest_option

    for style in ("mmeval", "mmad-anomalygpt"):
        config = RunConfig(model=f"anomalygpt:{env['repo']}", runtime_args={"python": str(env["python"])},
                           data="synthetic", shots=1, limit=12, prompt_style=style)
        result = run(config, tmp_path / style, progress=False)
        assert result.errors == 0
        preds = [json.loads(line) for line in (tmp_path / style / "predictions.jsonl").read_text().splitlines()]
        named = [p for p in preds if p["task"] == "Anomaly Detection"]  # "Yes, ..." / "No, ..." name an option
        matched = [p for p in preds if p["task"] != "Anomaly Detection"]
        assert named and len(matched) >= 6
        assert all(p["choice"] is not None and p["note"] is None for p in named)
        for p in matched:
            assert p["choice"] == closest_option(p["response"], p["options"]) is not None, style
            assert p["note"] == CLOSEST_NOTE
