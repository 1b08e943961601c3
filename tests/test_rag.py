"""The ``rag`` boost: domain knowledge in the prompt, retrieved by category (MMAD) or by similarity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmeval.boosts.knowledge import DATASET_ALIASES, KnowledgeBase, parse_entry
from mmeval.cli import main
from mmeval.config import RunConfig, RunRecord
from mmeval.errors import InputError
from mmeval.predictions import read_predictions
from mmeval.prompting.messages import TextPart
from mmeval.run.prepare import prepare
from mmeval.run.runner import build_boosts, load

# our own texts, in the real file's shape: the first dataset named "MVTec" where the images say "DS-MVTec",
# each text a "<Title>" line and a "Description:" line
KNOWLEDGE = {
    "MVTec": {
        "bottle": {
            "good": " <Normal Characteristics>\n Description: A round glass rim seen from above, evenly dark.",
            "broken_large": " <Broken Large>\n Description: A big piece of the rim is missing; jagged edges.",
            "contamination": " <Contamination>\n Description: Foreign matter sits on the glass surface.",
        },
        "cable": {
            "good": " <Normal Characteristics>\n Description: Three insulated wires, green, blue and grey.",
            "poke_insulation": " <Poked Insulation>\n Description: The insulation shows a small puncture.",
        },
    },
    "MVTec-LOCO": {
        "breakfast_box": {
            "good": " <Normal Characteristics>\n Description: Two tangerines, one nectarine, cereal and banana chips.",
            "logical_anomalies": " <Logical Anomalies>\n Description: A fruit is missing or one too many.",
        },
    },
}


@pytest.fixture
def knowledge(official_data: Path) -> Path:
    path = official_data.parent / "domain_knowledge.json"
    path.write_text(json.dumps(KNOWLEDGE, indent=1), encoding="utf-8")
    return path


def _prepared(official_data: Path, **args: object) -> list:
    cfg = RunConfig(model="random", data=str(official_data), shots=1, boosts=("rag",), boost_args={"rag": args})
    bench = load(cfg)
    return prepare(bench.questions, cfg, build_boosts(cfg, bench))


def _text(p: object) -> str:
    return "".join(part.text for part in p.request.message.parts if isinstance(part, TextPart))  # type: ignore[attr-defined]


def test_real_shape_and_aliases(knowledge: Path) -> None:
    kb = KnowledgeBase.load(knowledge)
    assert DATASET_ALIASES["DS-MVTec"] == "MVTec"
    entries = kb.for_category("DS-MVTec", "bottle")  # the data's name finds the file's
    assert [e.key for e in entries] == ["good", "broken_large", "contamination"]
    assert entries[1].title == "Broken Large" and entries[1].body.startswith("A big piece")
    assert kb.for_category("DS-MVTec", "screw") == []
    plain = parse_entry("D", "c", "scratch_mark", "no title here")
    assert plain.title == "Scratch mark" and plain.body == "no title here"


def test_category_mode_puts_exactly_the_category_in_the_shared_prefix(official_data: Path, knowledge: Path) -> None:
    for p in _prepared(official_data):
        msg = p.request.message
        prefix = "".join(part.text for part in msg.parts[: msg.prefix_len] if isinstance(part, TextPart))
        cat = p.question.category
        mine = [e for e in KnowledgeBase.load(knowledge).entries if e.category == cat]
        others = [e for e in KnowledgeBase.load(knowledge).entries if e.category != cat]
        assert mine and all(e.body in prefix for e in mine)
        assert not any(e.body in _text(p) for e in others)
        assert p.notes["rag"]["entries"] == [e.ident for e in mine] and p.notes["rag"]["dropped"] == []


def test_the_budget_keeps_whole_entries_and_records_what_it_dropped(official_data: Path, knowledge: Path) -> None:
    for p in _prepared(official_data, max_tokens=14):  # counted in words here (the model has no tokenizer)
        note = p.notes["rag"]
        assert note["tokens"] <= 14 and note["entries"] and note["dropped"]
        text = _text(p)
        for ident in note["dropped"]:
            body = next(e.body for e in KnowledgeBase.load(knowledge).entries if e.ident == ident)
            assert body not in text and body.split()[0] + " " + body.split()[1] not in text  # not even a piece


def test_search_mode_ranks_every_entry_and_goes_after_the_prefix(official_data: Path, knowledge: Path) -> None:
    bodies = {e.ident: e.body for e in KnowledgeBase.load(knowledge).entries}
    prepared = _prepared(official_data, mode="search", top_k=2)
    for p in prepared:
        msg = p.request.message
        texts = [part.text if isinstance(part, TextPart) else "" for part in msg.parts]
        prefix, rest = "".join(texts[: msg.prefix_len]), "".join(texts[msg.prefix_len:])
        got = p.notes["rag"]["entries"]
        assert len(got) == 2 and all(bodies[i] in rest and bodies[i] not in prefix for i in got)
    broken = next(p for p in prepared if p.question.type_label == "Defect Classification"
                  and "bottle" in p.question.image)
    assert broken.notes["rag"]["entries"][0].startswith("MVTec/bottle/")  # found without trusting the category


def _pcb_benchmark(root: Path) -> Path:
    """A printed-circuit-board category whose notes say "circuit board" and describe its four defects alike:
    the object question is given away, the defect questions are not."""
    from conftest import materialise

    alike = "Description: A visible flaw somewhere on the part."
    knowledge = {"MVTec": {"pcb": {"good": " <Normal Characteristics>\n Description: A green circuit board with chips.",
                                   **{d: f" <{d.title()}>\n {alike}" for d in ("crack", "scratch", "hole", "stain")}}}}
    defects = {"A": "Crack.", "B": "Scratch.", "C": "Hole.", "D": "Stain."}
    objects = {"A": "Screw.", "B": "Printed circuit board.", "C": "Bottle.", "D": "Hazelnut."}
    templates = ["MVTec-AD/pcb/train/good/000.png", "MVTec-AD/pcb/train/good/001.png"]
    records = {}
    for i, answer in enumerate("ABCD"):
        records[f"DS-MVTec/pcb/image/{defects[answer].lower().rstrip('.')}/00{i}.png"] = {
            "image_path": "x", "mask_path": "", "similar_templates": templates, "random_templates": templates,
            "conversation": [{"Question": "There is a defect in the object. What is the type of the defect?",
                              "Answer": answer, "Options": defects, "type": "Defect Classification"}]}
    records["DS-MVTec/pcb/image/good/000.png"] = {
        "image_path": "x", "mask_path": "", "similar_templates": templates, "random_templates": templates,
        "conversation": [{"Question": "What kind of product is in the image?", "Answer": "B", "Options": objects,
                          "type": "Object Classification"}]}
    path = materialise(records, root)
    (root / "domain_knowledge.json").write_text(json.dumps(knowledge), encoding="utf-8")
    return path


def test_a_leak_is_knowledge_that_singles_out_the_correct_option(tmp_path: Path) -> None:
    data = _pcb_benchmark(tmp_path / "pcb")
    prepared = _prepared(data)
    by_task: dict[str, list[bool]] = {}
    for p in prepared:
        by_task.setdefault(p.question.type_label, []).append(p.notes["rag"]["leak"])
    assert by_task["Object Classification"] == [True]  # "Printed circuit board." vs notes saying "circuit board"
    assert by_task["Defect Classification"] == [False] * 4  # every defect named alike: none singled out


def test_the_blind_reader() -> None:
    from mmeval.boosts.blind_reader import credit, leaked, read_blind

    defects = {"A": "Scratches.", "B": "Hole.", "C": "Stain."}
    assert read_blind("What is the defect?", defects, "Deep scratch marks across the lid.") == ["A"]  # stemmed
    assert read_blind("What is the defect?", defects, "Nothing relevant here.") == ["A", "B", "C"]
    assert read_blind("Is there a defect?", {"A": "Yes.", "B": "No."}, "yes, a defect") == ["A", "B"]
    # words of the question single out nothing: "lid" is asked about, so only "hole" counts
    assert read_blind("Which defect is on the lid?", {"A": "Lid dent.", "B": "Hole."}, "lid lid lid hole") == ["B"]
    assert leaked(["A"], "A") and not leaked(["A", "B"], "A") and not leaked(["B"], "A")
    assert credit(["A", "B"], "A") == 0.5 and credit(["A"], "A") == 1.0 and credit(["B"], "A") == 0.0


def test_the_report_sets_the_blind_reader_beside_the_model_and_splits_by_leak(tmp_path: Path) -> None:
    from mmeval.predictions import Prediction
    from mmeval.report.analysis.boosts import knowledge_leaks

    def pred(i: int, normal: bool, task: str, choice: str, reader: list[str], ds: str = "D1") -> Prediction:
        detection = task == "Anomaly Detection"
        return Prediction(id=f"{ds}/{i}", image=f"{ds}/img{i}.png", dataset=ds, category="c", task=task, type=task,
                          is_normal=normal, question="q",
                          options={"A": "Yes.", "B": "No."} if detection else {"A": "a", "B": "b", "C": "c", "D": "d"},
                          answer="B" if normal and detection else "A", choice=choice, response=choice, model="m",
                          config="x", boost_notes={"rag": {"leak": reader == ["A"], "reader": reader}})

    ad = "Anomaly Detection"
    dc = "Defect Classification"
    preds = [pred(0, False, ad, "A", ["A", "B"]), pred(1, False, ad, "A", ["A", "B"]),
             pred(2, True, ad, "A", ["A", "B"]),  # the model says "defect" on a normal image
             pred(3, False, dc, "A", ["A"]), pred(4, False, dc, "B", ["A"]), pred(5, False, dc, "A", ["B", "C"]),
             pred(6, False, dc, "C", ["A", "B", "C", "D"], ds="D2")]
    rows = {r.task: r for r in knowledge_leaks(preds)}
    # detection: balanced, as the score table: (100 on defective + 0 on normal) / 2; the reader guesses: 50
    assert rows[ad].model_accuracy == 50.0 and rows[ad].reader_accuracy == 50.0 and rows[ad].leaked == 0
    # classification, a mean over datasets: D1 has 2 of 3 right for the model, and for the reader (two it singles
    # out, one it misses); D2 none for the model, a four-way guess for the reader
    assert rows[dc].model_accuracy == pytest.approx((200 / 3 + 0) / 2)
    assert rows[dc].reader_accuracy == pytest.approx((200 / 3 + 25) / 2)
    assert (rows[dc].questions, rows[dc].leaked, rows[dc].leaked_accuracy) == (4, 2, 50.0)
    assert (rows[dc].clean, rows[dc].clean_accuracy) == (2, 50.0)  # D1 right, D2 wrong


def test_end_to_end_run_records_rag_and_leaks(official_data: Path, knowledge: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert main(["run", "--model", "random", "--data", str(official_data), "--shots", "1", "--boost", "rag",
                 "--out", str(out), "--no-progress"]) == 0
    record = RunRecord.read(out / "run.json")
    assert record.boosts[0].name == "rag" and record.boosts[0].model_extra["knowledge_file"] == str(knowledge)
    preds = read_predictions(out / "predictions.jsonl")
    assert all(p.boost_notes and "leak" in p.boost_notes["rag"] for p in preds)
    assert all(p.boost_notes["rag"]["leak"] == (p.boost_notes["rag"]["reader"] == [p.answer]) for p in preds)
    assert "blind reader" in (out / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("content,needle", [(None, "no knowledge file"), ("{not json", "not a readable JSON"),
                                            ('{"MVTec": {"bottle": {"good": 3}}}', "non-empty text"),
                                            ('{"Other": {"x": {"good": "t"}}}', "no entry for any category"),
                                            ('{"MVTec": {"bottle": {"good": ' + "[" * 50_000 + "]" * 50_000 + "}}}",
                                             "nested too deeply")])
def test_bad_knowledge_files_exit_2(official_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                   content: str | None, needle: str) -> None:
    path = tmp_path / "k.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["run", "--model", "random", "--data", str(official_data), "--boost", "rag", "--boost-arg",
                 f"knowledge={path}", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_embedding_retriever_needs_a_model_folder(official_data: Path, knowledge: Path) -> None:
    with pytest.raises(InputError, match="embedding_model"):
        _prepared(official_data, mode="search", retriever="embedding")


def test_the_budget_is_counted_with_a_tokenizer_when_there_is_one(official_data: Path, knowledge: Path,
                                                                   tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    import tiny_models

    tok = tiny_models.build_tokenizer()
    tok.save_pretrained(tmp_path / "tok")
    words = {p.request.id: p.notes["rag"]["tokens"] for p in _prepared(official_data)}
    tokens = {p.request.id: p.notes["rag"]["tokens"] for p in _prepared(official_data, tokenizer=str(tmp_path / "tok"))}
    text = KnowledgeBase.load(knowledge).for_category("DS-MVTec", "bottle")[0].text
    assert len(tok(text, add_special_tokens=False)["input_ids"]) != len(text.split())  # the two counts differ
    assert tokens != words and all(tokens[i] > 0 for i in tokens)
