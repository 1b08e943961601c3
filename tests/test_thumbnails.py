"""Thumbnails of the reports' answer tables: large photographs decoded at a fraction of their size, a page's
images read several at once, and the same page whichever way they were read."""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from mmeval.predictions import Prediction
from mmeval.report import answer_rows as rows_module
from mmeval.report.answer_rows import Thumbnails, answer_rows
from mmeval.report.figures import THUMB_PX, thumbnail_b64


def _photo(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, (max(2, size[1] // 200), max(2, size[0] // 200), 3), dtype=np.uint8))
    coarse.resize(size, Image.Resampling.BICUBIC).save(path)
    return path


def _decoded(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_a_large_jpeg_is_decoded_at_a_fraction_of_its_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _photo(tmp_path / "big.jpg", (2000, 1500))
    decoded: list[tuple[int, int]] = []
    load = JpegImagePlugin.JpegImageFile.load

    def spy(self: JpegImagePlugin.JpegImageFile) -> object:
        decoded.append(self.size)
        return load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy)
    thumb = _decoded(thumbnail_b64(path) or "")
    assert thumb.size == (THUMB_PX, 72)  # the long side at THUMB_PX, the aspect kept
    assert decoded and decoded[0] == (500, 375)  # 1/4: the smallest scale leaving twice the thumbnail's 96 px
    with Image.open(path) as whole:  # the thumbnail of the whole decode, as reports made it before
        reference = whole.convert("RGB")
    reference.thumbnail((THUMB_PX, THUMB_PX))
    assert np.abs(np.asarray(thumb.convert("RGB"), dtype=float) - np.asarray(reference, dtype=float)).mean() < 4


def test_png_and_unreadable_files(tmp_path: Path) -> None:
    png = _photo(tmp_path / "a.png", (300, 200))
    assert _decoded(thumbnail_b64(png) or "").size == (THUMB_PX, 64)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert thumbnail_b64(tmp_path / "broken.png") is None
    assert thumbnail_b64(tmp_path / "missing.png") is None


def _tree(root: Path) -> list[str]:
    names = []
    for i in range(6):
        name = f"d/c/test/bad/{i:03d}.{'jpg' if i % 2 else 'png'}"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        _photo(root / name, (400 + 50 * i, 300), seed=i)
        names.append(name)
    (root / "d/c/test/bad/broken.png").write_bytes(b"")
    return [*names, "d/c/test/bad/broken.png", "d/c/test/bad/gone.png", "../outside.png"]


def test_read_together_as_one_by_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = _tree(tmp_path)
    wanted = [(n, tmp_path) for n in [names[3], *names, names[0]]]
    together = Thumbnails()
    threads: set[str] = set()
    made = thumbnail_b64

    def spy(path: Path, size: int = THUMB_PX) -> str | None:
        threads.add(threading.current_thread().name)
        return made(path, size)

    monkeypatch.setattr(rows_module, "thumbnail_b64", spy)
    monkeypatch.setattr(rows_module.os, "cpu_count", lambda: 4)
    together.fetch(wanted)
    assert threads and all(name.startswith("mmeval-thumb") for name in threads)
    alone = Thumbnails()
    for image, root in wanted:
        alone.css_class(image, root)
    assert together.by_image == alone.by_image  # the same classes in the same order, the same pictures
    assert list(together.by_image)[:2] == [names[3], names[0]]
    unreadable = {n for n, (_, b64) in together.by_image.items() if b64 is None}
    assert unreadable == {"d/c/test/bad/broken.png", "d/c/test/bad/gone.png", "../outside.png"}
    assert [cls for cls, _ in together.css()] == [together.by_image[n][0] for n in together.by_image
                                                  if n not in unreadable]


def test_answer_rows_fetch_only_the_rows_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = _tree(tmp_path)[:6]
    preds = [Prediction(id=f"{n}#0", image=n, dataset="d", category="c", type="Defect Classification",
                        task="Defect Classification", is_normal=False, question="What?", options={"A": "x", "B": "y"},
                        answer="A", response="B", choice="B", model="m", config="c") for n in names]
    asked: list[list[tuple[str, Path | None]]] = []
    fetch = Thumbnails.fetch

    def spy(self: Thumbnails, wanted: list[tuple[str, Path | None]]) -> None:
        asked.append(list(wanted))
        fetch(self, wanted)

    monkeypatch.setattr(Thumbnails, "fetch", spy)
    thumbs = Thumbnails()
    rows = answer_rows(iter(preds), tmp_path, thumbs, 4)
    assert [r.image for r in rows] == names[:4]
    assert asked[0] == [(n, tmp_path) for n in names[:4]]  # one read of the shown rows' images, together
    assert list(thumbs.by_image) == names[:4]
    assert [r.thumb for r in rows] == [thumbs.by_image[n][0] for n in names[:4]]
    assert answer_rows(preds, tmp_path, thumbs, 0) == []


def test_the_expert_overlay_shown_to_the_model_gets_its_own_thumbnail(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMEVAL_HOME", str(tmp_path / "home"))
    names = _tree(tmp_path / "data")[:2]
    overlays = tmp_path / "home" / "boosts" / "overlays"
    overlays.mkdir(parents=True)
    _photo(overlays / "marked.png", (300, 300), seed=9)
    notes = [{"agent": {"overlay": str(overlays / "marked.png"), "view": "contour"}}, None]
    preds = [Prediction(id=f"{n}#0", image=n, dataset="d", category="c", type="Defect Localization",
                        task="Defect Localization", is_normal=False, question="Where?", options={"A": "x", "B": "y"},
                        answer="A", response="B", choice="B", model="m", config="c", boost_notes=note)
             for n, note in zip(names, notes, strict=True)]
    thumbs = Thumbnails()
    rows = answer_rows(preds, tmp_path / "data", thumbs, 10)
    assert list(thumbs.by_image) == ["marked.png", names[0], names[1]]  # numbered in the order rows ask
    assert [(r.overlay, r.overlay_notation, r.thumb) for r in rows] == [("im0", "contour", "im1"), (None, "", "im2")]
    assert all(b64 for _, b64 in thumbs.by_image.values())
