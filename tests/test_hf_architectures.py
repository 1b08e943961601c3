"""Every architecture the ``hf`` family supports, token-exact, on tiny random checkpoints (tests/tiny_models.py).

Per architecture:

- what the model is fed (token ids, pixel values, image sizes, masks), whole or split at the shared
  prefix, equals what the checkpoint's own ``processor.apply_chat_template(..., tokenize=True)`` makes;
- likelihood scores equal the log-probabilities greedy generation gives the answer's tokens (the first
  step for a one-token letter), and those tokens are the ones the chat template writes for an answer;
- every path gives the same numbers: prefix reuse on and off, batch-invariant or not, batch size 1 and 8,
  the in-place continuation cache or its fallback, letters or whole options; and generation agrees with
  and without prefix reuse;
- both answer modes end to end through the CLI;
- templates that write today's date (Mistral 3's default system prompt; Llama 3.2 Vision and Llama 4 work the
  day out too) give the same prompts, inputs and scores whatever the day, with the day ``-M template_date``
  fixes, and that day joins a run's identity only where the prompts carry it.

Mistral 3 and Llama 4 need torchvision for their processors: they are tested where it is installed and
skipped ("torchvision is not installed") where it is not.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
import time_machine

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import tiny_models  # noqa: E402

from mmeval.cli import main  # noqa: E402
from mmeval.config import RunConfig  # noqa: E402
from mmeval.model_adapters import build_adapter  # noqa: E402
from mmeval.model_adapters.base import AdapterSettings  # noqa: E402
from mmeval.model_adapters.hf import HFAdapter  # noqa: E402
from mmeval.model_adapters.hf.generation import greedy_config  # noqa: E402
from mmeval.prompting.messages import Request, TextPart, to_hf_conversation  # noqa: E402
from mmeval.run.prepare import prepare  # noqa: E402
from mmeval.run.runner import load, with_implied_options  # noqa: E402

pytestmark = pytest.mark.slow

_NO_TORCHVISION = pytest.mark.skipif(tiny_models.torchvision_missing(), reason="torchvision is not installed")


def _params(kinds: tuple[str, ...]) -> list[Any]:
    """The kinds as test parameters; those whose processors transformers builds only with torchvision skip without
    it."""
    return [pytest.param(k, marks=_NO_TORCHVISION) if k in tiny_models.TORCHVISION_KINDS else k for k in kinds]


KINDS = _params(tiny_models.KINDS)

Scores = dict[str, dict[str, float]]


@pytest.fixture(scope="module")
def reqs() -> list[Request]:
    """Six questions with two normal templates and the query (three images each), two images' worth."""
    config = RunConfig(model="hf:x", data="synthetic", shots=2)
    asked = [p.request for p in prepare(load(config).questions[:6], config)]
    assert len({r.message.images[-1].path for r in asked}) < len(asked)  # several questions about one image
    return asked


@pytest.fixture(scope="module")
def adapters(tiny_checkpoint: Callable[[str], Path]) -> Iterator[Callable[[str], HFAdapter]]:
    """kind -> a likelihood-mode adapter on its tiny checkpoint, loaded once for the module."""
    loaded: dict[str, HFAdapter] = {}

    def get(kind: str) -> HFAdapter:
        if kind not in loaded:
            adapter = build_adapter(f"hf:{tiny_checkpoint(kind)}", {"dtype": "fp32"},
                                    AdapterSettings(answer_mode="likelihood", batch_size=1))
            assert isinstance(adapter, HFAdapter)
            loaded[kind] = adapter
        adapter = loaded[kind]
        adapter.answer_mode = "likelihood"
        adapter.opts = adapter.opts.model_copy(update={"prefix_reuse": True, "batch_invariant": True,
                                                       "likelihood_target": "letters"})
        adapter.batch_size = 1
        return adapter

    yield get
    for adapter in loaded.values():
        adapter.close()


def _with_images(adapter: HFAdapter, req: Request) -> list[dict[str, Any]]:
    """The request as a transformers conversation whose image items carry the images themselves."""
    conversation = to_hf_conversation(req.message.parts)
    images = iter(req.message.images)
    for item in conversation[0]["content"]:
        if item["type"] == "image":
            item["image"] = adapter.runtime.images.get(next(images).path)
    return conversation


