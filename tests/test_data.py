"""Loading the official mmad.json layout, and a clear error for every kind of bad record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import materialise

from mmeval.data import load_benchmark, locate
from mmeval.data.loading import question_digest
from mmeval.data.schema import ConversationItem, ImageRecord
from mmeval.errors import DataError, InputError

KEY = "DS-MVTec/bottle/image/broken_large/000.png"


def test_official_records_load_unchanged(official_data: Path, official_records: dict) -> None:
    json_path, root = locate(str(official_data.parent))
    bench = load_benchmark(json_path, root, shots=1, strict=True)
    assert bench.skipped == []
    assert len(bench.questions) == sum(len(r["conversation"]) for r in official_records.values())
    by_id = {q.id: q for q in bench.questions}
    # Object Structure and Object Details report as Object Analysis, but keep their label
    loco = [q for q in bench.questions if q.image.startswith("MVTec-LOCO/breakfast_box/test/good")]
    assert [q.task for q in loco] == ["Anomaly Detection", "Object Analysis", "Object Analysis"]
    assert [q.type_label for q in loco][1:] == ["Object Structure", "Object Details"]
    five = by_id["DS-MVTec/bottle/image/good/003.png#1"]
    assert list(five.options) == ["A", "B", "C", "D", "E"] and five.answer == "A"
    assert five.is_normal and not by_id[f"{KEY}#0"].is_normal
    assert by_id[f"{KEY}#2"].mask_path.endswith("DS-MVTec/bottle/rbg_mask/broken_large/000_rbg_mask.png")
    assert by_id[f"{KEY}#0"].template_paths[0].endswith("MVTec-AD/bottle/train/good/017.png")
    assert by_id[f"{KEY}#0"].dataset == "DS-MVTec" and by_id[f"{KEY}#0"].category == "bottle"


def test_similar_templates_flag(official_data: Path) -> None:
    bench = load_benchmark(official_data, official_data.parent, shots=2, templates="similar")
    q = next(q for q in bench.questions if q.image == KEY)
    assert [Path(p).name for p in q.template_paths] == ["001.png", "002.png"]


def test_extra_keys_are_kept(official_records: dict) -> None:
    rec = ImageRecord.model_validate(official_records["DS-MVTec/bottle/image/good/003.png"])
    assert rec.model_extra == {"reviewer": "extra key kept as is"}
    assert rec.conversation[1].model_extra == {"annotation": True, "source": "hand-written 5-option question"}


def _break(records: dict, how: str) -> tuple[dict, str]:
    """Apply one kind of damage to the first record; return the records and the expected field."""
    rec = records[KEY]
    if how == "answer not among options":
        rec["conversation"][1]["Answer"] = "E"
        return records, "conversation.1"
    if how == "empty options":
        rec["conversation"][2]["Options"] = {}
        return records, "conversation.2.Options"
    if how == "empty option text":
        rec["conversation"][2]["Options"]["B"] = "  "
        return records, "conversation.2.Options"
    if how == "unknown type":
        rec["conversation"][3]["type"] = "Defect Smell"
        return records, "conversation.3.type"
    if how == "missing conversation":
        del rec["conversation"]
        return records, "conversation"
    if how == "template escapes root":
        rec["random_templates"][0] = "../../etc/passwd"
        return records, "random_templates[0]"
    if how == "absolute template":
        rec["random_templates"][0] = "/etc/passwd"
        return records, "random_templates[0]"
    if how == "lone surrogate":  # json writes it as the escape \ud800, which JSON allows and UTF-8 cannot hold
        rec["conversation"][0]["Question"] = "Is there a defect \ud800?"
        return records, "record"
    if how == "key escapes root":
        records = {"../outside/" + KEY: rec, **{k: v for k, v in records.items() if k != KEY}}
        return records, "key"
    raise AssertionError(how)


CASES = ["answer not among options", "empty options", "empty option text", "unknown type", "missing conversation",
         "template escapes root", "absolute template", "key escapes root", "lone surrogate"]


@pytest.mark.parametrize("how", CASES)
def test_bad_record_strict_names_record_and_field(tmp_path: Path, official_records: dict, how: str) -> None:
    records, field = _break(official_records, how)
    path = materialise(records, tmp_path)
    with pytest.raises(DataError) as info:
        load_benchmark(path, tmp_path, shots=1, strict=True)
    bad_key = next(k for k in records if k.endswith(KEY))
    assert info.value.key == bad_key
    assert info.value.field == field
    assert bad_key in str(info.value)


@pytest.mark.parametrize("how", CASES)
def test_bad_record_default_skips_and_lists(tmp_path: Path, official_records: dict, how: str) -> None:
    records, field = _break(official_records, how)
    path = materialise(records, tmp_path)
    bench = load_benchmark(path, tmp_path, shots=1)
    assert [(s.key.endswith(KEY), s.field) for s in bench.skipped] == [(True, field)]
    assert {q.image for q in bench.questions} == set(records) - {bench.skipped[0].key}


def test_unknown_type_allowed_by_flag(tmp_path: Path, official_records: dict) -> None:
    records, _ = _break(official_records, "unknown type")
    path = materialise(records, tmp_path)
    bench = load_benchmark(path, tmp_path, shots=1, strict=True, allow_unknown_types=True)
    assert any(q.task == "Defect Smell" for q in bench.questions)


def test_missing_image_file(tmp_path: Path, official_records: dict) -> None:
    path = materialise(official_records, tmp_path)
    (tmp_path / KEY).unlink()
    with pytest.raises(DataError, match="image file not found") as info:
        load_benchmark(path, tmp_path, shots=1, strict=True)
    assert info.value.key == KEY and info.value.field == "key"


def test_missing_template_file(tmp_path: Path, official_records: dict) -> None:
    path = materialise(official_records, tmp_path)
    (tmp_path / "MVTec-AD/bottle/train/good/017.png").unlink()
    with pytest.raises(DataError, match="template image not found") as info:
        load_benchmark(path, tmp_path, shots=1, strict=True)
    assert info.value.key == KEY and info.value.field == "random_templates[0]"


def test_too_few_templates_for_shots(official_data: Path) -> None:
    bench = load_benchmark(official_data, official_data.parent, shots=2)
    assert {s.key for s in bench.skipped} == {"MVTec-LOCO/breakfast_box/test/good/000.png",
                                              "MVTec-LOCO/breakfast_box/test/logical_anomalies/001.png"}
    assert all("2 shot(s) asked" in s.reason for s in bench.skipped)


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "mmad.json"
    path.write_text('{\n "a/b/c.png": {\n  "conversation": [,]\n }\n}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"invalid JSON at line 3, column 20"):
        load_benchmark(path, tmp_path)


def test_non_utf8_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "mmad.json"
    path.write_bytes(b'{\n "a/b/\xff.png": {}\n}\n')
    with pytest.raises(InputError, match=r"not UTF-8 at line 2, column 7"):
        load_benchmark(path, tmp_path)


def test_question_digest_hashes_canonical_json() -> None:
    """The digest is written by pydantic's serialiser: the same bytes as ``json.dumps`` with sorted keys,
    whatever the text holds (controls, quotes, backslashes, line separators, astral characters)."""
    tricky = ['plain', 'quote " and \\ backslash', "tab\tnew\nline\r\x00\x1f\x7f", "\u2028\u2029\ufeff",
              "caf\u00e9 \u4e2d \U0001f600 \U0010ffff", "</script>&<"]
    for text in tricky:
        item = ConversationItem.model_validate({"Question": text, "Answer": "B", "type": "Defect Analysis",
                                                "Options": {"C": text, "B": "b", "A": text[::-1]}})
        blob = json.dumps(["k/" + text, text, item.options, "B", "Defect Analysis", [text], None], sort_keys=True,
                          ensure_ascii=False, separators=(",", ":"))
        assert question_digest("k/" + text, item, [text], None) == hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_top_level_must_be_object(tmp_path: Path) -> None:
    path = tmp_path / "mmad.json"
    path.write_text(json.dumps([1, 2]), encoding="utf-8")
    with pytest.raises(InputError, match="expected a JSON object"):
        load_benchmark(path, tmp_path)


def test_locate_accepts_file_dir_and_image_root(official_data: Path, tmp_path: Path) -> None:
    assert locate(str(official_data))[1] == official_data.parent.resolve()
    assert locate(str(official_data.parent))[0] == official_data.resolve()
    assert locate(str(official_data), str(tmp_path))[1] == tmp_path.resolve()
    with pytest.raises(InputError, match="--data"):
        locate(str(tmp_path / "nope"))
