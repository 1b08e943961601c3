"""The Boost and Expert protocols and their registries: one module plus one registry line each."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

from mmeval import boosts, experts, optionspec
from mmeval.boosts.base import Boost
from mmeval.cli import main
from mmeval.config import RunRecord
from mmeval.data import Question
from mmeval.errors import InputError
from mmeval.experts.base import AnomalyMap, Expert
from mmeval.predictions import read_predictions
from mmeval.prompting.draft import Draft, Reference
from mmeval.prompting.render import render_draft


class NoteOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field("Screws are steel.", description="the note to add")
    per_question: bool = False
    refs: int = Field(0, json_schema_extra={"affects_predictions": False})


class AddNote(Boost):
    """A test boost: adds a fixed note per image (or per question) and records what it did."""

    name: ClassVar[str] = "note"
    summary: ClassVar[str] = "adds a note"
    Options: ClassVar[type[BaseModel]] = NoteOptions

    def prepare(self, questions: Sequence[Question]) -> None:
        self.seen = len(questions)

    def apply(self, draft: Draft) -> Draft:
        o: NoteOptions = self.options  # type: ignore[assignment]
        if o.per_question:
            return draft.with_(question_knowledge=(*draft.question_knowledge, o.text), notes={"note": "added"})
        return draft.with_(image_knowledge=(*draft.image_knowledge, o.text))

    def record(self) -> dict[str, object]:
        return {"questions_seen": self.seen}


class Shout(Boost):
    name: ClassVar[str] = "shout"

    def apply(self, draft: Draft) -> Draft:
        return draft.with_(image_knowledge=tuple(k.upper() for k in draft.image_knowledge))


class Flat(Expert):
    """A test expert: the same map for every image, peak in the bottom right."""

    name: ClassVar[str] = "flat"
    needs_templates: ClassVar[bool] = False

    def analyse(self, query: str, templates: Sequence[str]) -> AnomalyMap:
        grid = np.zeros((6, 6))
        grid[5, 5] = 1.0
        return AnomalyMap(grid, score=1.0, threshold=0.5)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(boosts.BOOSTS, "note", f"{__name__}:AddNote")
    monkeypatch.setitem(boosts.BOOSTS, "shout", f"{__name__}:Shout")
    monkeypatch.setitem(experts.EXPERTS, "flat", f"{__name__}:Flat")


def test_spec_parsing_and_suggestions(registered: None) -> None:
    assert boosts.parse_spec("note+shout") == ("note", "shout")
    assert boosts.parse_spec("none") == () and boosts.parse_spec(None) == ()
    with pytest.raises(InputError, match="Did you mean 'note'"):
        boosts.parse_spec("nte")
    with pytest.raises(InputError, match="named twice"):
        boosts.parse_spec("note+note")
    hashed, runtime = boosts.split_args(("note",), {"text": "x", "refs": "2"})
    assert hashed == {"note": {"text": "x"}} and runtime == {"note": {"refs": 2}}
    assert boosts.split_args(("note", "shout"), {"note.per_question": "true"})[0] == {"note": {"per_question": True}}
    with pytest.raises(InputError, match="not part of --boost"):
        boosts.split_args(("note",), {"shout.x": "1"})


def test_a_boost_runs_in_order_is_recorded_and_changes_the_run(registered: None, official_data: Path,
                                                                tmp_path: Path) -> None:
    base = ["run", "--model", "random", "--data", str(official_data), "--no-progress", "--shots", "1"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert main([*base, "--out", str(tmp_path / "plain"), "--boost", "note"]) == 2  # never resumes into a plain run
    assert main([*base, "--out", str(tmp_path / "b"), "--boost", "note+shout", "--boost-arg", "text=mind the rim"]) == 0
    record = RunRecord.read(tmp_path / "b" / "run.json")
    assert record.config.boosts == ("note", "shout")
    assert [b.name for b in record.boosts] == ["note", "shout"]
    preds = read_predictions(tmp_path / "b" / "predictions.jsonl")
    assert len(preds) == len(read_predictions(tmp_path / "plain" / "predictions.jsonl"))
    assert record.boosts[0].args == {"text": "mind the rim"}
    assert record.boosts[0].model_extra == {"questions_seen": len(preds)}  # prepare() saw every question
    assert record.digest != RunRecord.read(tmp_path / "plain" / "run.json").digest


def test_boost_additions_land_where_prefix_reuse_needs_them(registered: None, official_data: Path) -> None:
    from mmeval.config import RunConfig
    from mmeval.run.prepare import prepare
    from mmeval.run.runner import build_boosts, load

    for per_question in (False, True):
        cfg = RunConfig(model="random", data=str(official_data), shots=1, boosts=("note",),
                        boost_args={"note": {"text": "NOTE-TEXT", "per_question": per_question}})
        bench = load(cfg)
        prepared = prepare(bench.questions, cfg, build_boosts(cfg, bench))
        for p in prepared:
            msg = p.request.message
            texts = [getattr(part, "text", "") for part in msg.parts]
            where = [i for i, t in enumerate(texts) if "NOTE-TEXT" in t]
            assert len(where) == 1
            assert (where[0] >= msg.prefix_len) == per_question  # per image: in the shared prefix
            assert p.notes == ({"note": "added"} if per_question else {})


def test_render_draft_places_references_after_the_query(official_data: Path) -> None:
    from mmeval.data import load_benchmark

    q = load_benchmark(official_data, official_data.parent, shots=1).questions[0]
    msg = render_draft(Draft(q, dict(q.options), q.answer, references=(Reference("/tmp/marks.png", "bbox"),)))
    roles = [getattr(p, "role", None) for p in msg.parts]
    assert roles.index("reference") > roles.index("query") and msg.prefix_len == len(msg.parts) - 1


def test_expert_registry_and_the_expert_family(registered: None, official_data: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Did you mean 'patch'"):
        experts.expert_class("pach")
    assert main(["run", "--model", "expert", "-M", "expert=flat", "--data", str(official_data), "--shots", "0",
                 "--out", str(tmp_path / "r"), "--no-progress", "--no-shuffle"]) == 0
    preds = read_predictions(tmp_path / "r" / "predictions.jsonl")
    ad = [p for p in preds if p.task == "Anomaly Detection"]
    assert ad and all(p.options[p.choice].startswith("Yes") for p in ad)  # score 1.0 > threshold 0.5: defect
    dl = [p for p in preds if p.task == "Defect Localization" and "Bottom right." in p.options.values()]
    assert dl and all(p.options[p.choice] == "Bottom right." for p in dl)
    usage = [json.loads(line) for line in (tmp_path / "r" / "usage.jsonl").read_text().splitlines()]
    assert usage[0]["expert"] == "flat" and usage[0]["answered_by_detector"] == len(ad) + len(
        [p for p in preds if p.task == "Defect Localization"])


def test_anomaly_map_regions_and_shape() -> None:
    grid = np.zeros((4, 4))
    grid[0, 3] = 2.0
    amap = AnomalyMap(grid, score=2.0, threshold=1.0)
    regions = amap.region_scores()
    assert max(regions, key=lambda r: regions[r]) == (0, 2) and amap.defective
    assert regions[(1, 1)] == 0.0
    with pytest.raises(ValueError, match="2-D"):
        AnomalyMap(np.zeros(5), score=0.0, threshold=1.0)


class NoteOptionsLater(NoteOptions):
    text: str = Field("Screws are brass.", description="the note to add")


class AddNoteLater(AddNote):
    """The same boost in a later release, whose default changed."""

    Options: ClassVar[type[BaseModel]] = NoteOptionsLater


def test_a_boost_identity_is_its_resolved_options_defaults_included(registered: None,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from mmeval.config import RunConfig

    plain = RunConfig(model="random", data="d", shots=1)
    assert "boost_identity" not in plain.hashed_fields()  # a plain run's hash knows nothing of boosts
    implicit = RunConfig(model="random", data="d", shots=1, boosts=("note",))
    explicit = RunConfig(model="random", data="d", shots=1, boosts=("note",),
                         boost_args={"note": {"text": "Screws are steel."}})
    assert implicit.hashed_fields()["boost_identity"] == {
        "note": {"options": {"text": "Screws are steel.", "per_question": False}}}  # not refs: operational
    assert implicit.digest() == explicit.digest()  # a default given or left out: the same run
    before = implicit.digest()
    monkeypatch.setitem(boosts.BOOSTS, "note", f"{__name__}:AddNoteLater")
    assert implicit.digest() != before and plain.digest() == RunConfig(model="random", data="d", shots=1).digest()
    # the agent's identity holds the chosen expert's options too, defaults included
    agent = RunConfig(model="random", data="d", shots=1, boosts=("agent",)).boost_identity()["agent"]
    patch = experts.expert_class("patch").Options
    hashed = {n for n in patch.model_fields if not optionspec.is_operational(patch, n)}
    assert agent["options"]["view"] == "bbox" and hashed <= set(agent["options"])
    assert not {n for n in patch.model_fields if optionspec.is_operational(patch, n)} & set(agent["options"])
    assert set(agent) == {"options", "templates"}


class Checklist(Boost):
    name: ClassVar[str] = "checklist"
    templates: ClassVar[tuple[str, ...]] = ("test_checklist",)

    def apply(self, draft: Draft) -> Draft:
        return self.add_text(draft, items=("the rim", "the thread"))


def test_a_boost_template_is_in_the_identity_of_the_runs_that_use_it_only(monkeypatch: pytest.MonkeyPatch,
                                                                          official_data: Path) -> None:
    from mmeval.config import RunConfig
    from mmeval.prompting import render
    from mmeval.run.prepare import prepare
    from mmeval.run.runner import build_boosts, load

    plain_before = RunConfig(model="random", data="d", shots=1).digest()
    original = render._load
    wording = {"text": "Check {% for item in items %}{{ item }}{{ ', ' if not loop.last }}{% endfor %}."}

    def load_template(name: str) -> str:
        return wording["text"] if name == "test_checklist" else original(name)

    monkeypatch.setattr(render, "_load", load_template)
    monkeypatch.setitem(boosts.BOOSTS, "checklist", f"{__name__}:Checklist")
    plain = RunConfig(model="random", data=str(official_data), shots=1)
    assert RunConfig(model="random", data="d", shots=1).digest() == plain_before  # a new boost: no plain hash moves
    cfg = RunConfig(model="random", data=str(official_data), shots=1, boosts=("checklist",))
    first = cfg.digest()
    bench = load(cfg)
    prepared = prepare(bench.questions, cfg, build_boosts(cfg, bench))
    assert "Check the rim, the thread." in prepared[0].request.message.parts[0].text
    wording["text"] = "Look at {% for item in items %}{{ item }} {% endfor %}"
    assert cfg.digest() != first and plain.digest() == RunConfig(model="random", data=str(official_data),
                                                                 shots=1).digest()


def test_a_template_a_boost_does_not_name_is_refused(official_data: Path, tmp_path: Path) -> None:
    from mmeval.boosts.base import BoostContext, NoBoostOptions
    from mmeval.data import load_benchmark

    q = load_benchmark(official_data, official_data.parent, shots=1).questions[0]
    boost = Checklist(NoBoostOptions(), BoostContext(official_data.parent, official_data, 0, tmp_path))
    with pytest.raises(TypeError, match="without naming it"):
        boost.add_text(Draft(q, dict(q.options), q.answer), "knowledge", knowledge="x")


def test_rewording_a_first_boost_template_moves_only_the_runs_of_its_boost(monkeypatch: pytest.MonkeyPatch) -> None:
    """knowledge, expert and expert_text were hashed with every run before boosts named their templates: every
    run's prompt digest counts them with their fixed text, and only the runs of their boost see a rewording."""
    from mmeval.config import RunConfig
    from mmeval.prompting import render
    from mmeval.prompting.fixed_texts import FIXED_TEXTS

    owned = {t for name in boosts.BOOSTS for t in boosts.boost_class(name).templates}
    assert set(FIXED_TEXTS) == owned & set(render.TEMPLATE_NAMES)  # every boost template in the list is fixed
    def digests() -> tuple[str, str]:  # a plain run's and an agent run's, made now
        return (RunConfig(model="random", data="d", shots=1).digest(),
                RunConfig(model="random", data="d", shots=1, boosts=("agent",)).digest())

    plain, agent = digests()
    original = render._load
    monkeypatch.setattr(render, "_load", lambda name: original(name) + " Reworded." if name == "expert"
                        else original(name))
    assert digests()[0] == plain and digests()[1] != agent
    monkeypatch.setattr(render, "_load", lambda name: original(name) + " Reworded." if name == "question"
                        else original(name))
    assert digests()[0] != plain  # a template of every run moves every run