def _on_day(day: date) -> AbstractContextManager[Any]:
    """The machine's clock moved to midnight (local time) of ``day``: what a chat template reads as today."""
    return time_machine.travel(datetime.combine(day, time()).astimezone(), tick=False)


def _reference(adapter: HFAdapter, req: Request) -> dict[str, Any]:
    """What the checkpoint's own processor makes of the request on the day the adapter renders prompts on: its chat
    template, tokenised by it."""
    proc = adapter.loaded.processor
    if adapter.loaded.prompt.source == "plain":  # no chat template: the processor's documented plain use
        text = "".join(p.text for p in req.message.parts if hasattr(p, "text"))
        images = [adapter.runtime.images.get(p.path) for p in req.message.images]
        out = proc(text=[text], images=[images], return_tensors="pt")
    else:
        with _on_day(adapter.prompts.template_date):
            out = proc.apply_chat_template(_with_images(adapter, req), add_generation_prompt=True, tokenize=True,
                                           return_dict=True, return_tensors="pt", **adapter.prompts.template_args)
    return {k: v for k, v in out.items() if k != "labels"}


def _assert_same_inputs(got: dict[str, Any], ref: dict[str, Any]) -> None:
    assert set(got) == set(ref), (sorted(got), sorted(ref))
    for key, want in ref.items():
        have = got[key].cpu()
        want = want.to(have.dtype)
        assert have.shape == want.shape and torch.equal(have, want), key


@pytest.mark.parametrize("kind", KINDS)
def test_model_inputs_equal_the_processors_own_chat_template(adapters: Callable[[str], HFAdapter],
                                                             reqs: list[Request], kind: str) -> None:
    """Token for token, with the same pixel values and image sizes; and the shared prefix plus a question's
    own tokens are that same prompt."""
    adapter = adapters(kind)
    for req in reqs[:2]:
        item = adapter.prompts.prepare(req)
        got = adapter.runtime.process([item.images], [item.text])
        _assert_same_inputs(got, _reference(adapter, req))
        ids = got["input_ids"][0].tolist()
        assert ids.count(adapter.loaded.tok.bos_token_id) <= 1 or adapter.loaded.tok.bos_token_id is None
        assert adapter.prompts.tokens(item)[-3:] == ids[-3:]  # the tokenizer alone ends the prompt the same way
        if adapter.loaded.preset.no_prefix_reuse:
            assert item.prefix_text is None
            continue
        from mmeval.model_adapters.hf.prefix import prefix_context

        split = prefix_context([item], adapter.prompts, adapter.runtime)
        assert split is not None, "the prompt splits at the question"
        ctx, (rest,) = split
        assert ctx["input_ids"][0].tolist() + rest == ids
        assert len(rest) < len(ids) // 2  # the question alone, not the images


class _Force:
    """A logits processor that makes greedy generation emit the given tokens."""

    def __init__(self, tokens: list[int], start: int) -> None:
        self.tokens, self.start = tokens, start

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.tokens[input_ids.shape[1] - self.start]] = 0
        return forced


