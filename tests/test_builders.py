"""``mmeval build mvtec|visa|folders``: benchmarks from labelled images, made from the synthetic benchmark's own
images and masks (so every answer can be checked against what the generator drew)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from byod_trees import folders_tree, mvtec_tree, visa_tree

from mmeval.builders import BuildOptions, build, scan
from mmeval.builders import questions as rules
from mmeval.builders.sources import mark_safe
from mmeval.cli import main
from mmeval.data import load_benchmark
from mmeval.errors import InputError


@pytest.fixture(scope="module")
def trees(synthetic_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("byod-trees")
    return {"syn": synthetic_demo, "mvtec": mvtec_tree(synthetic_demo, root / "mvtec"),
            "visa": visa_tree(synthetic_demo, root / "visa"),
            "folders": folders_tree(synthetic_demo, root / "folders", without_masks=("scratch",))}


def records(out: Path) -> dict[str, Any]:
    return json.loads((out / "mmad.json").read_text(encoding="utf-8"))


def by_type(rec: dict[str, Any], qtype: str) -> dict[str, Any] | None:
    return next((q for q in rec["conversation"] if q["type"] == qtype), None)


def answer(q: dict[str, Any]) -> str:
    return q["Options"][q["Answer"]]


def counts(data: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for rec in data.values():
        for q in rec["conversation"]:
            out[q["type"]] = out.get(q["type"], 0) + 1
    return out


def assert_well_formed(out: Path, data: dict[str, Any]) -> None:
    for key, rec in data.items():
        assert (out / key).is_file()
        prefix = "/".join(key.split("/")[:2])
        if rec["mask_path"]:
            assert (out / prefix / rec["mask_path"]).is_file()
        for tpl in rec["similar_templates"] + rec["random_templates"]:
            assert (out / tpl).is_file() and "/train/good/" in tpl and tpl.startswith(prefix + "/")
        for q in rec["conversation"]:
            texts = [t.lower() for t in q["Options"].values()]
            assert len(set(texts)) == len(texts), q  # distinct options
            assert q["origin"]["method"] in ("rule", "knowledge", "writer")
    loaded = load_benchmark(out / "mmad.json", out, shots=1)
    assert loaded.skipped == [] and len(loaded.questions) == sum(counts(data).values())


# ------------------------------------------------------------------------------------------ MVTec


def test_mvtec_build_asks_what_the_labels_masks_and_names_answer(trees: dict[str, Path], tmp_path: Path) -> None:
    result = build(scan("mvtec", trees["mvtec"], dataset="Parts"), tmp_path / "out")
    data = records(tmp_path / "out")
    truth = json.loads((trees["syn"] / "mmad.json").read_text())
    n_bad = sum("/good/" not in k for k in data)
    assert len(data) == 60 and n_bad == 36
    assert counts(data) == {"Anomaly Detection": 60, "Defect Classification": 36, "Defect Localization": 36,
                            "Object Classification": 24} == {k: v for k, v in result.counts.items() if v}
    for key, rec in data.items():
        source = truth[key.replace("Parts/", "SynthObject/", 1)]
        assert answer(by_type(rec, "Anomaly Detection")) == ("No." if "/good/" in key else "Yes.")
        if "/good/" in key:
            assert answer(by_type(rec, "Object Classification")) == rules.readable(key.split("/")[1])
            assert rec["mask_path"] is None
            continue
        defect = key.split("/")[3]
        assert answer(by_type(rec, "Defect Classification")) == rules.readable(defect)
        # the region the mask gives is the cell the generator placed the defect in
        assert answer(by_type(rec, "Defect Localization")) == answer(by_type(source, "Defect Localization"))
        assert rec["mask_path"] == f"ground_truth/{defect}/{Path(key).stem}_mask.png"
    assert_well_formed(tmp_path / "out", data)
    assert result.skipped == []


def test_similar_templates_rank_by_likeness(trees: dict[str, Path], tmp_path: Path) -> None:
    from mmeval.builders.images import thumbnail

    build(scan("mvtec", trees["mvtec"]), tmp_path / "out", BuildOptions(template_count=16))
    out = tmp_path / "out"
    key, rec = next(iter(records(out).items()))
    query = thumbnail(out / key)[0]
    dist = [float(((thumbnail(out / t)[0] - query) ** 2).mean()) for t in rec["similar_templates"]]
    assert dist == sorted(dist) and len(dist) == 16
    assert sorted(rec["random_templates"]) == sorted(rec["similar_templates"])  # all 16, another order


def test_same_seed_same_bytes_another_seed_other_answers(trees: dict[str, Path], tmp_path: Path) -> None:
    source = scan("mvtec", trees["mvtec"])
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        build(source, tmp_path / name, BuildOptions(seed=seed, link=name != "b"))  # links or copies: same bytes
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a" / "mmad.json").read_bytes() != (tmp_path / "c" / "mmad.json").read_bytes()
    # rebuilding into the same folder replaces it with the same bytes
    before = (tmp_path / "a" / "mmad.json").read_bytes()
    build(source, tmp_path / "a", BuildOptions(seed=0))
    assert (tmp_path / "a" / "mmad.json").read_bytes() == before


def test_what_cannot_be_used_is_reported(trees: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "src"
    shutil.copytree(trees["mvtec"], root)
    (root / "nut" / "test" / "chip" / "999.png").write_bytes(b"not an image")
    (root / "nut" / "ground_truth" / "crack" / "000_mask.png").unlink()
    shutil.copyfile(root / "pcb" / "ground_truth" / "scratch" / "001_mask.png",
                    root / "pcb" / "ground_truth" / "scratch" / "000_mask.png")
    from PIL import Image

    Image.new("L", (64, 32)).save(root / "washer" / "ground_truth" / "notch" / "000_mask.png")
    (root / "empty" / "train" / "good").mkdir(parents=True)
    shutil.copyfile(root / "nut" / "train" / "good" / "000.png", root / "empty" / "train" / "good" / "000.png")
    (root / "no_templates" / "test" / "good").mkdir(parents=True)
    shutil.copyfile(root / "nut" / "test" / "good" / "000.png", root / "no_templates" / "test" / "good" / "000.png")
    result = build(scan("mvtec", root), tmp_path / "out")
    reasons = {(s.what, s.reason.split(" (")[0]) for s in result.skipped}
    assert ("image", "not a readable image") in reasons
    assert ("Defect Localization", "no mask for this defective image") in reasons
    assert ("Defect Localization", "mask: mask is 64x32, the image 128x128") in reasons
    assert ("category", "empty category: no images to ask about") in reasons
    assert any(what == "category" and "no normal template images" in why for what, why in reasons)
    items = {s.item for s in result.skipped}
    assert str(root / "nut" / "test" / "chip" / "999.png") in items
    report = json.loads((tmp_path / "out" / "build_report.json").read_text())
    assert len(report["skipped"]) == len(result.skipped)
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "## Left out" in readme and "no mask for this defective image" in readme
    assert_well_formed(tmp_path / "out", records(tmp_path / "out"))


def test_a_category_with_one_defect_type_gets_no_classification(trees: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "nut"
    shutil.copytree(trees["mvtec"] / "nut", root)
    for defect in ("contamination", "crack", "scratch"):
        shutil.rmtree(root / "test" / defect)
    result = build(scan("mvtec", root), tmp_path / "out")
    assert "Defect Classification" not in counts(records(tmp_path / "out"))
    assert [s.reason for s in result.skipped if s.what == "Defect Classification"] == \
        ["nut has one defect type only: its answer would always be the same"] * 3


# ------------------------------------------------------------------------------------------ localization


def _shares(cells: dict[tuple[int, int], float]) -> np.ndarray:
    out = np.zeros((3, 3))
    for cell, v in cells.items():
        out[cell] = v
    return out


def test_localization_one_region_two_regions_or_none() -> None:
    rng = np.random.default_rng(0)
    item, _ = rules.localization(_shares({(0, 0): 0.9, (0, 1): 0.1}), rng)
    assert item is not None and answer(item) == "Top left."
    assert "Top." not in item["Options"].values()  # a cell the defect touches is never offered
    for _ in range(20):
        item, _ = rules.localization(_shares({(1, 1): 0.5, (1, 2): 0.45, (2, 2): 0.05}), rng)
        assert item is not None and answer(item) == "Center and right."
        assert all(" and " in t for t in item["Options"].values())  # every option names two regions
        assert not any("center" in t.lower() or t.lower().startswith("right") for t in item["Options"].values()
                       if t != "Center and right.")
    item, why = rules.localization(_shares({c: 1 / 9 for c in rules.CELLS}), rng)
    assert item is None and "whole object" in why
    assert rules.localization(np.zeros((3, 3)), rng)[0] is None


def test_readable_names_and_distractors() -> None:
    assert rules.readable("broken_large") == "Broken large." and rules.readable("metal-contamination") == \
        "Metal contamination."
    rng = np.random.default_rng(0)
    item = rules.classification("crack", ["crack", "hole"], rng)
    assert item is not None and answer(item) == "Crack." and "Hole." in item["Options"].values()
    assert len(set(item["Options"].values())) == 4
    assert not any("crack" in t.lower() for t in item["Options"].values() if t != "Crack.")
    assert mark_safe("goodwill") == "Goodwill" and "good" not in mark_safe("not_good_01.png")


# ------------------------------------------------------------------------------------------ VisA, folders


def test_visa_build(trees: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "visa"
    shutil.copytree(trees["visa"], root)
    anno = root / "nut" / "image_anno.csv"
    lines = anno.read_text().splitlines()
    first_bad = next(i for i, ln in enumerate(lines) if "Anomaly" in ln)
    image, label, mask = lines[first_bad].split(",")
    lines[first_bad] = f'{image},"{label},scratch",{mask}'  # two defect types on one image
    anno.write_text("\n".join(lines) + "\n")
    result = build(scan("visa", root, dataset="VisA"), tmp_path / "out")
    data = records(tmp_path / "out")
    assert len(data) == 60 and all(k.startswith("VisA/") for k in data)
    assert all("/test/bad/" in k or "/test/good/" in k for k in data)
    c = counts(data)
    assert c["Defect Classification"] == 35 and c["Defect Localization"] == 36 and c["Object Classification"] == 24
    several = [s for s in result.skipped if s.what == "Defect Classification"]
    assert len(several) == 1 and "several defect types" in several[0].reason
    labels = {answer(q) for rec in data.values() for q in rec["conversation"] if q["type"] == "Defect Classification"}
    assert "Missing component." in labels  # VisA writes "missing component"
    assert_well_formed(tmp_path / "out", data)


def test_visa_without_its_split_file_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "visa").mkdir()
    with pytest.raises(InputError, match="1cls.csv"):
        scan("visa", tmp_path / "visa")


def test_folders_build(trees: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "folders"
    shutil.copytree(trees["folders"], root)
    loose = root / "nut" / "bad" / "mystery.png"
    shutil.copyfile(next((root / "nut" / "bad" / "chip").glob("*.png")), loose)  # a defect of unknown type
    result = build(scan("folders", root, seed=3), tmp_path / "out")
    data = records(tmp_path / "out")
    good = {k for k in data if "/good/" in k}
    templates = {t for rec in data.values() for t in rec["random_templates"]}
    assert good and not (good & templates)  # an image is a template or asked about, never both
    assert len(good) + len({p for p in (tmp_path / "out").rglob("*.png") if "/train/good/" in str(p)}) == 3 * 24
    reasons = [(s.what, s.reason) for s in result.skipped]
    assert reasons.count(("Defect Localization", "no mask for this defective image")) == 9 + 1  # scratch, mystery
    assert ("Defect Classification", "the defect type is not known (no labelled sub-folder or label)") in reasons
    assert_well_formed(tmp_path / "out", data)


def test_folders_need_two_good_images(tmp_path: Path, trees: dict[str, Path]) -> None:
    root = tmp_path / "one"
    (root / "widget" / "good").mkdir(parents=True)
    (root / "widget" / "bad").mkdir(parents=True)
    shutil.copyfile(next((trees["folders"] / "nut" / "good").glob("*.png")), root / "widget" / "good" / "a.png")
    source = scan("folders", root)
    assert source.categories == [] and "at least 2" in source.skipped[0].reason
    with pytest.raises(InputError, match="nothing to build"):
        build(source, tmp_path / "out")


# ------------------------------------------------------------------------------------------ knowledge


def test_descriptive_questions_from_a_knowledge_file(trees: dict[str, Path], tmp_path: Path) -> None:
    kb = json.loads((trees["syn"] / "domain_knowledge.json").read_text())
    for text in kb["SynthObject"]["nut"].values():
        assert "Effect:" not in text
    kb["SynthObject"]["nut"]["chip"] += "\n Effect: It weakens the edge."
    kb["SynthObject"]["nut"]["crack"] += "\n Effect: It can split under load."
    kb["SynthObject"]["nut"]["scratch"] += "\n Effect: It spoils the finish."
    kb["SynthObject"]["nut"]["contamination"] += "\n Effect: It can block the thread."
    path = tmp_path / "kb.json"
    path.write_text(json.dumps(kb))
    result = build(scan("mvtec", trees["mvtec"], dataset="SynthObject"), tmp_path / "out",
                   BuildOptions(knowledge=path))
    data = records(tmp_path / "out")
    c = counts(data)
    assert c["Defect Description"] == 36 and c["Defect Analysis"] == 12  # Effect lines for the nut only
    rec = data["SynthObject/nut/test/chip/000.png"]
    assert answer(by_type(rec, "Defect Analysis")) == "It weakens the edge."
    desc = by_type(rec, "Defect Description")
    assert desc["origin"] == {"method": "knowledge", "file": "kb.json"}
    assert answer(desc).startswith(kb["SynthObject"]["nut"]["chip"].split("Description: ")[1][:30])
    assert sum(s.what == "Defect Analysis" for s in result.skipped) == 24
    assert json.loads((tmp_path / "out" / "domain_knowledge.json").read_text())["SynthObject"]["nut"]["chip"] \
        .endswith("It weakens the edge.")
    assert_well_formed(tmp_path / "out", data)


# ------------------------------------------------------------------------------------------ command line


@pytest.mark.parametrize("layout", ["mvtec", "visa", "folders"])
def test_build_then_run_from_the_command_line(layout: str, trees: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    assert main(["build", layout, str(trees[layout]), "--out", str(out), "--seed", "1"]) == 0
    err = capsys.readouterr().err
    assert "built " in err and "verdict:" in err
    readme = (out / "README.md").read_text()
    for part in ("## Questions", "## Categories", "## Left out", "## Validity check", "verdict:"):
        assert part in readme
    assert (out / "data_check.json").is_file() and (out / "build_report.json").is_file()
    assert main(["run", "--model", "random", "--data", str(out), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert (tmp_path / "run" / "predictions.jsonl").read_text().count("\n") == sum(counts(records(out)).values())
    page = (tmp_path / "run" / "report.html").read_text()
    assert "blind rules average" in page and "data_check.json beside the data" in page  # the build's check shown


def test_command_line_errors_are_exit_2(trees: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["build", "mvtec", str(trees["mvtec"]), "--out", str(other)]) == 2
    assert "holds other files" in capsys.readouterr().err and (other / "notes.txt").read_text() == "mine"
    built = tmp_path / "built"
    assert main(["build", "mvtec", str(trees["mvtec"]), "--out", str(built)]) == 0
    (built / "reports").mkdir()  # something of the user's inside an earlier build: a rebuild keeps off it
    assert main(["build", "mvtec", str(trees["mvtec"]), "--out", str(built)]) == 2
    assert "also holds reports" in capsys.readouterr().err and (built / "reports").is_dir()
    assert main(["build", "mvtec", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert main(["build", "mvtec", str(trees["mvtec"]), "--out", str(tmp_path / "o"), "-W", "base_url=x"]) == 2
    assert main(["build", "mvtec", str(trees["mvtec"]), "--out", str(tmp_path / "o"), "--writer", "hf:x"]) == 2
    assert "openai:MODEL" in capsys.readouterr().err
    assert main(["build", "mvtec", str(trees["mvtec"]), "--out", str(tmp_path / "o"), "--knowledge",
                 str(tmp_path / "none.json")]) == 2


def test_a_deeply_nested_knowledge_file_is_exit_2(trees: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    deep = tmp_path / "kb.json"
    deep.write_text('{"SynthObject": {"nut": {"chip": ' + "[" * 50_000 + "]" * 50_000 + "}}}", encoding="utf-8")
    assert main(["build", "mvtec", str(trees["mvtec"]), "--out", str(tmp_path / "o"), "--knowledge", str(deep)]) == 2
    err = capsys.readouterr().err
    assert f"--knowledge {deep}: JSON nested too deeply" in err and "Traceback" not in err
