"""The bundled synthetic benchmark: deterministic, MMAD-shaped, loadable, and internally consistent."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmeval import tasks as task_registry
from mmeval.data import load_benchmark
from mmeval.data.synthetic.generator import (
    CATEGORIES,
    DEFECTS,
    PAINTERS,
    REGION_NAMES,
    RENDERERS,
    build_synthetic,
    region_of,
)

KEY = re.compile(r"^(Synth\w+)/(\w+)/test/(\w+)/(\d{3})\.png$")
NORMAL_TYPES = ["Anomaly Detection", "Object Classification", "Object Structure", "Object Details"]
DEFECT_TYPES = ["Anomaly Detection", "Defect Classification", "Defect Localization", "Defect Description",
                "Defect Analysis"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("synthetic")
    start = time.perf_counter()
    path = build_synthetic(out, seed=0)
    return path, time.perf_counter() - start


@pytest.fixture(scope="module")
def records(built: tuple[Path, float]) -> dict:
    return json.loads(built[0].read_text(encoding="utf-8"))


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_returns_mmad_json_and_is_fast(built: tuple[Path, float]) -> None:
    path, seconds = built
    assert path.name == "mmad.json" and path.is_file()
    assert (path.parent / "README.md").read_text(encoding="utf-8").startswith("# Synthetic")
    assert "seed 0" in (path.parent / "README.md").read_text(encoding="utf-8")
    assert seconds < 30, f"building took {seconds:.1f} s"


def test_same_seed_gives_identical_bytes(built: tuple[Path, float], tmp_path: Path) -> None:
    first = _files(built[0].parent)
    build_synthetic(tmp_path / "again", seed=0, progress=True)  # the progress bar must not change the output
    second = _files(tmp_path / "again")
    assert sorted(first) == sorted(second)
    differing = [name for name in first if first[name] != second[name]]
    assert differing == []
    assert len([n for n in first if n.endswith(".png")]) > 100


def test_different_seed_differs(built: tuple[Path, float], tmp_path: Path) -> None:
    root0 = built[0].parent
    build_synthetic(tmp_path / "s1", seed=1)
    assert (tmp_path / "s1/mmad.json").read_bytes() != built[0].read_bytes()
    for rel in ("SynthTexture/carpet/test/good/000.png", "SynthObject/pcb/train/good/000.png"):
        a = np.asarray(Image.open(root0 / rel), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "s1" / rel), dtype=np.int16)
        assert np.abs(a - b).mean() > 1.0, rel


@pytest.mark.parametrize("templates", ["random", "similar"])
def test_loads_strictly_with_all_tasks(built: tuple[Path, float], records: dict, templates: str) -> None:
    path = built[0]
    bench = load_benchmark(path, path.parent, shots=2, templates=templates, strict=True)
    assert not bench.skipped
    assert len(bench.questions) == sum(len(r["conversation"]) for r in records.values())
    assert 300 <= len(bench.questions) <= 1000
    tasks = {task_registry.resolve(q.type_label).name for q in bench.questions}
    assert tasks == set(task_registry.task_names()) and len(tasks) == 7
    for q in bench.questions:
        assert len(q.template_paths) == 2 and all(Path(t).is_file() for t in q.template_paths)
        assert q.is_normal == ("/good/" in q.image)
        assert (q.mask_path is None) == q.is_normal
    four = load_benchmark(path, path.parent, shots=4, templates=templates, strict=True)
    assert not four.skipped and len(four.questions) == len(bench.questions)


def test_layout_and_counts(built: tuple[Path, float], records: dict) -> None:
    root = built[0].parent
    per_cat: dict[tuple[str, str], Counter] = {}
    for key, rec in records.items():
        m = KEY.match(key)
        assert m, key
        ds, cat, defect, _ = m.groups()
        assert rec["image_path"] == key.split("/", 2)[2]
        per_cat.setdefault((ds, cat), Counter())[defect] += 1
        for name in ("similar_templates", "random_templates"):
            tpl = rec[name]
            assert len(tpl) == 4 and len(set(tpl)) == 4
            assert all(t.startswith(f"{ds}/{cat}/train/good/") and (root / t).is_file() for t in tpl)
    datasets = Counter(ds for ds, _ in per_cat)
    assert set(datasets) == {"SynthTexture", "SynthObject"} and min(datasets.values()) >= 2
    assert len(per_cat) >= 4
    for (ds, cat), counts in per_cat.items():
        defects = [d for d in counts if d != "good"]
        assert len(defects) >= 3, (cat, defects)
        assert 6 <= counts["good"] <= 10
        assert 10 <= sum(counts[d] for d in defects) <= 14
        assert len(list((root / ds / cat / "train/good").glob("*.png"))) >= 4


def test_similar_templates_are_the_closest(built: tuple[Path, float], records: dict) -> None:
    root = built[0].parent

    def thumb(rel: str) -> np.ndarray:  # channel mean, 4x4 block mean: the documented similarity measure
        g = np.asarray(Image.open(root / rel).convert("RGB"), dtype=np.float64).mean(axis=2)
        h, w = g.shape
        return g.reshape(32, h // 32, 32, w // 32).mean(axis=(1, 3))

    checked = 0
    for key, rec in list(records.items())[::9]:
        ds, cat = key.split("/")[:2]
        pool = sorted(p.relative_to(root).as_posix() for p in (root / ds / cat / "train/good").glob("*.png"))
        q = thumb(key)
        mse = {p: ((thumb(p) - q) ** 2).mean() for p in pool}
        listed = rec["similar_templates"]
        unlisted = [p for p in pool if p not in listed]
        assert max(mse[p] for p in listed) <= min(mse[p] for p in unlisted) + 1e-6, key
        checked += 1
    assert checked >= 10


def test_questions_match_the_image(records: dict) -> None:
    labels = {c.name: c.label for c in CATEGORIES}
    for key, rec in records.items():
        cat = key.split("/")[1]
        conv = rec["conversation"]
        types = [q["type"] for q in conv]
        normal = "/good/" in key
        assert types == (NORMAL_TYPES if normal else DEFECT_TYPES), key
        for q in conv:
            assert q["annotation"] is True
            assert q["Answer"] in q["Options"]
            assert len(set(q["Options"].values())) == len(q["Options"]), q
            assert list(q["Options"]) == list("ABCDE"[: len(q["Options"])])
            n = len(q["Options"])
            assert n == 2 if q["type"] == "Anomaly Detection" else n in (4, 5)
        ad = conv[0]
        assert set(ad["Options"].values()) == {"Yes.", "No."}
        assert ad["Options"][ad["Answer"]] == ("No." if normal else "Yes.")
        assert ad["Question"] == "Is there any defect in the object?"
        if normal:
            assert rec["mask_path"] == ""
            oc = conv[1]
            assert oc["Options"][oc["Answer"]] == labels[cat]
            assert all(t in labels.values() for t in oc["Options"].values())
        else:
            defect = key.split("/")[3]
            dc, dl, dd, da = conv[1:]
            assert dc["Question"] == "There is a defect in the object. What is the type of the defect?"
            assert dc["Options"][dc["Answer"]] == DEFECTS[defect].label
            assert dd["Options"][dd["Answer"]] == DEFECTS[defect].appearance
            assert da["Options"][da["Answer"]] == DEFECTS[defect].effect
            assert dl["Question"] == "There is a defect in the object. Where is the defect?"
            assert all(t.rstrip(".") in REGION_NAMES and t.endswith(".") for t in dl["Options"].values())


def test_answer_letters_are_balanced(records: dict) -> None:
    by_n: dict[int, Counter] = {}
    for rec in records.values():
        for q in rec["conversation"]:
            by_n.setdefault(len(q["Options"]), Counter())[q["Answer"]] += 1
    assert 1 <= sum(by_n.get(5, Counter()).values()) <= 2  # the A-E path is exercised, rarely
    for n in (2, 4):
        counts = by_n[n]
        total = sum(counts.values())
        assert set(counts) == set("ABCD"[:n])
        for letter, c in counts.items():
            assert abs(c / total - 1 / n) < 0.05, (n, letter, counts)


def test_masks_match_images_and_localization(built: tuple[Path, float], records: dict) -> None:
    root = built[0].parent
    n = 0
    for key, rec in records.items():
        if "/good/" in key:
            continue
        ds, cat, _, defect, name = key.split("/")
        assert rec["mask_path"] == f"ground_truth/{defect}/{name[:-4]}_mask.png"
        mask_img = Image.open(root / ds / cat / rec["mask_path"])
        img = Image.open(root / key)
        assert mask_img.mode == "L" and img.mode == "RGB" and mask_img.size == img.size
        mask = np.asarray(mask_img)
        assert set(np.unique(mask)) == {0, 255}
        area = (mask > 0).mean()
        assert 0.004 <= area <= 0.07, (key, area)
        dl = rec["conversation"][2]
        assert dl["Options"][dl["Answer"]] == region_of(mask > 0) + "."
        n += 1
    assert n >= 48


@pytest.mark.parametrize("cat", CATEGORIES, ids=lambda c: c.name)
def test_defects_change_the_image_inside_their_masks(cat) -> None:
    """A mask marks where the picture departs from the normal scene it was painted on, and little else."""
    for defect in cat.defects:
        for i in range(4):
            rng = np.random.default_rng([11, i])
            scene = RENDERERS[cat.name](rng)
            img, mask = PAINTERS[defect](scene, rng)
            assert img.shape == scene.image.shape and mask.shape == img.shape[:2] and mask.dtype == bool
            changed = np.abs(img - scene.image).max(axis=2) > 6
            assert changed[mask].mean() > 0.15, (cat.name, defect, i)  # the defect is visible in its mask
            leak = (changed & ~mask).sum() / max(changed.sum(), 1)
            assert leak < 0.25, (cat.name, defect, i, leak)  # and hardly anywhere else


def test_normal_images_vary(built: tuple[Path, float]) -> None:
    root = built[0].parent
    for cat in CATEGORIES:
        imgs = [np.asarray(Image.open(p), dtype=np.float64)
                for p in sorted((root / cat.dataset / cat.name / "test/good").glob("*.png"))[:3]]
        diffs = [np.abs(imgs[i] - imgs[j]).mean() for i in range(3) for j in range(i + 1, 3)]
        assert min(diffs) > 2.0, (cat.name, diffs)


def test_total_size(built: tuple[Path, float]) -> None:
    root = built[0].parent
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024, total


def test_domain_knowledge_shape(built: tuple[Path, float], records: dict) -> None:
    root = built[0].parent
    dk = json.loads((root / "domain_knowledge.json").read_text(encoding="utf-8"))
    expected: dict[str, dict[str, set[str]]] = {}
    for key in records:
        ds, cat, _, defect = key.split("/")[:4]
        expected.setdefault(ds, {}).setdefault(cat, set()).add(defect)
    assert set(dk) == set(expected)
    for ds, cats in expected.items():
        assert set(dk[ds]) == set(cats)
        for cat, defects in cats.items():
            assert set(dk[ds][cat]) == defects
            assert dk[ds][cat]["good"].startswith(" <Normal Characteristics>\n Description: ")
            for text in dk[ds][cat].values():
                assert re.match(r"^ <[^>]+>\n Description: \S", text) and len(text) > 80
                assert "{p}" not in text
