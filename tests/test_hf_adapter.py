"""The transformers adapter (``hf:`` / ``llava:``) on tiny random LLaVA, LLaVA-NeXT, LLaVA-OneVision and
Qwen2-VL (the generic path): multi-image prompts, the continuation cache, several processes, loading errors.

The checkpoints are built offline by tests/tiny_models.py (tokenizer trained with ``tokenizers``,
processor with a chat template, random weights), cached on disk, and loaded back through
``from_pretrained`` exactly like a hub checkpoint. Runs go through the real CLI on the bundled
synthetic benchmark (built into the test session's private MMEVAL_HOME). Every architecture's token
exactness, scores and paths: tests/test_hf_architectures.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from contextlib import AbstractContextManager
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import markupsafe
import pytest
import time_machine

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import tiny_models  # noqa: E402
from launchers import launch  # noqa: E402

from mmeval.cli import main  # noqa: E402
from mmeval.config import RunConfig  # noqa: E402
from mmeval.model_adapters import build_adapter  # noqa: E402
from mmeval.model_adapters.base import AdapterError, AdapterSettings  # noqa: E402
from mmeval.model_adapters.hf import HFAdapter  # noqa: E402
from mmeval.prompting.messages import Request  # noqa: E402
from mmeval.run.prepare import prepare  # noqa: E402
from mmeval.run.runner import load, with_implied_options  # noqa: E402

pytestmark = pytest.mark.slow

KINDS = (*tiny_models.LLAVA_KINDS, "qwen2_vl")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny(tiny_checkpoint) -> dict[str, Path]:
    """kind -> directory of a saved tiny checkpoint (a few hundred KB each; see conftest.tiny_checkpoint)."""
    return {kind: tiny_checkpoint(kind) for kind in (*KINDS, "paligemma")}


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
    done = launch([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
                   "--main_process_port", str(_free_port()), "-m", "mmeval", *args, "--out", str(two)],
                  env, tmp_path, cwd=tmp_path)
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


def test_checkpoint_without_chat_template_gets_the_plain_prompt_format(tiny: dict[str, Path], tmp_path: Path) -> None:
    """No refusal: the processor's plain prompt format (images, then the texts), said in run.json and the report;
    a preset that brings a template (LLaVA-1.5) uses that instead."""
    bare = tmp_path / "bare"
    shutil.copytree(tiny["llava_next"], bare)
    (bare / "chat_template.jinja").unlink()
    out = tmp_path / "run"
    assert _run_cli(["--model", f"hf:{bare}", "--data", "synthetic", "--limit", "2", "--answer-mode", "likelihood",
                     "--out", str(out)]) == 0
    notes = json.loads((out / "run.json").read_text())["model_notes"]
    assert notes == ["the checkpoint has no chat template: the processor's plain prompt format is used (every "
                     "image's <image>, then the texts, no turn markers)"]
    assert str(markupsafe.escape(notes[0])) in (out / "report.html").read_text(encoding="utf-8")
    adapter = _adapter({"bare": bare}, "bare")
    text = adapter.prompts.render(_requests(1)[0].message.parts)
    assert text.startswith("<image><image><image>You are") and "[INST]" not in text
    bare15 = tmp_path / "bare15"
    shutil.copytree(tiny["llava"], bare15)
    (bare15 / "chat_template.jinja").unlink()
    adapter = build_adapter(f"llava:{bare15}", {})
    assert isinstance(adapter, HFAdapter)
    assert adapter.loaded.preset.name == "llava" and adapter.loaded.prompt.source == "preset"
    assert "ASSISTANT:" in adapter.prompts.render(_requests(1)[0].message.parts)
    assert adapter.notes() == ["the checkpoint has no chat template: the llava preset's template is used"]


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
                                             ("qwen2_vl", "generic", "Qwen2VLForConditionalGeneration"),
                                             ("paligemma", "paligemma", "PaliGemmaForConditionalGeneration")])
def test_presets_pick_the_class(tiny: dict[str, Path], kind: str, preset: str, cls: str) -> None:
    adapter = _adapter(tiny, kind)
    assert adapter.loaded.preset.name == preset and type(adapter.loaded.model).__name__ == cls
    info = adapter.run_info()
    assert info["dtype"] == "float32" and info["preset"] == preset


# ------------------------------------------------------------------------------------------ a template that dates


def _on_day(day: date) -> AbstractContextManager[Any]:
    """The machine's clock moved to ``day`` (local time; it keeps ticking): what a chat template reads as today."""
    return time_machine.travel(datetime.combine(day, time(9)).astimezone())


