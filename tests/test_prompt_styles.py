"""--prompt-style: the mmad-anomalygpt rendering, its state across an image's questions, and the run's identity."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from mmeval.boosts import Boost, BoostContext
from mmeval.boosts.base import NoBoostOptions
from mmeval.cli.run import build_config, default_out, settings
from mmeval.config import RunConfig
from mmeval.data import load_benchmark
from mmeval.errors import InputError
from mmeval.model_adapters.baselines import RandomAdapter
from mmeval.prompting.draft import SLOTS, BoostText, Draft, ExpertHint, Reference
from mmeval.prompting.messages import ImagePart, Request, Response, TextPart
from mmeval.prompting.shuffle import question_rng
from mmeval.prompting.styles import MMADAnomalyGPT, renderer
from mmeval.run.prepare import prepare

OPENING = ("This is a photo of a object for anomaly detection, which should be round, without any damage, flaw, "
           "defect, scratch, hole or broken part.")
LETTER = "Answer with the option's letter from the given choices directly."


def script_prompts(questions: list[tuple[str, str, dict[str, str]]]) -> list[str]:
    """The prompts MMAD's AnomalyGPT script sends for one image's questions, built the way the script builds them."""
    prompt_text, out = OPENING, []
    for i, (kind, question, options) in enumerate(questions):
        if kind == "Anomaly Detection":
            text = " Is there any anomaly in the image?"
        else:
            text = f"{question} \n" + "".join(f"{k}. {v}\n" for k, v in options.items())
        prompt_text += text
        if i != 0:
            prompt_text += LETTER
        out.append(prompt_text)
    return out


def test_prompts_equal_the_scripts_for_every_question_of_an_image(official_data: Path) -> None:
    bench = load_benchmark(official_data, official_data.parent, shots=1, strict=True)
    config = RunConfig(model="random", data=str(official_data), shots=1, prompt_style="mmad-anomalygpt")
    prepared = prepare(bench.questions, config)
    by_image: dict[str, list] = {}
    for p in prepared:
        by_image.setdefault(p.image, []).append(p)
    assert len(by_image) > 1
    for items in by_image.values():
        expected = script_prompts([(p.question.type_label, p.question.question, p.request.options) for p in items])
        for p, want in zip(items, expected, strict=True):
            parts = p.request.message.parts
            assert "".join(x.text for x in parts if isinstance(x, TextPart)) == want
            images = [x for x in parts if isinstance(x, ImagePart)]
            assert [x.role for x in images] == ["template", "query"] and isinstance(parts[-1], TextPart)
            assert p.request.message.prefix_len == 3  # templates, query and the opening are shared


def test_rotations_repeat_earlier_questions_then_their_own(official_data: Path) -> None:
    bench = load_benchmark(official_data, official_data.parent, shots=1, strict=True)
    config = RunConfig(model="random", data=str(official_data), shots=1, prompt_style="mmad-anomalygpt",
                       circular=True)
    prepared = prepare(bench.questions, config)
    text = {p.request.id: "".join(x.text for x in p.request.message.parts if isinstance(x, TextPart))
            for p in prepared}
    rotation = next(p for p in prepared if p.variant and p.question.index == 1)
    base = text[rotation.base_id]
    first = text[f"{rotation.image}#0"]
    assert text[rotation.request.id].startswith(first) and text[rotation.request.id] != base
    assert text[rotation.request.id].endswith(LETTER)
    # the rotation left no trace: the next question still builds on the plain question
    following = f"{rotation.image}#2"
    if following in text:
        assert text[following].startswith(base)


#: a marked value for every slot of a draft, and what of it shows in a rendered message
MARKED = {
    "image_knowledge": (("Marked image knowledge.",), "Marked image knowledge."),
    "question_knowledge": (("Marked question knowledge.",), "Marked question knowledge."),
    "references": ((Reference("/x/marked-overlay.png", "bbox"),), "/x/marked-overlay.png"),
    "hints": ((ExpertHint(0.875, 0.5, True, "marked corner"),), "marked corner"),
    "texts": ((BoostText("knowledge", (("knowledge", "Marked text of a boost."),), "question"),),
              "Marked text of a boost."),
}


def test_every_slot_has_its_place_in_the_default_style_and_is_refused_by_the_script_style(
        official_data: Path) -> None:
    """The rule, slot by slot: a new slot must be placed by the default renderer (and listed here), and a style
    that cannot place it refuses the draft instead of dropping what a boost added."""
    assert set(MARKED) == set(SLOTS)
    q = load_benchmark(official_data, official_data.parent, shots=1, strict=True).questions[0]
    for slot, (value, shown) in MARKED.items():
        draft = Draft(q, dict(q.options), q.answer, **{slot: value})
        message = renderer("mmeval")(draft)
        seen = [p.text for p in message.parts if isinstance(p, TextPart)] + [p.path for p in message.images]
        assert any(shown in s for s in seen), slot
        with pytest.raises(InputError, match=f"has no place for .*\\({slot}\\)"):
            MMADAnomalyGPT()(draft)
    assert renderer("mmeval") is renderer("mmeval")  # the default style keeps no state
    with pytest.raises(InputError, match="unknown"):
        renderer("nope")


class _Persona(Boost):
    name: ClassVar[str] = "persona"
    templates: ClassVar[tuple[str, ...]] = ("knowledge",)

    def apply(self, draft: Draft) -> Draft:
        return self.add_text(draft, knowledge="You have inspected bearings for twenty years.")


def test_a_boost_adding_text_is_refused_before_anything_is_asked_naming_it(official_data: Path,
                                                                            tmp_path: Path) -> None:
    bench = load_benchmark(official_data, official_data.parent, shots=1, strict=True)
    boost = _Persona(NoBoostOptions(), BoostContext(official_data.parent, official_data, 0, tmp_path))
    plain = prepare(bench.questions, RunConfig(model="random", data=str(official_data), shots=1), [boost])
    assert "twenty years" in plain[0].request.message.parts[0].text  # placed after the instruction, in the prefix
    with pytest.raises(InputError, match="what --boost persona adds"):
        prepare(bench.questions, RunConfig(model="random", data=str(official_data), shots=1,
                                           prompt_style="mmad-anomalygpt"), [boost])


def test_the_default_style_keeps_existing_hashes_and_another_style_is_another_run() -> None:
    base = RunConfig(model="random", data="synthetic", shots=1)
    assert "prompt_style" not in base.hashed_fields()
    other = RunConfig(model="random", data="synthetic", shots=1, prompt_style="mmad-anomalygpt")
    assert other.hashed_fields()["prompt_style"].startswith("mmad-anomalygpt:") and other.digest() != base.digest()


def test_cli_flag_and_config_key(tmp_path: Path) -> None:
    from mmeval.cli import build_parser

    args = build_parser().parse_args(["run", "--model", "random", "--prompt-style", "mmad-anomalygpt"])
    config = build_config(settings(args))
    assert config.prompt_style == "mmad-anomalygpt"
    assert str(default_out(config)).endswith("_mmad-anomalygpt")
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: random\nprompt_style: mmad-anomalygpt\n")
    args = build_parser().parse_args(["run", "--config", str(cfg)])
    assert build_config(settings(args)).prompt_style == "mmad-anomalygpt"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--model", "random", "--prompt-style", "other"])


def misspelt(text: str) -> str:
    """An option's text with its first vowel changed: close to it, but not its words."""
    low = text.lower().rstrip(".")
    i = next((k for k, c in enumerate(low) if c in "aeiou"), 0)
    return low[:i] + "x" + low[i + 1:]


