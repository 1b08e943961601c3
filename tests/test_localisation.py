"""The report's localisation section: maps from a model or from the agent boost, scored against the masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmeval.predictions import Prediction
from mmeval.report import analysis
from mmeval.report.analysis import anomaly_maps as loc_module
from mmeval.report.analysis import localisation, masks_of

W, H = 40, 30  # a landscape image, so borders matter
DEFECT = (slice(10, 20), slice(2, 12))  # rows, cols of the defect in the anomalous images (touches the left border)


def dataset(root: Path) -> tuple[Path, dict[str, bool]]:
    """Two defective and two normal images, with masks, in the mmad.json layout; image key -> is normal."""
    records, images = {}, {}
    for name, normal in (("crack/000.png", False), ("crack/001.png", False), ("good/000.png", True),
                         ("good/001.png", True)):
        key = f"Toy/part/test/{name}"
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H), (128, 128, 128)).save(root / key)
        mask_rel = ""
        if not normal:
            mask = np.zeros((H, W), dtype=np.uint8)
            mask[DEFECT] = 255
            mask_rel = f"ground_truth/{name.replace('.png', '_mask.png')}"
            (root / "Toy/part" / mask_rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask).save(root / "Toy/part" / mask_rel)
        records[key] = {"conversation": [{"Question": "Is there any defect?", "Answer": "B" if normal else "A",
                                          "Options": {"A": "Yes.", "B": "No."}, "type": "Anomaly Detection"}],
                        "mask_path": mask_rel, "random_templates": [], "similar_templates": []}
        images[key] = normal
    path = root / "mmad.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path, images


def pred(image: str, normal: bool, **extra: object) -> Prediction:
    return Prediction(id=f"{image}#0", image=image, dataset="Toy", category="part", type="Anomaly Detection",
                      task="Anomaly Detection", is_normal=normal, question="Is there any defect?",
                      options={"A": "Yes.", "B": "No."}, answer="B" if normal else "A", response="A", choice="A",
                      model="anomalygpt:/x", config="c", **extra)


def save(path: Path, grid: np.ndarray, score: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, map=grid.astype(np.float32), score=score, rows=(np.arange(grid.shape[0]) + 0.5) /
                        grid.shape[0], cols=(np.arange(grid.shape[1]) + 0.5) / grid.shape[1])


def truth(normal: bool) -> np.ndarray:
    grid = np.zeros((H, W), dtype=np.float32)
    if not normal:
        grid[DEFECT] = 1.0
    return grid


TABLE = pd.DataFrame({"Anomaly Detection": [75.0], "Defect Localization": [40.0]}, index=["Average"])


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path, dict[str, bool]]:
    root = tmp_path / "data"
    source, images = dataset(root)
    return source, root, images


def model_preds(run: Path, images: dict[str, bool], make) -> list[Prediction]:
    out = []
    for i, (key, normal) in enumerate(images.items()):
        rel = f"artifacts/maps/{i}.npz"
        grid, score = make(normal, i)
        save(run / rel, grid, score)
        out.append(pred(key, normal, artifacts={"map": rel, "image_score": score}))
    return out


def section(preds: list[Prediction], run: Path, source: Path, root: Path) -> analysis.Localisation:
    return localisation(preds, TABLE, run_dir=run, masks=masks_of(source, root), image_root=root)


def test_a_perfect_map_scores_one_and_an_inverted_one_zero(tmp_path: Path, data) -> None:
    source, root, images = data
    perfect = section(model_preds(tmp_path / "run", images, lambda normal, i: (truth(normal), 0.2 if normal else 0.9)),
                      tmp_path / "run", source, root)
    assert perfect.available and perfect.detection_accuracy == 75.0 and perfect.location_accuracy == 40.0
    (s,) = perfect.sources
    assert (s.source, s.images, s.anomalous, s.normal, s.pixel_images) == ("model", 4, 2, 2, 4)
    assert s.image_auroc == 1.0 and s.pixel_auroc == 1.0 and s.aupro == pytest.approx(1.0, abs=0.01)
    assert s.unknown_share == 0 and s.scale == 1.0 and s.missing_maps == s.missing_masks == 0
    inverted = section(model_preds(tmp_path / "run2", images, lambda normal, i: (1 - truth(normal),
                                                                                  0.9 if normal else 0.2)),
                       tmp_path / "run2", source, root)
    (s,) = inverted.sources
    assert s.image_auroc == 0.0 and s.pixel_auroc == 0.0 and s.aupro == pytest.approx(0.0, abs=0.01)


def test_unknown_pixels_are_left_out(tmp_path: Path, data) -> None:
    """A map that is right where it is known, and unknown on the left and right borders (as a centre crop)."""
    source, root, images = data

    def cropped(normal: bool, i: int) -> tuple[np.ndarray, float]:
        grid = truth(normal) if i % 2 else 1 - truth(normal)  # known borders would be wrong half the time ...
        grid[:, 5:35] = truth(normal)[:, 5:35]  # ... but only the middle is known, and right there
        grid[:, :5] = np.nan
        grid[:, 35:] = np.nan
        return grid, 0.2 if normal else 0.9

    (s,) = section(model_preds(tmp_path / "run", images, cropped), tmp_path / "run", source, root).sources
    assert s.pixel_auroc == 1.0 and s.aupro == pytest.approx(1.0, abs=0.01)
    assert s.unknown_share == pytest.approx(10 / 40)


def test_agent_maps_are_a_source_of_their_own(tmp_path: Path, data) -> None:
    source, root, images = data
    preds = model_preds(tmp_path / "run", images, lambda normal, i: (truth(normal), 0.2 if normal else 0.9))
    with_agent = []
    for i, p in enumerate(preds):
        path = tmp_path / "cache" / f"{i}.npz"
        save(path, 1 - truth(p.is_normal), 0.1)
        with_agent.append(p.model_copy(update={"boost_notes": {"agent": {
            "expert": "patch", "score": 0.5 + 0.1 * i, "threshold": 0.6, "defective": True, "region": "center",
            "map": str(path)}}}))
    result = section(with_agent, tmp_path / "run", source, root)
    by_source = {s.source: s for s in result.sources}
    assert set(by_source) == {"model", "agent"} and by_source["agent"].name == "patch"
    assert by_source["model"].pixel_auroc == 1.0 and by_source["agent"].pixel_auroc == 0.0
    assert by_source["agent"].image_auroc == 0.0  # the agent's scores rise with i: normal images last


def test_without_maps_there_is_no_section(tmp_path: Path, data) -> None:
    source, root, images = data
    preds = [pred(k, n) for k, n in images.items()]
    assert not section(preds, tmp_path, source, root).available
    res = analysis.analyse(preds, n_boot=10)
    assert "localisation" not in res.record("t").jsonable()


def test_without_masks_only_the_image_auroc(tmp_path: Path, data) -> None:
    source, root, images = data
    preds = model_preds(tmp_path / "run", images, lambda normal, i: (truth(normal), 0.2 if normal else 0.9))
    result = section(preds, tmp_path / "run", tmp_path / "gone" / "mmad.json", root)
    (s,) = result.sources
    assert s.image_auroc == 1.0 and s.pixel_auroc is None and "masks were not found" in (result.note or "")


def test_large_runs_shrink_the_masks(tmp_path: Path, data, monkeypatch: pytest.MonkeyPatch) -> None:
    source, root, images = data
    monkeypatch.setattr(loc_module, "PIXEL_BUDGET", 4 * W * H // 4)
    preds = model_preds(tmp_path / "run", images, lambda normal, i: (truth(normal), 0.2 if normal else 0.9))
    (s,) = section(preds, tmp_path / "run", source, root).sources
    assert s.scale == pytest.approx(0.5) and s.pixel_auroc is not None and s.pixel_auroc > 0.95


def test_missing_map_files_are_counted(tmp_path: Path, data) -> None:
    source, root, images = data
    preds = model_preds(tmp_path / "run", images, lambda normal, i: (truth(normal), 0.2 if normal else 0.9))
    (tmp_path / "run" / "artifacts" / "maps" / "0.npz").unlink()
    (s,) = section(preds, tmp_path / "run", source, root).sources
    assert s.missing_maps == 1 and s.pixel_images == 3 and s.images == 4
