"""The anomaly-ov family against the stand-in checkout (tests/standins/anomaly_ov), through the real worker."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from standin_env import SITE, anomaly_ov_checkout, make_python, read_log

from mmeval.cli import main
from mmeval.model_adapters import build_adapter
from mmeval.model_adapters.base import AdapterError, AdapterSettings
from mmeval.prompting.messages import ImagePart, Message, Request, TextPart

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("STANDIN_LOG", str(log))
    repo, ckpt = anomaly_ov_checkout(tmp_path)
    return {"repo": repo, "ckpt": ckpt, "python": make_python(tmp_path / "env"), "log": log}


@pytest.fixture
def tools():  # the stand-ins' own deterministic numbers, to know what the expert said
    sys.path.insert(0, str(SITE))
    try:
        import standin_tools

        yield standin_tools
    finally:
        sys.path.remove(str(SITE))
        sys.modules.pop("standin_tools", None)


def request(folder: Path) -> Request:
    folder.mkdir(parents=True, exist_ok=True)
    template, query = folder / "good" / "tpl.png", folder / "crack" / "query.png"
    for path, size in ((template, (300, 200)), (query, (2048, 1000))):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (90, 90, 90)).save(path)
    parts = [TextPart(text="Compare.\n"), ImagePart(path=str(template), role="template"),
             ImagePart(path=str(query), role="query"), TextPart(text="\nQuestion: defect?\nA. Yes\nB. No\nAnswer:")]
    return Request(id="cat/crack/query.png#0", task="Anomaly Detection", image="cat/crack/query.png",
                   options={"A": "Yes", "B": "No"}, message=Message(parts=parts, prefix_len=3))


def adapter(env: dict[str, Path], tmp_path: Path, mode: str = "generate", **options: str):
    settings = AdapterSettings(seed=1, answer_mode=mode, artifacts_dir=tmp_path / "run" / "artifacts")  # type: ignore[arg-type]
    return build_adapter(f"anomaly-ov:{env['ckpt']}", {"python": str(env["python"]), "repo": str(env["repo"]),
                                                        **options}, settings)


def test_generate_loads_and_asks_as_the_authors_scripts(env: dict[str, Path], tmp_path: Path, tools) -> None:
    req = request(tmp_path / "img")
    with adapter(env, tmp_path) as a:
        (response,) = list(a.predict([req]))
    assert response.error is None and response.text in ("A", "B")
    calls = read_log(env["log"])
    assert [c["event"] for c in calls] == ["load_pretrained_model", "load_zero_shot_weights", "set_anomaly_encoder",
                                           "generate"]
    load = calls[0]
    assert (load["model_path"], load["model_base"], load["model_name"]) == (str(env["ckpt"]), None, "llava_qwen")
    assert load["torch_dtype"] == "bfloat16" and load["overwrite_config"] == {"vocab_size": 152064}
    assert load["attn_implementation"] == "sdpa" and load["device_map"] == "auto"
    assert calls[1]["path"] == str(env["repo"] / "pretrained_expert_7b.pth")
    assert calls[2] == {"event": "set_anomaly_encoder", "weights": "pretrained_expert_7b.pth", "frozen": True}
    generate = calls[3]
    assert generate["prompt"] == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                                  "Compare.\n<image>\n<image>\nQuestion: defect?\nA. Yes\nB. No\nAnswer:<|im_end|>\n"
                                  "<|im_start|>assistant\n")
    assert generate["image_sizes"] == [[300, 200], [1024, 500]]  # the query shrunk to a 1024 long side
    assert generate["kwargs"] == {"do_sample": False, "temperature": 0, "max_new_tokens": 32}
    assert generate["modalities"] == ["image", "image"] and generate["tied"] is False
    # the expert's score and crop-0 map of the query (the second image: its crops come after the template's one)
    expected = 0.05 + 0.9 * tools.unit("score", "crack", "query.png")
    assert response.artifacts is not None and response.artifacts["image_score"] == pytest.approx(expected, abs=1e-6)
    with np.load(tmp_path / "run" / response.artifacts["map"]) as f:
        assert f["map"].shape == (27, 27)
        want = np.array(tools.peak_map(27, 27, "crack", "query.png", 1), dtype=np.float32).reshape(27, 27)
        np.testing.assert_allclose(f["map"], want, atol=1e-6)


def test_the_prompt_has_one_image_token_per_image_in_order(env: dict[str, Path], tmp_path: Path) -> None:
    from mmeval.model_adapters.anomaly_ov import AnomalyOVAdapter

    req = request(tmp_path / "img")
    a = adapter(env, tmp_path)
    assert isinstance(a, AnomalyOVAdapter)
    parts = a.worker_request(req)["parts"]
    assert [p.get("role") for p in parts if p["type"] == "image"] == ["template", "query"]


def test_small_model_ties_its_head_and_takes_the_small_expert(env: dict[str, Path], tmp_path: Path) -> None:
    with adapter(env, tmp_path, size="0.5b") as a:
        list(a.predict([request(tmp_path / "img")]))
    calls = read_log(env["log"])
    assert calls[1]["path"] == str(env["repo"] / "pretrained_expert_05b.pth")
    assert calls[-1]["tied"] is True


def test_likelihood_reads_the_option_letters(env: dict[str, Path], tmp_path: Path) -> None:
    with adapter(env, tmp_path, "likelihood") as a:
        (response,) = list(a.predict([request(tmp_path / "img")]))
    assert response.scores is not None and set(response.scores) == {"A", "B"}
    assert abs(response.scores["A"] - response.scores["B"]) == pytest.approx(1.0)  # the stand-in's logit gap
    assert all(v < 0 for v in response.scores.values())
    assert read_log(env["log"])[-1]["event"] == "forward"


def test_what_is_missing_is_named(env: dict[str, Path], tmp_path: Path) -> None:
    (env["repo"] / "pretrained_expert_7b.pth").unlink()
    with pytest.raises(AdapterError) as err:
        build_adapter(f"anomaly-ov:{tmp_path / 'no-checkpoint'}", {"repo": str(env["repo"])})
    text = str(err.value)
    assert "No fine-tuned Anomaly-OV has been published" in text
    assert "pretrained_expert_7b.pth not found" in text and "-M python=PATH_TO_ENV/bin/python" in text
    (env["ckpt"] / "config.json").write_text(json.dumps({"model_type": "llava_onevision"}))
    with pytest.raises(AdapterError, match="is a 'llava_onevision' model; an Anomaly-OV checkpoint is 'llava_qwen'"):
        build_adapter(f"anomaly-ov:{env['ckpt']}", {"repo": str(env["repo"]), "python": str(env["python"]),
                                                    "size": "0.5b"})


def test_stand_in_run_on_the_bundled_benchmark_reports_localisation(env: dict[str, Path], tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report"
    code = main(["run", "--model", f"anomaly-ov:{env['ckpt']}", "-M", f"python={env['python']}", "-M",
                 f"repo={env['repo']}", "--answer-mode", "likelihood", "--data", "synthetic", "--out", str(out),
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    analysis = json.loads((out / "analysis.json").read_text())
    source = analysis["localisation"]["sources"][0]
    assert source["source"] == "model" and source["images"] == 120 and source["unknown_share"] == 0
    assert analysis["detection_scores"]["available"] is True  # likelihood mode: option scores as well
    assert 'id="localisation"' in (out / "report.html").read_text()