def _generation_logprob(adapter: HFAdapter, inputs: dict[str, Any], tokens: list[int]) -> float:
    """The log-probability greedy generation gives ``tokens``, step by step, from the processor's own inputs."""
    from transformers import LogitsProcessorList

    model = adapter.loaded.model
    # floats in the model's dtype, as a user of the processor casts them (Llama 4's come in bfloat16)
    inputs = {k: v.to(model.dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    config = greedy_config(model, adapter.loaded.tok.pad_token_id, len(tokens))
    config.eos_token_id = None  # a forced token that happens to be an end token must not stop the steps
    with torch.inference_mode():
        out = model.generate(**inputs, generation_config=config, output_logits=True, return_dict_in_generate=True,
                             logits_processor=LogitsProcessorList([_Force(tokens, inputs["input_ids"].shape[1])]))
    return sum(float(torch.log_softmax(step[0].float(), -1)[t]) for step, t in zip(out.logits, tokens, strict=True))


def _answer_tokens(adapter: HFAdapter, req: Request, letter: str) -> list[int]:
    """The tokens the chat template writes for the answer ``letter`` after its generation prompt."""
    proc, tok = adapter.loaded.processor, adapter.loaded.tok
    if adapter.loaded.prompt.source == "plain":  # the answer follows the processor's prompt directly
        item = adapter.prompts.prepare(req)
        prompt = tok(item.layout, add_special_tokens=False)["input_ids"]
        return tok(item.layout + letter, add_special_tokens=False)["input_ids"][len(prompt):]
    conversation = _with_images(adapter, req)
    args = adapter.prompts.template_args
    with _on_day(adapter.prompts.template_date):
        prompt = proc.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True, return_dict=True,
                                          **args)["input_ids"][0]
        answered = proc.apply_chat_template([*conversation, {"role": "assistant", "content": [
            {"type": "text", "text": letter}]}], tokenize=True, return_dict=True, **args)["input_ids"][0]
    assert list(answered[:len(prompt)]) == list(prompt), "an answer follows the generation prompt"
    rest = list(answered[len(prompt):])
    return next(rest[:n] for n in range(1, len(rest) + 1)
                if tok.decode(rest[:n], skip_special_tokens=True).strip().endswith(letter))


@pytest.mark.parametrize("kind", KINDS)
def test_letter_scores_are_what_greedy_generation_gives(adapters: Callable[[str], HFAdapter],
                                                        reqs: list[Request], kind: str) -> None:
    """Each letter's score is the log-probability generation gives the tokens the template writes for it."""
    adapter = adapters(kind)
    for req in reqs[:2]:
        item = adapter.prompts.prepare(req)
        adapter.prompts.add_targets(item, "letters")
        (response,) = adapter.predict([req])
        assert response.error is None and response.scores is not None
        inputs = _reference(adapter, req)
        for letter, (keep, targets) in item.targets.items():
            assert targets == _answer_tokens(adapter, req, letter), letter
            assert keep == len(item.raw)  # the answer never re-splits the prompt's own tokens
            assert response.scores[letter] == pytest.approx(_generation_logprob(adapter, inputs, targets), abs=1e-4)


def test_thinking_switched_off_closes_the_block_in_the_prompt(tiny_checkpoint: Callable[[str], Path],
                                                               reqs: list[Request]) -> None:
    """-M enable_thinking=false reaches the template: the prompt ends with an empty think block, a letter is one
    token right after it, and inputs and scores still equal the processor's and generation's."""
    adapter = build_adapter(f"hf:{tiny_checkpoint('qwen3_5')}", {"dtype": "fp32", "enable_thinking": False},
                            AdapterSettings(answer_mode="likelihood", batch_size=1))
    assert isinstance(adapter, HFAdapter)
    req = reqs[0]
    item = adapter.prompts.prepare(req)
    assert item.text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") and item.sep == ""
    _assert_same_inputs(adapter.runtime.process([item.images], [item.text]), _reference(adapter, req))
    adapter.prompts.add_targets(item, "letters")
    (response,) = adapter.predict([req])
    assert response.scores is not None
    inputs = _reference(adapter, req)
    for letter, (_, targets) in item.targets.items():
        assert len(targets) == 1 and targets == _answer_tokens(adapter, req, letter)
        assert response.scores[letter] == pytest.approx(_generation_logprob(adapter, inputs, targets), abs=1e-4)


def _scores(adapter: HFAdapter, reqs: list[Request]) -> Scores:
    out: Scores = {}
    for i in range(0, len(reqs), adapter.batch_size):
        for r in adapter.predict(reqs[i:i + adapter.batch_size]):
            assert r.error is None, r.error
            assert r.scores is not None and r.text == max(r.scores, key=r.scores.__getitem__)
            out[r.id] = r.scores
    assert len(out) == len(reqs)
    return out


#: (prefix reuse, batch-invariant, batch size) of each path, the first being the plain one
LETTER_PATHS = [(False, True, 1), (False, False, 8), (True, True, 1), (True, True, 8), (True, False, 8)]
OPTION_PATHS = [(False, True, 1), (False, False, 8), (True, True, 8), (True, False, 8)]


def _assert_same_numbers(got: Scores, plain: Scores, what: object) -> None:
    assert got.keys() == plain.keys()
    worst = max(abs(got[q][o] - plain[q][o]) for q in plain for o in plain[q])
    assert worst < 1e-4, (what, worst)
    assert {q: max(s, key=s.__getitem__) for q, s in got.items()} == \
        {q: max(s, key=s.__getitem__) for q, s in plain.items()}, what


@pytest.mark.parametrize("kind", KINDS)
def test_every_path_gives_the_same_numbers(adapters: Callable[[str], HFAdapter], reqs: list[Request], kind: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from mmeval.model_adapters.hf import runtime

    adapter = adapters(kind)
    for target, paths in (("letters", LETTER_PATHS), ("options", OPTION_PATHS)):
        runs: dict[tuple[bool, bool, int], Scores] = {}
        for reuse, invariant, size in paths:
            adapter.opts = adapter.opts.model_copy(update={"prefix_reuse": reuse, "batch_invariant": invariant,
                                                           "likelihood_target": target})
            adapter.batch_size = size
            runs[(reuse, invariant, size)] = _scores(adapter, reqs)
        plain = runs[paths[0]]
        for path, got in runs.items():
            _assert_same_numbers(got, plain, (target, path))
    if adapter.loaded.preset.no_prefix_reuse:
        assert adapter.runtime.stats["reused_prefix_tokens"] == 0
        return
    assert adapter.runtime.stats["reused_prefix_tokens"] > 0
    # the cache's fallback (an expanded copy per call instead of rows written in place) gives the same numbers
    monkeypatch.setattr(runtime.ContinuationCache, "supports", staticmethod(lambda cache: False))
    _assert_same_numbers(_scores(adapter, reqs), runs[(True, False, 8)], "fallback cache")


#: sizes (width, height) the images of :func:`sized_reqs` are given in turn: large, wide, small and tall
#: (width x height with the tiny processors: Pixtral grids of 4x3, 4x2, 2x2 and 2x4 merged patches; Llama 4
#: tiles of 2x2, 2x1, 1 and 1x3)
ODD_SIZES = [(128, 80), (60, 28), (30, 30), (28, 90)]


@pytest.fixture(scope="module")
def sized_reqs(reqs: list[Request], tmp_path_factory: pytest.TempPathFactory) -> list[Request]:
    """The same questions with every image resized to one of :data:`ODD_SIZES` (MMAD's images differ in size
    and shape; the synthetic ones are all square)."""
    import dataclasses

    from PIL import Image

    folder = tmp_path_factory.mktemp("sized-images")
    copies: dict[str, str] = {}

    def resized(part: Any) -> Any:
        if not hasattr(part, "path"):
            return part
        if part.path not in copies:
            out = folder / f"{len(copies)}.png"
            Image.open(part.path).convert("RGB").resize(ODD_SIZES[len(copies) % len(ODD_SIZES)]).save(out)
            copies[part.path] = str(out)
        return dataclasses.replace(part, path=copies[part.path])

    return [dataclasses.replace(r, message=dataclasses.replace(r.message, parts=[resized(p) for p in r.message.parts]))
            for r in reqs]


#: architectures whose inputs change shape with an image's size: Pixtral's patch grid and image sizes, Llama 4's tiles
SIZE_DEPENDENT_KINDS = _params(("mistral3", "llama4"))


@pytest.mark.parametrize("kind", SIZE_DEPENDENT_KINDS)
def test_images_of_other_sizes_keep_inputs_and_numbers(adapters: Callable[[str], HFAdapter],
                                                        sized_reqs: list[Request], kind: str) -> None:
    """Images of different sizes and shapes in one batch (padded pixel values, per-image sizes, tile counts):
    the inputs still equal the processor's, and every path still gives the same letter scores."""
    adapter = adapters(kind)
    for req in sized_reqs[:2]:
        item = adapter.prompts.prepare(req)
        _assert_same_inputs(adapter.runtime.process([item.images], [item.text]), _reference(adapter, req))
    runs: dict[tuple[bool, bool, int], Scores] = {}
    for reuse, invariant, size in LETTER_PATHS:
        adapter.opts = adapter.opts.model_copy(update={"prefix_reuse": reuse, "batch_invariant": invariant})
        adapter.batch_size = size
        runs[(reuse, invariant, size)] = _scores(adapter, sized_reqs)
    for path, got in runs.items():
        _assert_same_numbers(got, runs[LETTER_PATHS[0]], ("sized images", path))


@pytest.mark.parametrize("kind", KINDS)
def test_generation_is_the_same_with_and_without_prefix_reuse(adapters: Callable[[str], HFAdapter],
                                                              reqs: list[Request], kind: str) -> None:
    adapter = adapters(kind)
    adapter.answer_mode = "generate"
    adapter.opts = adapter.opts.model_copy(update={"max_new_tokens": 3})
    texts = {}
    for reuse in (True, False):
        adapter.opts = adapter.opts.model_copy(update={"prefix_reuse": reuse})
        texts[reuse] = {r.id: r.text for r in adapter.predict(reqs[:4])}
    assert texts[True] == texts[False] and len(texts[True]) == 4


#: the architectures whose templates work out today's date as the published ones do: where the date is written
#: (mmeval's prompts, which always show an image, or a conversation without one) and how. Mistral 3's default
#: system prompt states it in both; Llama 3.2 Vision's system turn only without an image, so never in mmeval's
#: prompts; Llama 4 never writes the day it works out
DATED: dict[str, tuple[set[str], str]] = {"mistral3": ({"prompt", "imageless"}, "today is %Y-%m-%d."),
                                          "mllama": ({"imageless"}, "Today Date: %d %b %Y\n"),
                                          "llama4": (set(), "%d %b %Y")}
DATED_KINDS = _params(tuple(DATED))

#: two days a run could be made on (neither is the default template date)
TWO_DAYS = (date(2024, 2, 29), date(2025, 7, 4))


def _own_render(adapter: HFAdapter, conversation: list[dict[str, Any]]) -> str:
    """The processor's own rendering of a conversation, on whatever day the clock says it is."""
    return adapter.loaded.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False,
                                                        **adapter.prompts.template_args)


@pytest.mark.parametrize("kind", DATED_KINDS)
def test_two_days_give_the_same_prompts_inputs_and_scores(adapters: Callable[[str], HFAdapter],
                                                           reqs: list[Request], kind: str) -> None:
    """Made on two days, a run's prompts, model inputs and scores are the same: those of the day the template date
    fixes. The processor's own rendering on those days differs wherever the template writes the date, so the days
    do reach the template."""
    adapter = adapters(kind)
    places, shown = DATED[kind]
    seen = []
    for day in TWO_DAYS:
        with _on_day(day):
            items = [adapter.prompts.prepare(r) for r in reqs[:2]]
            inputs = [adapter.runtime.process([item.images], [item.text]) for item in items]
            imageless = adapter.prompts.render([TextPart(text="Question?")])
            own = {"prompt": _own_render(adapter, to_hf_conversation(reqs[0].message.parts)),
                   "imageless": _own_render(adapter, to_hf_conversation([TextPart(text="Question?")]))}
            seen.append(([item.text for item in items], inputs, imageless, _scores(adapter, reqs[:2]), own))
    (texts, inputs, imageless, scores, own), (texts2, inputs2, imageless2, scores2, own2) = seen
    assert texts == texts2 and imageless == imageless2 and scores == scores2
    for got, other in zip(inputs, inputs2, strict=True):
        _assert_same_inputs(got, other)
    for place in ("prompt", "imageless"):  # the template writes the day given to it there, and only there
        assert (own[place] != own2[place]) == (place in places), place
    fixed = adapter.prompts.template_date.strftime(shown)
    assert (fixed in texts[0]) == ("prompt" in places) and (fixed in imageless) == ("imageless" in places)
    assert adapter.prompts.dated == ("prompt" in places)  # a date in mmeval's prompts is a deviation, in run.json
    assert adapter.notes() == ([f"the chat template writes today's date into the prompt: mmeval fixes it to "
                                f"{adapter.prompts.template_date} (-M template_date), so every day gives the same "
                                "prompt"] if "prompt" in places else [])


@pytest.mark.parametrize("kind", DATED_KINDS)
def test_template_date_sets_the_day_and_joins_the_identity_where_prompts_show_it(
        tiny_checkpoint: Callable[[str], Path], reqs: list[Request], kind: str) -> None:
    """-M template_date=2024-06-30: the prompts carry that day where the template writes one, token for token what
    the processor makes on that day; a run's identity gets the default day only where mmeval's prompts show it
    (other runs keep their hash), a day given always."""
    path = tiny_checkpoint(kind)
    adapter = build_adapter(f"hf:{path}", {"dtype": "fp32", "template_date": "2024-06-30"},
                            AdapterSettings(answer_mode="likelihood", batch_size=1))
    assert isinstance(adapter, HFAdapter) and adapter.prompts.template_date == date(2024, 6, 30)
    places, shown = DATED[kind]
    item = adapter.prompts.prepare(reqs[0])
    _assert_same_inputs(adapter.runtime.process([item.images], [item.text]), _reference(adapter, reqs[0]))
    imageless = adapter.prompts.render([TextPart(text="Question?")])
    day = date(2024, 6, 30).strftime(shown)
    assert (day in item.text) == ("prompt" in places) and (day in imageless) == ("imageless" in places)
    assert ("prompt" in places) == any("fixes it to 2024-06-30" in note for note in adapter.notes())
    adapter.close()
    plain = RunConfig(model=f"hf:{path}", data="synthetic", model_args={"dtype": "fp32"})
    given = RunConfig(model=f"hf:{path}", data="synthetic", model_args={"dtype": "fp32", "template_date": "2024-06-30"})
    implied = with_implied_options(plain)
    if "prompt" in places:
        assert implied.model_args == {"dtype": "fp32", "template_date": "2025-01-01"}
        assert implied.digest() != plain.digest()
    else:
        assert implied == plain
    assert with_implied_options(given) == given and len({implied.digest(), given.digest()}) == 2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["likelihood", "generate"])
