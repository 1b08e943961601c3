"""Stand-in environments for the worker tests: a model's Python, its checkout, its checkpoints.

A model's environment is played by this test run's own interpreter started with ``-S -s`` (no
site-packages at all: no numpy, no torch, no mmeval) and ``PYTHONPATH`` pointing at
``tests/standins/site`` (a stand-in torch and Pillow): the way a user's old virtual environment looks to
mmeval, only faster. The upstream checkouts are copies of ``tests/standins/anomalygpt`` and
``tests/standins/anomaly_ov`` with placeholder checkpoint files.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

STANDINS = Path(__file__).parent / "standins"
SITE = STANDINS / "site"


def make_python(folder: Path, *, site: Path | None = SITE, before: str = "", interpreter: str | None = None,
                flags: str = "-S -s") -> Path:
    """An executable ``folder/bin/python`` that runs a bare interpreter with ``site`` as its only extra path."""
    path = folder / "bin" / "python"
    path.parent.mkdir(parents=True, exist_ok=True)
    env = f'PYTHONPATH="{site}" ' if site is not None else "PYTHONPATH= "
    path.write_text(f'#!/bin/sh\n{before}\n{env}exec "{interpreter or sys.executable}" {flags} "$@"\n',
                    encoding="utf-8")
    path.chmod(0o755)
    return path


def anomalygpt_checkout(root: Path, deltas: tuple[str, ...] = ("train_mvtec",)) -> Path:
    """A copy of the AnomalyGPT stand-in with every checkpoint where the authors' README puts it."""
    repo = root / "AnomalyGPT"
    shutil.copytree(STANDINS / "anomalygpt", repo, ignore=shutil.ignore_patterns("__pycache__"))
    files = ["pretrained_ckpt/imagebind_ckpt/imagebind_huge.pth", "pretrained_ckpt/pandagpt_ckpt/7b/pytorch_model.pt",
             *(f"code/ckpt/{d}/pytorch_model.pt" for d in deltas)]
    for rel in files:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("placeholder\n", encoding="utf-8")
    (repo / "pretrained_ckpt/vicuna_ckpt/7b_v0").mkdir(parents=True)
    return repo


def anomaly_ov_checkout(root: Path) -> tuple[Path, Path]:
    """(checkout, checkpoint) copies of the Anomaly-OV stand-ins."""
    repo, ckpt = root / "Anomaly-OneVision", root / "anomalyov-7b-checkpoint"
    shutil.copytree(STANDINS / "anomaly_ov", repo, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(STANDINS / "anomaly_ov_checkpoint", ckpt)
    return repo, ckpt


def read_log(path: Path) -> list[dict]:
    """The stand-ins' call log (``STANDIN_LOG``)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
