"""Several processes, one run: each answers its share of the images into its own file; rank 0 merges.

Under a multi-process launcher (``accelerate launch``, ``torchrun``, MPI: see :mod:`mmeval.launch`)
whole images are dealt round-robin, so no image is encoded twice. Processes meet through marker files
in the run directory: rank 0 writes ``.rank0.ready`` once the directory is set up; every rank writes
``.rankN.done`` when its share is answered; rank 0 then merges and removes the markers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from mmeval.predictions import Prediction, read_predictions
from mmeval.run.rundir import PREDICTIONS

LAUNCH_SKEW_S = 120.0  # processes of one launch start within this many seconds of each other


class _HasImage(Protocol):
    @property
    def image(self) -> str: ...


T = TypeVar("T", bound=_HasImage)


def by_image(items: Sequence[T]) -> list[list[T]]:
    """Consecutive runs of items about the same image (file order keeps them adjacent)."""
    groups: list[list[T]] = []
    for item in items:
        if groups and groups[-1][0].image == item.image:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def my_share(items: Sequence[T], rank: int, world: int) -> list[T]:
    """This process's items: whole images dealt round-robin."""
    return [p for i, group in enumerate(by_image(items)) if i % world == rank for p in group]


def own_file(out: Path, rank: int, world: int) -> Path:
    return out / (PREDICTIONS if world == 1 else f"predictions.rank{rank}.jsonl")


def read_all(out: Path) -> list[Prediction]:
    """Predictions of the merged file and of every process's part (others' torn lines are skipped)."""
    files = [out / PREDICTIONS] + sorted(out.glob("predictions.rank*.jsonl"))
    preds: list[Prediction] = []
    for f in files:
        preds.extend(read_predictions(f))
    return preds


def clear_stale_markers(out: Path) -> None:
    for stale in out.glob(".rank*.*"):  # markers of an earlier multi-process run that died
        stale.unlink()


def mark(out: Path, rank: int, what: str) -> None:
    (out / f".rank{rank}.{what}").write_text("ok")


def wait_for(path: Path, newer_than: float = 0.0, timeout: float = 24 * 3600) -> None:
    """Wait for another process's marker file (written no earlier than ``newer_than``)."""
    start = time.monotonic()
    while not (path.exists() and path.stat().st_mtime >= newer_than):
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"gave up waiting for {path}")
        time.sleep(0.2)


def wait_for_rank0(out: Path, started: float) -> None:
    # ranks start together; a marker much older than this process is a leftover, not rank 0's
    wait_for(out / ".rank0.ready", newer_than=started - LAUNCH_SKEW_S)


def wait_for_others(out: Path, world: int, started: float) -> None:
    for r in range(1, world):
        wait_for(out / f".rank{r}.done", newer_than=started - LAUNCH_SKEW_S)


def clean_up(out: Path, world: int) -> None:
    for r in range(world):
        for name in (f"predictions.rank{r}.jsonl", f".rank{r}.done", f".rank{r}.ready"):
            (out / name).unlink(missing_ok=True)
