"""The bundled synthetic benchmark: deterministic, MMAD-shaped, loadable, internally consistent, and built
so that only looking answers it (answer positions, distractors, cells; the blind-rule check itself is in
test_fair_ruler.py)."""

from __future__ import annotations

import json
import re
import time
import typing
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from mmeval import tasks as task_registry
from mmeval.data import load_benchmark
from mmeval.data.synthetic import board
from mmeval.data.synthetic.catalogue import DEFECTS, PRODUCTS, Product
from mmeval.data.synthetic.generator import RENDER, build_synthetic, thumbnail
from mmeval.data.synthetic.painting import MIN_CONTRAST, PAINTERS, contrast, paint
from mmeval.data.synthetic.questions import region_option
from mmeval.data.synthetic.scales import SCALES
from mmeval.regions import cell_of, option_region

KEY = re.compile(r"^(Synth\w+)/(\w+)/test/(\w+)/(\d{3})\.png$")
NORMAL_TYPES = ["Anomaly Detection", "Object Classification", "Object Structure", "Object Details"]
DEFECT_TYPES = ["Anomaly Detection", "Defect Classification", "Defect Localization", "Defect Description",
                "Defect Analysis"]
DEMO = SCALES["demo"]
BY_NAME = {p.name: p for p in PRODUCTS}
SHADED = {"scratch", "hole", "stain", "crack", "cut", "thread", "contamination"}  # painted, not removed or moved


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


def _questions(records: dict, qtype: str) -> list[tuple[str, dict]]:
    return [(key, q) for key, rec in records.items() for q in rec["conversation"] if q["type"] == qtype]