class OptionTexter(RandomAdapter):
    """Test family: replies with a chance option's text misspelt, never its letter."""

    family: ClassVar[str] = "option-texter"

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        for req in batch:
            letter = question_rng(self.seed, req.id, "texter").choice(sorted(req.options))
            yield Response(id=req.id, text=misspelt(req.options[letter]))


def test_the_anomalygpt_style_reads_letterless_replies_by_the_closest_option(tmp_path: Path) -> None:
    from mmeval.predictions import read_predictions
    from mmeval.run.runner import run
    from mmeval.tasks import yes_no_letters

    chosen = {}
    for style in ("mmeval", "mmad-anomalygpt"):
        config = RunConfig(model="random", data="synthetic", shots=1, limit=12, prompt_style=style)
        run(config, tmp_path / style, progress=False, adapter=OptionTexter("option-texter"))
        preds = read_predictions(tmp_path / style / "predictions.jsonl")
        chosen[style] = {p.id: p for p in preds if yes_no_letters(p.options) == (None, None)}
    assert len(chosen["mmeval"]) >= 6
    assert all(p.choice is None for p in chosen["mmeval"].values())  # mmeval's rule: no letter, no answer
    read = chosen["mmad-anomalygpt"].values()
    assert all(p.choice is not None and misspelt(p.options[p.choice]) == p.response for p in read)


def test_a_family_that_fixes_how_replies_are_read_has_it_in_its_identity() -> None:
    """AnomalyGPT reads a reply naming no option as the closest option: a run directory made before the family
    read replies so (or by a family reading them otherwise) must not resume into a mix of both readings."""
    from mmeval.cli import build_parser

    def config(model: str) -> RunConfig:
        return build_config(settings(build_parser().parse_args(["run", "--model", model])))

    gpt = config("anomalygpt:/nowhere")
    assert gpt.reading == "closest" and gpt.hashed_fields()["reading"] == "closest"
    assert gpt.digest() != gpt.model_copy(update={"reading": None}).digest()
    plain = config("random")
    assert plain.reading is None and "reading" not in plain.hashed_fields()
