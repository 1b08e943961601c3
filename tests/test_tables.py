"""Hugging Face ``datasets`` tables as --data: a save_to_disk directory, parquet files, a hub dataset id.

A table becomes its mmad.json twin: the same questions, ids and relative paths, so a run on the table
gives the same predictions as a run on the mmad.json it was made from.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_hub_server import FakeHub

from mmeval.cli import main
from mmeval.data import load_benchmark, resolve
from mmeval.data.tables import map_columns, parse_columns, parse_options, table_spec, twin_of
from mmeval.errors import InputError

# datasets (and huggingface_hub under it) is imported inside the tests, never at collection: huggingface_hub reads
# HF_HUB_OFFLINE when first imported, and the suite sets it per test
pytestmark = pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="needs datasets (the hub extra)")


@pytest.fixture
def bench(synthetic_demo: Path) -> Path:
    return synthetic_demo


def rows_of(bench: Path, limit: int | None = None) -> dict[str, list[Any]]:
    """One row per question of the benchmark: the query image and mask as bytes, templates as paths."""
    data = json.loads((bench / "mmad.json").read_text())
    cols: dict[str, list[Any]] = {k: [] for k in ("image_path", "image", "question", "options", "answer", "type",
                                                  "mask_path", "mask", "random_templates", "similar_templates")}
    for key, rec in list(data.items())[:limit]:
        prefix = "/".join(key.split("/")[:2])
        for q in rec["conversation"]:
            cols["image_path"].append(key)
            cols["image"].append({"bytes": (bench / key).read_bytes(), "path": None})
            cols["question"].append(q["Question"])
            cols["options"].append(json.dumps(q["Options"]))
            cols["answer"].append(q["Answer"])
            cols["type"].append(q["type"])
            cols["mask_path"].append(rec["mask_path"])
            cols["mask"].append({"bytes": (bench / prefix / rec["mask_path"]).read_bytes(), "path": None}
                                if rec["mask_path"] else None)
            cols["random_templates"].append(rec["random_templates"])
            cols["similar_templates"].append(rec["similar_templates"])
    return cols


def table(cols: dict[str, list[Any]]) -> Any:
    import datasets

    features = {k: datasets.Value("string") for k in cols}
    features.update(image=datasets.Image(), mask=datasets.Image(), random_templates=datasets.List(datasets.Value(
        "string")), similar_templates=datasets.List(datasets.Value("string")))
    return datasets.Dataset.from_dict(cols, features=datasets.Features({k: features[k] for k in cols}))


def _predictions(run: Path) -> list[str]:
    return (run / "predictions.jsonl").read_text().splitlines()


def _run(data: str, out: Path, *extra: str) -> None:
    assert main(["run", "--model", "random", "--data", data, "--out", str(out), "--no-progress", *extra]) == 0


def test_a_table_and_its_mmad_json_twin_give_the_same_predictions(bench: Path, tmp_path: Path) -> None:
    disk = tmp_path / "table"
    table(rows_of(bench)).save_to_disk(str(disk))
    parquet = tmp_path / "table.parquet"
    table(rows_of(bench)).to_parquet(str(parquet))
    _run(str(bench), tmp_path / "from-json")
    _run(str(disk), tmp_path / "from-disk", "--image-root", str(bench))
    _run(str(parquet), tmp_path / "from-parquet", "--image-root", str(bench))
    twin = json.loads((tmp_path / "from-disk" / "run.json").read_text())["config"]["data"]
    _run(twin, tmp_path / "from-twin")
    # the run records the twin it read; a run on the twin file itself is the same run, byte for byte
    assert (tmp_path / "from-twin" / "predictions.jsonl").read_bytes() == \
        (tmp_path / "from-disk" / "predictions.jsonl").read_bytes()
    # the twin holds the original's records: same keys, questions, options, answers, paths
    original = json.loads((bench / "mmad.json").read_text())
    converted = json.loads(Path(twin).read_text())
    assert list(converted) == list(original)
    for key, rec in original.items():
        got = converted[key]
        assert [(q["Question"], q["Options"], q["Answer"], q["type"]) for q in got["conversation"]] == \
            [(q["Question"], q["Options"], q["Answer"], q["type"]) for q in rec["conversation"]]
        assert got["mask_path"] == rec["mask_path"]
        assert got["random_templates"] == rec["random_templates"]
    # against the original mmad.json every line matches except the config digest, which names the data file
    for name in ("from-disk", "from-parquet"):
        lines = [json.loads(x) for x in _predictions(tmp_path / name)]
        ref = [json.loads(x) for x in _predictions(tmp_path / "from-json")]
        assert len(lines) == len(ref) > 500
        assert [{k: v for k, v in p.items() if k != "config"} for p in lines] == \
            [{k: v for k, v in p.items() if k != "config"} for p in ref]


def test_the_twin_is_built_once(bench: Path, tmp_path: Path) -> None:
    disk = tmp_path / "table"
    table(rows_of(bench, 6)).save_to_disk(str(disk))
    first = twin_of(str(disk), image_root=str(bench))
    stamp = first.stat().st_mtime_ns
    assert twin_of(str(disk), image_root=str(bench)) == first and first.stat().st_mtime_ns == stamp
    loaded = load_benchmark(first, first.parent, shots=1)
    assert loaded.skipped == [] and len(loaded.questions) == sum(len(v["conversation"]) for v in json.loads(
        first.read_text()).values())


def test_an_edited_row_is_asked_again_as_in_an_mmad_json(bench: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The run on a table resumes after an edit, as on an mmad.json: same config, the changed question asked
    again, every other prediction kept."""
    from mmeval.predictions import read_predictions

    cols = rows_of(bench, 4)
    disk = tmp_path / "table"
    table(cols).save_to_disk(str(disk))
    out = tmp_path / "run"
    _run(str(disk), out, "--image-root", str(bench), "--no-shuffle")
    first = {p.id: p for p in read_predictions(out / "predictions.jsonl")}
    options = json.loads(cols["options"][1])
    cols["answer"][1] = next(letter for letter in options if letter != cols["answer"][1])
    shutil.rmtree(disk)
    table(cols).save_to_disk(str(disk))
    capsys.readouterr()
    _run(str(disk), out, "--image-root", str(bench), "--no-shuffle")
    err = capsys.readouterr().err
    assert "the data changed" in err and "1 question(s) asked again" in err
    second = {p.id: p for p in read_predictions(out / "predictions.jsonl")}
    edited = f"{cols['image_path'][1]}#1"
    assert set(second) == set(first) and second[edited].answer == cols["answer"][1] != first[edited].answer
    assert all(second[i] == first[i] for i in second if i != edited)