def test_returns_mmad_json_and_is_fast(built: tuple[Path, float]) -> None:
    path, seconds = built
    assert path.name == "mmad.json" and path.is_file()
    readme = (path.parent / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# Synthetic") and "seed 0" in readme and "`demo` scale" in readme
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
    # one type per role of MMAD's question types (a task file without a role is not the generator's to ask)
    assert tasks == {t.name for t in task_registry.all_tasks() if t.role != "other"}
    assert len(tasks) == len(typing.get_args(task_registry.Role)) - 1
    for q in bench.questions:
        assert len(q.template_paths) == 2 and all(Path(t).is_file() for t in q.template_paths)
        assert q.is_normal == ("/good/" in q.image)
        assert (q.mask_path is None) == q.is_normal
    four = load_benchmark(path, path.parent, shots=4, templates=templates, strict=True)
    assert not four.skipped and len(four.questions) == len(bench.questions)


def test_layout_and_counts(built: tuple[Path, float], records: dict) -> None:
    """Every variant and every defect type equally often, per product: the answers' balance comes from here."""
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
    assert {(p.dataset, p.name) for p in PRODUCTS} == set(per_cat)
    for (ds, cat), counts in per_cat.items():
        assert counts["good"] == 4 * DEMO.normal
        assert {d: n for d, n in counts.items() if d != "good"} == {d: DEMO.defective for d in BY_NAME[cat].defects}
        assert len(list((root / ds / cat / "train/good").glob("*.png"))) == 4 * DEMO.templates


def test_template_lists_hold_the_images_own_variant(built: tuple[Path, float], records: dict) -> None:
    """Both lists name the same templates (the variant's), the similar list closest first by thumbnail."""
    root = built[0].parent

    def thumb(rel: str) -> np.ndarray:
        return thumbnail(np.asarray(Image.open(root / rel).convert("RGB")))

    for key, rec in list(records.items())[::7]:
        assert set(rec["similar_templates"]) == set(rec["random_templates"]), key
        q = thumb(key)
        mse = [((thumb(p) - q) ** 2).mean() for p in rec["similar_templates"]]
        assert mse == sorted(mse), key
    # an image's colour is its variant's: the listed templates look like it, the other variants' do not
    for key, rec in records.items():
        if "/pcb/test/good/" not in key:
            continue
        mean = np.asarray(Image.open(root / key), dtype=float).mean(axis=(0, 1))
        listed = [np.asarray(Image.open(root / t), dtype=float).mean(axis=(0, 1)) for t in rec["random_templates"]]
        assert max(np.abs(m - mean).max() for m in listed) < 20, key


def test_questions_match_the_image(records: dict) -> None:
    labels = {p.name: p.label for p in PRODUCTS}
    for key, rec in records.items():
        product = BY_NAME[key.split("/")[1]]
        conv = rec["conversation"]
        normal = "/good/" in key
        assert [q["type"] for q in conv] == (NORMAL_TYPES if normal else DEFECT_TYPES), key
        for q in conv:
            assert q["annotation"] is True and q["Answer"] in q["Options"]
            assert len(set(q["Options"].values())) == len(q["Options"]), q
            assert list(q["Options"]) == list("ABCD"[: len(q["Options"])])
            assert len(q["Options"]) == (2 if q["type"] == "Anomaly Detection" else 4)
        ad = conv[0]
        assert set(ad["Options"].values()) == {"Yes.", "No."}
        assert ad["Options"][ad["Answer"]] == ("No." if normal else "Yes.")
        if normal:
            assert rec["mask_path"] == ""
            oc = conv[1]
            assert oc["Options"][oc["Answer"]] == labels[product.name]
            assert all(t in labels.values() for t in oc["Options"].values())
            _check_object_analysis(product, conv[2], conv[3])
        else:
            _check_defect_questions(product, key.split("/")[3], conv[1:])


def _check_object_analysis(product: Product, structure: dict, colour: dict) -> None:
    """The four answers of the attribute on offer; the product never named in the question."""
    for q, attr in ((structure, product.structure), (colour, product.colour)):
        assert set(q["Options"].values()) == set(attr.answers), q
        words = set(re.findall(r"[a-z]+", q["Question"].lower()))
        names = {product.name, product.noun, *re.findall(r"[a-z]+", product.label.lower())}
        assert not words & names, q["Question"]


def _check_defect_questions(product: Product, defect: str, questions: list[dict]) -> None:
    dc, dl, dd, da = questions
    assert dc["Question"] == "There is a defect in the object. What is the type of the defect?"
    assert dl["Question"] == "There is a defect in the object. Where is the defect?"
    kind = DEFECTS[defect]
    assert (dc["Options"][dc["Answer"]], dd["Options"][dd["Answer"]], da["Options"][da["Answer"]]) == (
        kind.label, kind.appearance, kind.effect)
    # distractors are the product's own defects, one set shared by the three questions
    offered = [{d for d in product.defects for v in q["Options"].values() if getattr(DEFECTS[d], field) == v}
               for q, field in ((dc, "label"), (dd, "appearance"), (da, "effect"))]
    assert offered[0] == offered[1] == offered[2] and len(offered[0]) == 4
    assert all(option_region(t) is not None and t.endswith(".") for t in dl["Options"].values())


def test_every_option_text_is_right_somewhere(records: dict) -> None:
    """No option is a dead giveaway: within a product, every text offered is somewhere the answer.

    (Regions are pooled over products: a product has fewer defective images than there are cells.)
    """
    offered: dict[tuple[str, str], set[str]] = {}
    right: dict[tuple[str, str], set[str]] = {}
    for key, rec in records.items():
        for q in rec["conversation"]:
            slot = ("all" if q["type"] == "Defect Localization" else key.split("/")[1], q["type"])
            offered.setdefault(slot, set()).update(q["Options"].values())
            right.setdefault(slot, set()).add(q["Options"][q["Answer"]])
    for slot, texts in offered.items():
        if slot[1] != "Object Classification":  # its distractors are other products' labels
            assert texts == right[slot], slot


def test_answer_positions_are_balanced_and_drawn_independently(records: dict) -> None:
    letters: dict[int, list[str]] = {}
    for rec in records.values():
        for q in rec["conversation"]:
            letters.setdefault(len(q["Options"]), []).append(q["Answer"])
    for n, seq in letters.items():
        counts = Counter(seq)
        assert set(counts) == set("ABCD"[:n])
        assert stats.chisquare([counts[k] for k in "ABCD"[:n]]).pvalue > 0.001, (n, counts)
    # drawn one by one, consecutive 4-option answers repeat a quarter of the time (dealt from decks, rarely)
    four = letters[4]
    repeats = np.mean([a == b for a, b in zip(four, four[1:], strict=False)])
    assert 0.17 <= repeats <= 0.33, repeats


def test_masks_match_images_and_localization(built: tuple[Path, float], records: dict) -> None:
    root = built[0].parent
    cells = Counter()
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
        assert 0.004 <= (mask > 0).mean() <= 0.07, key
        ys, xs = np.nonzero(mask)
        cell = cell_of(ys.mean() + 0.5, xs.mean() + 0.5, *mask.shape)
        dl = rec["conversation"][2]
        assert dl["Options"][dl["Answer"]] == region_option(cell)
        cells[cell] += 1
    assert sum(cells.values()) == 6 * 4 * DEMO.defective
    assert len(cells) >= 8  # drawn uniformly: with 72 draws every cell but at most one turns up


@pytest.mark.parametrize("product", PRODUCTS, ids=lambda p: p.name)
def test_defects_are_visible_in_their_cell_and_nowhere_else(product: Product) -> None:
    """A mask marks where the picture departs from the normal scene, visibly, inside the cell asked for."""
    for defect in product.defects:
        for i, cell in enumerate(((0, 0), (1, 1), (2, 2), (0, 1), (2, 0))):
            rng = np.random.default_rng([11, i])
            variant = i % 4
            scene = RENDER[product.name](variant, rng)
            img, mask = paint(lambda s=scene: s, defect, cell, rng)
            assert img.shape == scene.image.shape and mask.shape == img.shape[:2] and mask.dtype == bool
            ys, xs = np.nonzero(mask)
            assert cell_of(ys.mean() + 0.5, xs.mean() + 0.5, *mask.shape) == cell, (product.name, defect, cell)
            assert contrast(scene.image, img, mask) >= MIN_CONTRAST, (product.name, defect, i)
            changed = np.abs(img - scene.image).max(axis=2) > 6
            leak = (changed & ~mask).sum() / max(changed.sum(), 1)
            assert leak < 0.25, (product.name, defect, i, leak)


def test_defects_use_the_products_own_palette() -> None:
    """Defect pixels are shades of the product's colour (or what lies beneath), not foreign colours."""
    for product in PRODUCTS:
        for variant in range(4):
            rng = np.random.default_rng([5, variant])
            scene = RENDER[product.name](variant, rng)
            for defect in product.defects:
                if defect not in SHADED:  # parts of the board, broken-off pieces: no paint at all
                    continue
                img, mask = PAINTERS[defect](scene, rng, (1, 1))
                hue = scene.colour / scene.colour.sum()
                px = img[mask & (np.abs(img - scene.image).max(axis=2) > 20)]
                chroma = px / np.maximum(px.sum(axis=1, keepdims=True), 1)
                assert np.abs(chroma - hue).max(axis=1).mean() < 0.08, (product.name, variant, defect)


def test_normal_images_vary(built: tuple[Path, float]) -> None:
    root = built[0].parent
    for product in PRODUCTS:
        imgs = [np.asarray(Image.open(p), dtype=np.float64)
                for p in sorted((root / product.dataset / product.name / "test/good").glob("*.png"))[:3]]
        diffs = [np.abs(imgs[i] - imgs[j]).mean() for i in range(3) for j in range(i + 1, 3)]
        assert min(diffs) > 2.0, (product.name, diffs)


def test_board_layouts_put_each_part_in_each_slot_once() -> None:
    for slot in range(9):
        assert sorted(board.kind_at(slot, layout) for layout in range(4)) == sorted(board.KINDS)


def test_total_size(built: tuple[Path, float]) -> None:
    root = built[0].parent
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 6 * 1024 * 1024, total


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
