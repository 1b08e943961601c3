"""Shared fixtures: a hand-written official-format mmad.json with real image files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).parent
OFFICIAL_RECORDS = HERE / "data" / "official_records.json"


def write_png(path: Path, seed: int, size: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype("uint8")
    Image.fromarray(arr).save(path)


def materialise(records: dict, root: Path) -> Path:
    """Write the records as root/mmad.json and create every image they name."""
    seed = 0
    for key, rec in records.items():
        paths = [key, *rec.get("similar_templates", []), *rec.get("random_templates", [])]
        for rel in paths:
            if isinstance(rel, str) and not rel.startswith("/") and ".." not in rel and not (root / rel).exists():
                write_png(root / rel, seed)
                seed += 1
    path = root / "mmad.json"
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def official_records() -> dict:
    return json.loads(OFFICIAL_RECORDS.read_text(encoding="utf-8"))


@pytest.fixture
def official_data(tmp_path: Path, official_records: dict) -> Path:
    return materialise(official_records, tmp_path / "MMAD")


@pytest.fixture(autouse=True)
def _offline_and_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No hub access, and a private cache so tests never touch the user's ~/.cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    if "MMEVAL_HOME" not in os.environ or not os.environ["MMEVAL_HOME"].startswith(str(tmp_path_factory.getbasetemp())):
        monkeypatch.setenv("MMEVAL_HOME", str(tmp_path_factory.getbasetemp() / "mmeval-home"))


@pytest.fixture(scope="session")
def synthetic_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic benchmark at the demo scale, seed 0, built once per session (read it, never write into it)."""
    from mmeval.data.synthetic.generator import build_synthetic

    out = tmp_path_factory.mktemp("synthetic-demo") / "bench"
    build_synthetic(out, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """kind -> the directory of a tiny random checkpoint of that architecture (tests/tiny_models.py).

    Built on first use and kept in pytest's cache folder under a digest of the builder's source, so later
    sessions load it instead of building it again (a changed builder builds afresh). Models this small gain
    nothing from torch's intra-op threads, which on a shared 2-core machine spin against each other (a
    forward pass took 20 times longer with 2 threads than with 1): the session's torch uses one.
    """
    import tiny_models
    import torch

    torch.set_num_threads(1)

    cache = getattr(request.config, "cache", None)
    root = cache.mkdir("tiny_models") if cache is not None else tmp_path_factory.mktemp("tiny_models")
    return lambda kind: tiny_models.cached(kind, root)