def _dated(tiny: dict[str, Path], tmp_path: Path) -> Path:
    """The tiny LLaVA with a template that opens each prompt with today's date, as the published templates that write
    the date do (transformers' ``strftime_now``)."""
    dated = tmp_path / "dated"
    if not dated.exists():
        shutil.copytree(tiny["llava"], dated)
        template = (dated / "chat_template.jinja").read_text(encoding="utf-8")
        (dated / "chat_template.jinja").write_text("{{ 'Today is ' + strftime_now('%A %d %B %Y') + '. ' }}" + template,
                                                   encoding="utf-8")
    return dated


def test_a_template_that_writes_the_date_answers_alike_every_day(tiny: dict[str, Path], tmp_path: Path) -> None:
    """A run begun on one day and resumed on another holds the same predictions, byte for byte, as a run made in one
    go on a third day: every prompt says the fixed day, which run.json records in the run's options and notes."""
    dated = _dated(tiny, tmp_path)
    flags = ["--model", f"hf:{dated}", "--data", "synthetic", "--shots", "1", "--answer-mode", "likelihood"]
    resumed, fresh = tmp_path / "resumed", tmp_path / "fresh"
    with _on_day(date(2024, 2, 29)):
        assert _run_cli([*flags, "--limit", "2", "--out", str(resumed)]) == 0
    with _on_day(date(2025, 7, 4)):
        assert _run_cli([*flags, "--limit", "4", "--out", str(resumed)]) == 0  # resumes: same identity
    with _on_day(date(2026, 3, 1)):
        assert _run_cli([*flags, "--limit", "4", "--out", str(fresh)]) == 0
    assert len(_predictions(fresh)) == 4
    assert (resumed / "predictions.jsonl").read_bytes() == (fresh / "predictions.jsonl").read_bytes()
    record = json.loads((fresh / "run.json").read_text(encoding="utf-8"))
    assert record["config"]["model_args"] == {"template_date": "2025-01-01"}
    assert record["model_notes"] == ["the chat template writes today's date into the prompt: mmeval fixes it to "
                                     "2025-01-01 (-M template_date), so every day gives the same prompt"]
    assert record["digest"] == json.loads((resumed / "run.json").read_text(encoding="utf-8"))["digest"]


def test_template_date_changes_the_prompts_day_and_the_identity(tiny: dict[str, Path], tmp_path: Path) -> None:
    dated = _dated(tiny, tmp_path)
    parts = _requests(1)[0].message.parts
    assert _adapter({"d": dated}, "d").prompts.render(parts).startswith("Today is Wednesday 01 January 2025. USER:")
    given = _adapter({"d": dated}, "d", template_date="2024-06-30")
    assert given.prompts.render(parts).startswith("Today is Sunday 30 June 2024. USER:")
    assert given.notes() == ["the chat template writes today's date into the prompt: mmeval fixes it to 2024-06-30 "
                             "(-M template_date), so every day gives the same prompt"]
    default = with_implied_options(RunConfig(model=f"hf:{dated}", data="synthetic"))
    other = with_implied_options(RunConfig(model=f"hf:{dated}", data="synthetic",
                                           model_args={"template_date": "2024-06-30"}))
    assert default.model_args == {"template_date": "2025-01-01"} and default.digest() != other.digest()


def test_a_run_handed_a_built_adapter_records_the_day_as_one_that_builds_it(tiny: dict[str, Path],
                                                                          tmp_path: Path) -> None:
    """mmeval watch and the training callback hand the run an adapter they built: the day its prompts carry joins
    the run's identity there too, the same as a run of the CLI."""
    from mmeval.run.runner import run

    dated = _dated(tiny, tmp_path)
    config = RunConfig(model=f"hf:{dated}", data="synthetic", limit=2, model_args={"dtype": "fp32"})
    run(config, tmp_path / "handed", progress=False, adapter=_adapter({"d": dated}, "d"))
    run(config, tmp_path / "built", progress=False)
    assert _model_args(tmp_path / "handed") == _model_args(tmp_path / "built") == {"dtype": "fp32",
                                                                                    "template_date": "2025-01-01"}
    assert ((tmp_path / "handed" / "predictions.jsonl").read_bytes()
            == (tmp_path / "built" / "predictions.jsonl").read_bytes())
    run(config.model_copy(update={"model": f"hf:{tiny['llava']}"}), tmp_path / "plain", progress=False,
        adapter=_adapter(tiny, "llava"))
    assert _model_args(tmp_path / "plain") == {"dtype": "fp32"}