def test_other_column_names_are_mapped_with_columns(bench: Path, tmp_path: Path) -> None:
    cols = rows_of(bench, 4)
    renamed = {"file": cols["image_path"], "picture": cols["image"], "q": cols["question"],
               "choices": [list(json.loads(o).values()) for o in cols["options"]],
               "label": [json.loads(o)[a] for o, a in zip(cols["options"], cols["answer"], strict=True)],
               "kind": cols["type"]}
    import datasets

    ds = datasets.Dataset.from_dict(renamed).cast_column("picture", datasets.Image())
    ds.save_to_disk(str(tmp_path / "t"))
    with pytest.raises(InputError) as info:
        resolve(str(tmp_path / "t"))
    text = str(info.value)
    assert "no column for question, answer, type, image" in text and "file, picture, q, choices" in text
    columns = parse_columns("key=file,image=picture,question=q,options=choices,answer=label,type=kind")
    json_path, root = resolve(str(tmp_path / "t"), columns=columns)
    loaded = load_benchmark(json_path, root, shots=0)
    assert loaded.skipped == [] and len(loaded.questions) == len(cols["question"])
    q = loaded.questions[0]
    assert q.options[q.answer] == renamed["label"][0]  # an answer given as option text finds its letter
    assert (root / q.image).read_bytes() == (bench / q.image).read_bytes()
    with pytest.raises(InputError, match="no column 'nope'"):
        resolve(str(tmp_path / "t"), columns={"question": "nope"})
    with pytest.raises(InputError, match="unknown field"):
        parse_columns("colour=q")
    with pytest.raises(InputError, match="not a table"):
        resolve(str(bench), columns={"question": "q"})