def test_cli_answers_in_both_modes(tiny_checkpoint: Callable[[str], Path], tmp_path: Path, kind: str,
                                   mode: str) -> None:
    out = tmp_path / "run"
    rc = main(["run", "--model", f"hf:{tiny_checkpoint(kind)}", "--data", "synthetic", "--shots", "1", "--limit", "3",
               "--answer-mode", mode, "-M", "max_new_tokens=2", "--out", str(out), "--no-progress"])
    assert rc == 0
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(preds) == 3 and all(p["error"] is None for p in preds)
    if mode == "likelihood":
        assert all(p["choice"] in p["options"] and set(p["scores"]) == set(p["options"]) for p in preds)
    usage = json.loads((out / "usage.jsonl").read_text().splitlines()[-1])
    assert usage["questions"] == 3
    assert (usage["reused_prefix_tokens"] > 0) == usage["prefix_reuse_possible"]  # the image's questions share one
    record = json.loads((out / "run.json").read_text())
    notes = record.get("model_notes") or []
    dated = "prompt" in DATED.get(kind, (set(), ""))[0]
    if usage["prompt_format"] == "checkpoint":  # a template that writes the date gets a fixed day, said in run.json
        assert len(notes) == dated and all("fixes it to 2025-01-01" in note for note in notes)
    else:  # a deviation from the checkpoint's own prompt format is said in run.json
        assert notes and "no chat template" in notes[0]
    # the run's identity: the options given, and the day only where the prompts show it
    assert record["config"]["model_args"] == {"max_new_tokens": 2, **({"template_date": "2025-01-01"} if dated else {})}


def test_models_show_lists_exactly_the_tested_architectures(capsys: pytest.CaptureFixture[str]) -> None:
    from mmeval.model_adapters.hf.architectures import TESTED

    assert [a.model_type for a in TESTED] == list(tiny_models.KINDS)
    assert [a.model_type for a in TESTED if a.needs_torchvision] == list(tiny_models.TORCHVISION_KINDS)
    assert main(["models", "show", "hf"]) == 0
    shown = capsys.readouterr().out
    assert all(f"{a.name} " in shown and a.model_type in shown for a in TESTED)
    assert shown.count("needs torchvision") == len(tiny_models.TORCHVISION_KINDS) and "trust_remote_code" in shown