def test_a_run_reads_the_processor_files_once(tiny: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Learning what a checkpoint's prompts depend on before the run loads its processor; the model's loading then
    takes that processor instead of reading the files again."""
    from mmeval.model_adapters.hf import loading
    from mmeval.run.runner import run

    calls: list[str] = []
    real = loading.load_processor

    def counted(path: str, config: Any, trust_remote_code: bool) -> Any:
        calls.append(path)
        return real(path, config, trust_remote_code)

    monkeypatch.setattr(loading, "load_processor", counted)
    dated = _dated(tiny, tmp_path)
    run(RunConfig(model=f"hf:{dated}", data="synthetic", limit=2, model_args={"dtype": "fp32"}), tmp_path / "r",
        progress=False)
    assert calls == [str(dated)] and not loading._probed
    assert _model_args(tmp_path / "r") == {"dtype": "fp32", "template_date": "2025-01-01"}


def _model_args(out: Path) -> dict[str, object]:
    return dict(json.loads((out / "run.json").read_text(encoding="utf-8"))["config"]["model_args"])


def test_a_template_without_a_date_keeps_its_identity_and_notes(tiny: dict[str, Path], tmp_path: Path) -> None:
    """The run's config, and so its hash, is what was given: the day is no option of a template that writes none."""
    config = RunConfig(model=f"hf:{tiny['llava']}", data="synthetic", model_args={"max_new_tokens": 4})
    assert with_implied_options(config) is config
    out = tmp_path / "run"
    assert _run_cli(["--model", f"hf:{tiny['llava']}", "--data", "synthetic", "--limit", "2", "-M", "max_new_tokens=4",
                     "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert record["config"]["model_args"] == {"max_new_tokens": 4} and not record["model_notes"]
    assert not _adapter(tiny, "llava").notes()


def test_an_impossible_template_date_exits_2(tiny: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    err = _error_run(capsys, tmp_path, "--model", f"hf:{tiny['llava']}", "-M", "template_date=2025-02-30")
    assert "--model-arg template_date=2025-02-30" in err


def test_a_dated_template_is_refused_where_its_clock_cannot_be_fixed(tiny: dict[str, Path], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A transformers whose templates read the time some other way: a template that calls the clock is refused (its
    prompts would change with the day), one that does not loads as before."""
    from transformers.utils import chat_template_utils

    from mmeval.model_adapters.hf import template_clock

    dated = _dated(tiny, tmp_path)
    template_clock.clock_stops.cache_clear()
    monkeypatch.delattr(chat_template_utils, "datetime")
    try:
        assert not template_clock.clock_stops()
        assert _adapter(tiny, "llava").prompts.render(_requests(1)[0].message.parts).startswith("USER:")
        with pytest.raises(AdapterError, match="cannot fix the day templates see"):
            _adapter({"d": dated}, "d")
    finally:
        monkeypatch.undo()
        template_clock.clock_stops.cache_clear()


def test_two_threads_stopping_the_clock_each_render_their_own_day() -> None:
    """The stopped clock is a module global: a second thread stopping it at another day waits for the first, so
    neither renders a day it did not ask for, and the real clock is back afterwards."""
    import threading
    from datetime import datetime as real_datetime

    from transformers.utils import chat_template_utils
    from transformers.utils.chat_template_utils import render_jinja_template

    from mmeval.model_adapters.hf.template_clock import stopped_clock

    def today() -> str:
        return str(render_jinja_template([[]], chat_template='{{ strftime_now("%Y-%m-%d") }}')[0][0])

    first_in, second_started, first_looked = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, str] = {}

    def first() -> None:
        with stopped_clock(datetime(2001, 2, 3)):
            first_in.set()
            second_started.wait(10)
            threading.Event().wait(0.3)  # time for the other thread to stop the clock at its day, if it could
            seen["first"] = today()
            first_looked.set()

    def second() -> None:
        first_in.wait(10)
        second_started.set()
        with stopped_clock(datetime(2042, 11, 28)):
            seen["second"] = today()
            first_looked.wait(10)  # still stopped while the first thread looks, if it got in

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen == {"first": "2001-02-03", "second": "2042-11-28"}
    assert chat_template_utils.datetime is real_datetime
