"""The transformers adapter (``hf:`` / ``llava:``) on tiny random LLaVA, LLaVA-NeXT, LLaVA-OneVision and
Qwen2-VL (the generic path).

The checkpoints are built offline by tests/tiny_models.py (tokenizer trained with ``tokenizers``,
processor with a chat template, random weights), saved once per session, and loaded back through
``from_pretrained`` exactly like a hub checkpoint. Runs go through the real CLI on the bundled
synthetic benchmark (built into the test session's private MMEVAL_HOME).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import tiny_models  # noqa: E402

from mmeval.cli import main  # noqa: E402
from mmeval.config import RunConfig  # noqa: E402
from mmeval.model_adapters import build_adapter  # noqa: E402
from mmeval.model_adapters.base import AdapterSettings  # noqa: E402
from mmeval.model_adapters.hf import HFAdapter  # noqa: E402
from mmeval.prompting.messages import Request  # noqa: E402
from mmeval.run.prepare import prepare  # noqa: E402
from mmeval.run.runner import load  # noqa: E402

pytestmark = pytest.mark.slow

KINDS = tiny_models.KINDS
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """kind -> directory of a saved tiny checkpoint (built once per session, a few hundred KB each)."""
    root = tmp_path_factory.mktemp("tiny_models")
    return {kind: tiny_models.build_tiny(kind, root / kind) for kind in KINDS}


def _requests(n: int, shots: int = 2) -> list[Request]:
    config = RunConfig(model="hf:x", data="synthetic", shots=shots)
    return [p.request for p in prepare(load(config).questions[:n], config)]


def _adapter(tiny: dict[str, Path], kind: str, answer_mode: str = "generate", batch_size: int | None = None,
             **options: object) -> HFAdapter:
    opts = {"dtype": "fp32", **options}
    adapter = build_adapter(f"hf:{tiny[kind]}", opts,
                            AdapterSettings(answer_mode=answer_mode, batch_size=batch_size))  # type: ignore[arg-type]
    assert isinstance(adapter, HFAdapter)
    return adapter


def _scores(adapter: HFAdapter, reqs: list[Request]) -> dict[str, dict[str, float]]:
    out = {}
    for i in range(0, len(reqs), adapter.batch_size):
        for r in adapter.predict(reqs[i:i + adapter.batch_size]):
            assert r.error is None, r.error
            assert r.scores is not None and set(r.scores) == set(next(q for q in reqs if q.id == r.id).options)
            assert r.text == max(r.scores, key=r.scores.get)
            out[r.id] = r.scores
    assert len(out) == len(reqs)
    return out


def _max_diff(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> float:
    assert a.keys() == b.keys()
    return max(abs(a[q][k] - b[q][k]) for q in a for k in a[q])


def _image_runs(ids: list[int], image_id: int) -> int:
    """How many separate blocks of image tokens a prompt holds (one per image)."""
    return sum(1 for i, t in enumerate(ids) if t == image_id and (i == 0 or ids[i - 1] != image_id))


def _run_cli(args: list[str]) -> int:
    return main(["run", *args, "--no-progress"])


def _predictions(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]


# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_multi_image_prompt_carries_every_image(tiny: dict[str, Path], kind: str) -> None:
    """shots=2: two templates + the query = three images, through the processor's own image handling."""
    adapter = _adapter(tiny, kind)
    req = _requests(1, shots=2)[0]
    assert len(req.message.images) == 3
    item = adapter.prompts.prepare(req)
    image_token = adapter.loaded.processor.image_token
    assert item.text.count(image_token) == 3  # the chat template placed three image placeholders
    inputs = adapter.runtime.process([item.images], [item.text])
    per_image = inputs.get("image_grid_thw", inputs["pixel_values"])  # Qwen2-VL flattens its patches
    assert per_image.shape[0] == 3  # one entry (or tile stack) per image
    ids = inputs["input_ids"][0].tolist()
    assert _image_runs(ids, adapter.loaded.image_token_id) == 3
    # the model accepts it: the image-token count agrees with the vision features
    with torch.inference_mode():
        adapter.loaded.model(**inputs)
    # and the reusable prefix holds all three images, the question none
    assert item.prefix_text is not None and item.prefix_text.count(image_token) == 3
    assert image_token not in item.text[len(item.prefix_text):]