def test_data_check_and_a_config_file_read_tables_too(bench: Path, tmp_path: Path) -> None:
    cols = rows_of(bench, 6)
    renamed = {("q" if k == "question" else k): v for k, v in cols.items()}
    table(renamed).save_to_disk(str(tmp_path / "t"))
    assert main(["data", "check", str(tmp_path / "t"), "--columns", "question=q", "--image-root", str(bench),
                 "--out", str(tmp_path / "chk")]) == 0
    assert json.loads((tmp_path / "chk" / "data_check.json").read_text())["questions"] == len(cols["question"])
    config = tmp_path / "run.yaml"
    config.write_text(f"model: random\ndata: {tmp_path / 't'}\nimage_root: {bench}\ncolumns: {{question: q}}\n")
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert len(_predictions(tmp_path / "run")) == len(cols["question"])


def test_rows_that_cannot_be_read_are_left_out_and_listed(bench: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cols = rows_of(bench, 3)
    cols["answer"][1] = "Z"
    cols["options"][2] = "not options"
    table(cols).save_to_disk(str(tmp_path / "t"))
    json_path = twin_of(str(tmp_path / "t"), image_root=str(bench))
    skipped = json.loads((json_path.parent / "conversion_skipped.json").read_text())
    assert [s["row"] for s in skipped] == ["1", "2"]
    assert "'Z' is neither an option letter" in skipped[0]["reason"]
    assert "2 row(s)" in capsys.readouterr().err


@pytest.mark.parametrize("fault", ["truncated", "other-columns"])
def test_a_bad_parquet_shard_is_named(bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      fault: str) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    table(rows_of(bench, 2)).to_parquet(str(shards / "part-0.parquet"))
    bad = shards / "part-1.parquet"
    if fault == "truncated":
        table(rows_of(bench, 2)).to_parquet(str(bad))
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    else:
        cols = rows_of(bench, 2)
        cols["task"] = cols.pop("type")
        table(cols).to_parquet(str(bad))
    assert main(["run", "--model", "random", "--data", str(shards), "--image-root", str(bench), "--out",
                 str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: " in err and "Traceback" not in err
    assert ("truncated" in err) if fault == "truncated" else ("missing: type" in err and "extra: task" in err)


@pytest.mark.parametrize("column,value,reason", [
    ("type", None, "type: empty"),
    ("options", '{"A": "Yes.", "B": null}', "needs at least 2 options"),
    ("random_templates", None, None),  # the image's other rows list its templates
])
def test_a_null_cell_loses_only_its_row(bench: Path, tmp_path: Path, column: str, value: Any,
                                        reason: str | None) -> None:
    cols = rows_of(bench, 3)
    cols[column][0] = value
    cols["answer"][0] = "A"
    table(cols).save_to_disk(str(tmp_path / "t"))
    json_path = twin_of(str(tmp_path / "t"), image_root=str(bench))
    skipped = json.loads((json_path.parent / "conversion_skipped.json").read_text())
    loaded = load_benchmark(json_path, json_path.parent, shots=1)
    assert loaded.skipped == []  # the image's record is kept ...
    lost = 0 if reason is None else 1
    assert len(loaded.questions) == len(cols["question"]) - lost  # ... with every question but the bad row's
    assert [s["row"] for s in skipped] == ["0"] * lost
    if reason:
        assert reason in skipped[0]["reason"]
    first = json.loads(json_path.read_text())[cols["image_path"][0]]
    assert first["random_templates"] == cols["random_templates"][1]


@pytest.mark.parametrize("linked", ["image", "template"])
def test_a_link_out_of_the_image_root_is_refused_as_in_an_mmad_json(bench: Path, tmp_path: Path,
                                                                     linked: str) -> None:
    """Path-given images go through the rule mmad.json paths meet: a symbolic link that leads out of the root
    is refused (never followed, never linked into the twin), with the same reason."""
    from conftest import write_png

    root = tmp_path / "root"
    shutil.copytree(bench, root)
    records = json.loads((root / "mmad.json").read_text())
    victim = list(records)[1]
    rel = victim if linked == "image" else records[victim]["random_templates"][0]
    secret = tmp_path / "outside" / "secret.png"
    write_png(secret, 99)
    (root / rel).unlink()
    (root / rel).symlink_to(secret)
    cols = rows_of(bench, 3)
    del cols["image"], cols["mask"]  # images, templates and masks given by their paths under --image-root
    table(cols).save_to_disk(str(tmp_path / "t"))
    json_path = twin_of(str(tmp_path / "t"), image_root=str(root))
    skipped = json.loads((json_path.parent / "conversion_skipped.json").read_text())
    victim_rows = {str(i) for i, key in enumerate(cols["image_path"]) if key == victim}
    assert victim_rows <= {s["row"] for s in skipped}
    reasons = {s["reason"] for s in skipped if s["row"] in victim_rows}
    assert all("leads outside the data root" in r for r in reasons), reasons
    secret_id = (secret.stat().st_dev, secret.stat().st_ino)
    twin_files = [p for p in json_path.parent.rglob("*") if p.is_file()]
    assert not any((p.stat().st_dev, p.stat().st_ino) == secret_id for p in twin_files)
    assert not any(p.read_bytes() == secret.read_bytes() for p in twin_files)
    # the mmad.json of the same records refuses the same path for the same reason
    (root / "first3.json").write_text(json.dumps(dict(list(records.items())[:3])))
    loaded = load_benchmark(root / "first3.json", root, shots=1)
    refused = {s.key: s.reason for s in loaded.skipped}  # (a template may serve other records too)
    assert victim in refused and "leads outside the data root" in refused[victim]


def test_options_in_every_shape() -> None:
    want = {"A": "Yes.", "B": "No."}
    assert parse_options({"A": "Yes.", "B": "No.", "C": None}) == want
    assert parse_options(["Yes.", "No."]) == want
    assert parse_options('{"A": "Yes.", "B": "No."}') == want
    assert parse_options("A: Yes.\nB: No.") == want  # MMAD's metadata.csv
    assert parse_options("A. Yes.\nB. No.") == want


def test_specs(tmp_path: Path, bench: Path) -> None:
    assert table_spec(str(bench)) is None  # a folder with an mmad.json is not a table
    assert table_spec("synthetic") is None and table_spec("mmad") is None
    spec = table_spec("hf:team/parts@v1:test")
    assert spec is not None
    assert (spec.kind, spec.target, spec.revision, spec.split) == ("hub", "team/parts", "v1", "test")
    with pytest.raises(InputError, match="hf:OWNER/NAME"):
        table_spec("hf:nothing")
    assert map_columns(["image", "question", "options", "answer", "type"], {})["image"] == "image"


@pytest.mark.slow
def test_a_hub_dataset_id(bench: Path, tmp_path: Path) -> None:
    """``--data hf:OWNER/NAME``: datasets.load_dataset from the hub (a local one here), then a normal run."""
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    cols = rows_of(bench, 8)
    table(cols).to_parquet(str(repo / "data" / "test-00000-of-00001.parquet"))
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "MMEVAL_HOME": str(tmp_path / "home")}
    with FakeHub({"team/parts": repo}) as h:
        env["HF_ENDPOINT"] = h.url
        done = subprocess.run([sys.executable, "-m", "mmeval", "run", "--model", "random", "--data", "hf:team/parts",
                               "--image-root", str(bench), "--out", str(tmp_path / "run"), "--no-progress"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(_predictions(tmp_path / "run")) == len(cols["question"])
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert "/tables/parts-" in record["config"]["data"]