@pytest.mark.parametrize("kind", KINDS)
def test_prefix_reuse_and_batching_do_not_change_scores(tiny: dict[str, Path], kind: str) -> None:
    reqs = _requests(12)
    adapter = _adapter(tiny, kind, answer_mode="likelihood", prefix_reuse=False, batch_size=1)
    plain = _scores(adapter, reqs)
    for reuse in (True, False):
        for invariant in (True, False):
            adapter.opts = adapter.opts.model_copy(update={"prefix_reuse": reuse, "batch_invariant": invariant})
            adapter.batch_size = 8
            got = _scores(adapter, reqs)
            assert _max_diff(got, plain) < 1e-4, (reuse, invariant)
    # prefix reuse really ran: the tokens of shared prefixes were encoded once and reused
    assert adapter.runtime.stats["reused_prefix_tokens"] > 0
    # batch-invariant scores are bit-identical to those of a one-question batch
    adapter.opts = adapter.opts.model_copy(update={"prefix_reuse": True, "batch_invariant": True})
    adapter.batch_size = 1
    one = _scores(adapter, reqs)
    adapter.batch_size = 8
    assert _scores(adapter, reqs) == one


@pytest.mark.parametrize("invariant", [True, False])
def test_continuations_written_after_the_prefix_score_as_fresh_copies(
        tiny: dict[str, Path], invariant: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows written in place after a shared prefix (no copy per question) give bit-identical scores to rows
    run on a fresh expanded copy of the prefix's cache, batched or one question per call."""
    from mmeval.model_adapters.hf import runtime

    reqs = _requests(12)
    adapter = _adapter(tiny, "llava", answer_mode="likelihood", prefix_reuse=True, batch_size=8,
                       batch_invariant=invariant)
    used: list[int] = []
    for_rows = runtime.ContinuationCache.for_rows
    monkeypatch.setattr(runtime.ContinuationCache, "for_rows", lambda self, n: used.append(n) or for_rows(self, n))
    in_place = _scores(adapter, reqs)
    assert used and (max(used) > 1) != invariant  # the in-place cache ran, with batched rows only when allowed
    monkeypatch.setattr(runtime.ContinuationCache, "supports", staticmethod(lambda cache: False))
    assert _scores(adapter, reqs) == in_place


def test_continuation_cache_takes_one_forward_within_its_room(tiny: dict[str, Path]) -> None:
    """A second write, or more tokens than its room, would overwrite what the attention reads: refused."""
    from mmeval.model_adapters.hf.runtime import ContinuationCache, cache_of

    adapter = _adapter(tiny, "llava")
    model = adapter.loaded.model
    with torch.inference_mode():
        prefix = cache_of(model(input_ids=torch.tensor([[5, 6, 7, 8]]), use_cache=True))
        room = ContinuationCache(prefix, rows=2, room=3)
        model(input_ids=torch.tensor([[9, 10, 11], [12, 13, 14]]), cache=room.for_rows(2))
        with pytest.raises(RuntimeError, match="room"):
            model(input_ids=torch.tensor([[9, 10, 11, 12]]), cache=room.for_rows(1))
        cache = room.for_rows(1)
        model(input_ids=torch.tensor([[9]]), cache=cache)
        with pytest.raises(RuntimeError, match="one forward"):
            model(input_ids=torch.tensor([[10]]), cache=cache)
        assert prefix.get_seq_length() == 4  # the prefix's own cache is never written


def test_full_option_text_scoring(tiny: dict[str, Path]) -> None:
    """--likelihood-target options: the sum over the option's tokens; reuse and batching agree."""
    reqs = _requests(8)
    adapter = _adapter(tiny, "llava", answer_mode="likelihood", likelihood_target="options",
                       prefix_reuse=False, batch_size=1)
    plain = _scores(adapter, reqs)
    item = adapter.prompts.prepare(reqs[1])
    adapter.prompts.add_targets(item, adapter.opts.likelihood_target)
    assert any(len(t) > 1 for _, t in item.targets.values())  # really multi-token continuations
    adapter.opts = adapter.opts.model_copy(update={"prefix_reuse": True, "batch_invariant": False})
    adapter.batch_size = 8
    assert _max_diff(_scores(adapter, reqs), plain) < 1e-4
    adapter.opts = adapter.opts.model_copy(update={"batch_invariant": True})
    assert _max_diff(_scores(adapter, reqs), plain) < 1e-4


def test_letter_is_scored_as_the_tokenizer_splits_it(tiny: dict[str, Path]) -> None:
    """'ASSISTANT:' is followed by ' A' (one token with its space); ChatML's newline by 'A'."""
    req = _requests(1)[0]
    for kind, sep in (("llava", " "), ("llava_onevision", "")):
        adapter = _adapter(tiny, kind, answer_mode="likelihood")
        item = adapter.prompts.prepare(req)
        adapter.prompts.add_targets(item, adapter.opts.likelihood_target)
        assert item.sep == sep
        for letter, (keep, targets) in item.targets.items():
            assert keep == len(item.raw) and len(targets) == 1
            assert adapter.loaded.tok.decode(targets) == sep + letter


@pytest.mark.parametrize("prefix_reuse", [True, False])
def test_non_finite_log_probs_are_impossible_or_unusable(tiny: dict[str, Path], prefix_reuse: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A letter whose token the model rules out (logit -inf) scores -inf and is never the answer; logits that
    are NaN make every score NaN, and the reply names no letter (max() would have named the first)."""
    from mmeval.answers import choose

    req = _requests(1)[0]
    adapter = _adapter(tiny, "llava", answer_mode="likelihood", prefix_reuse=prefix_reuse)
    item = adapter.prompts.prepare(req)
    adapter.prompts.add_targets(item, adapter.opts.likelihood_target)
    first = sorted(req.options)[0]
    ruled_out = item.targets[first][1][0]
    forward = adapter.runtime.forward
    fill: dict[str, float] = {}

    def patched(*args: object, **kwargs: object) -> object:
        out = forward(*args, **kwargs)  # type: ignore[arg-type]
        logits = out.logits.clone()
        if "all" in fill:
            logits[:] = fill["all"]
        else:
            logits[..., ruled_out] = float("-inf")
        out.logits = logits
        return out

    monkeypatch.setattr(adapter.runtime, "forward", patched)
    (resp,) = adapter.predict([req])
    assert resp.scores is not None and resp.scores[first] == float("-inf")
    assert resp.text != first and choose(resp, req.options) == resp.text
    fill["all"] = float("nan")
    (resp,) = adapter.predict([req])
    assert resp.scores is not None and all(v != v for v in resp.scores.values())
    assert resp.text == "" and choose(resp, req.options) is None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["likelihood", "generate"])
def test_cli_run_answers_every_question(tiny: dict[str, Path], tmp_path: Path, kind: str, mode: str) -> None:
    family = "llava" if kind == "llava_next" else "hf"  # the llava family goes through the same code
    out = tmp_path / "run"
    rc = _run_cli(["--model", f"{family}:{tiny[kind]}", "--data", "synthetic", "--shots", "2", "--limit", "10",
                   "--answer-mode", mode, "-M", "max_new_tokens=4", "--out", str(out)])
    assert rc == 0
    preds = _predictions(out)
    assert len(preds) == 10
    assert all(p["error"] is None for p in preds)
    if mode == "likelihood":
        assert all(p["choice"] in p["options"] for p in preds)
        assert all(set(p["scores"]) == set(p["options"]) for p in preds)
    else:
        assert all(isinstance(p["response"], str) and p["scores"] is None for p in preds)
    usage = [json.loads(line) for line in (out / "usage.jsonl").read_text().splitlines()]
    assert usage[-1]["questions"] == 10 and usage[-1]["reused_prefix_tokens"] > 0


def test_generate_with_and_without_prefix_reuse_agree(tiny: dict[str, Path]) -> None:
    reqs = _requests(6)
    texts = {}
    for reuse in (True, False):
        adapter = _adapter(tiny, "llava", answer_mode="generate", max_new_tokens=5, prefix_reuse=reuse,
                           batch_invariant=False, batch_size=6)
        texts[reuse] = {r.id: r.text for r in adapter.predict(reqs)}
    assert texts[True] == texts[False] and len(texts[True]) == 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_give_the_same_predictions_as_one(tiny: dict[str, Path], tmp_path: Path) -> None:
    """``accelerate launch`` with 2 CPU processes: the merged predictions.jsonl is byte-identical.

    ``accelerate launch --cpu --num_processes 2`` starts a single process on one machine (its
    multi-CPU mode needs MPI); ``--multi_gpu`` runs torchrun, which works without a GPU and sets
    RANK/WORLD_SIZE.
    """
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate is not installed")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    args = ["run", "--model", f"hf:{tiny['llava']}", "--data", "synthetic", "--shots", "1", "--limit", "16",
            "--answer-mode", "likelihood", "--no-progress"]
    one, two = tmp_path / "one", tmp_path / "two"
    done = subprocess.run([sys.executable, "-m", "mmeval", *args, "--out", str(one)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
                           "--main_process_port", str(_free_port()), "-m", "mmeval", *args, "--out", str(two)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads(line)["rank"] for line in (two / "usage.jsonl").read_text().splitlines()]
    assert sorted(ranks) == [0, 1]  # really two processes
    assert (one / "predictions.jsonl").read_bytes() == (two / "predictions.jsonl").read_bytes()
    assert not list(two.glob("predictions.rank*.jsonl"))


# ------------------------------------------------------------------------------------------ errors


def _error_run(capsys: pytest.CaptureFixture[str], tmp_path: Path, *flags: str) -> str:
    rc = _run_cli([*flags, "--data", "synthetic", "--limit", "2", "--out", str(tmp_path / "err")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    return err


def test_missing_path_exits_2_with_a_hint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _error_run(capsys, tmp_path, "--model", f"hf:{tmp_path / 'no' / 'such' / 'model'}")
    assert "no such directory" in err and "config.json" in err


def test_directory_without_checkpoint_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    err = _error_run(capsys, tmp_path, "--model", f"hf:{tmp_path / 'empty'}")
    assert "cannot load the config" in err


def test_unknown_architecture_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({"model_type": "no_such_arch_xyz"}))
    err = _error_run(capsys, tmp_path, "--model", f"hf:{tmp_path / 'odd'}")
    assert "does not know this architecture" in err and "Upgrade transformers" in err


def test_processor_without_chat_template_exits_2(tiny: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(tiny["llava_next"], bare)
    (bare / "chat_template.jinja").unlink()
    err = _error_run(capsys, tmp_path, "--model", f"hf:{bare}")
    assert "no chat template" in err and "chat_template.jinja" in err
    # the LLaVA-1.5 preset brings its own template, so the same situation works there
    bare15 = tmp_path / "bare15"
    shutil.copytree(tiny["llava"], bare15)
    (bare15 / "chat_template.jinja").unlink()
    adapter = build_adapter(f"llava:{bare15}", {})
    assert isinstance(adapter, HFAdapter)
    assert adapter.loaded.preset.name == "llava"
    assert "ASSISTANT:" in adapter.prompts.render(_requests(1)[0].message.parts)


def test_quantize_without_gpu_or_bitsandbytes_exits_2(tiny: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    if torch.cuda.is_available():
        try:
            import bitsandbytes  # noqa: F401

            pytest.skip("a CUDA GPU and bitsandbytes are present")
        except ImportError:
            pass
    err = _error_run(capsys, tmp_path, "--model", f"hf:{tiny['llava']}", "-M", "quantize=4bit")
    assert "4-bit loading needs a CUDA GPU and `pip install bitsandbytes`" in err


def test_llava_family_refuses_other_architectures(tiny: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    err = _error_run(capsys, tmp_path, "--model", f"llava:{tiny['llava']}", "-M", "preset=generic")
    assert "preset=generic is not available" in err


@pytest.mark.parametrize("kind,preset,cls", [("llava", "llava", "LlavaForConditionalGeneration"),
                                             ("llava_next", "llava-next", "LlavaNextForConditionalGeneration"),
                                             ("llava_onevision", "llava-onevision",
                                              "LlavaOnevisionForConditionalGeneration"),
                                             ("qwen2_vl", "generic", "Qwen2VLForConditionalGeneration")])
def test_presets_pick_the_class(tiny: dict[str, Path], kind: str, preset: str, cls: str) -> None:
    adapter = _adapter(tiny, kind)
    assert adapter.loaded.preset.name == preset and type(adapter.loaded.model).__name__ == cls
    info = adapter.run_info()
    assert info["dtype"] == "float32" and info["preset"] == preset
