"""Several processes, one run: each answers its share of the images into its own file; rank 0 merges.

Under a multi-process launcher (``accelerate launch``, ``torchrun``, MPI: see :mod:`mmeval.launch`)
whole images are dealt round-robin, so no image is encoded twice. Processes meet through marker files
in the run directory: every rank writes ``.rankN.alive`` when it starts, rank 0 writes
``.rank0.ready`` once the directory is set up; every rank writes ``.rankN.done`` when its share is
answered; rank 0 then merges and removes the markers. A process that is told it is one of several
(WORLD_SIZE) but whose partners never show up stops after ``MMEVAL_LAUNCH_TIMEOUT`` seconds (default
120) with a message, instead of waiting for ever; it says what it waits for when it starts to wait (at once
when no launcher's variables are set, which is how a WORLD_SIZE left in the environment looks; after a few
seconds under a launcher, whose processes normally meet at once).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from mmeval import launch
from mmeval.errors import InputError
from mmeval.predictions import Prediction, read_predictions
from mmeval.run.rundir import PREDICTIONS

LAUNCH_SKEW_S = 120.0  # processes of one launch start within this many seconds of each other
#: seconds a process of a real launch waits for its partners before it says so
SLOW_PARTNERS_S = 10.0


def launch_timeout() -> float:
    """How long a process waits for its partners to show up (``MMEVAL_LAUNCH_TIMEOUT``, seconds)."""
    try:
        return max(1.0, float(os.environ.get("MMEVAL_LAUNCH_TIMEOUT", "120")))
    except ValueError:
        raise InputError("MMEVAL_LAUNCH_TIMEOUT must be a number of seconds") from None


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


def read_all(out: Path, known: dict[Path, list[Prediction]] | None = None) -> list[Prediction]:
    """Predictions of the merged file and of every process's part (others' torn lines are skipped).

    ``known``: files the caller has just read, with their predictions (not read again)."""
    files = [out / PREDICTIONS] + sorted(out.glob("predictions.rank*.jsonl"))
    known = known or {}
    preds: list[Prediction] = []
    for f in files:
        preds.extend(known[f] if f in known else read_predictions(f))
    return preds


def clear_stale_markers(out: Path, started: float) -> None:
    """Markers of an earlier multi-process run that died (this launch's own are newer)."""
    for stale in out.glob(".rank*.*"):
        try:
            if stale.stat().st_mtime < started - LAUNCH_SKEW_S:
                stale.unlink()
        except FileNotFoundError:
            pass


def mark(out: Path, rank: int, what: str) -> None:
    (out / f".rank{rank}.{what}").write_text("ok")


def _fresh(path: Path, newer_than: float) -> bool:
    try:
        return path.stat().st_mtime >= newer_than
    except FileNotFoundError:
        return False


def wait_for(path: Path, newer_than: float = 0.0, timeout: float = 24 * 3600, notice: str | None = None,
             notice_after: float = 0.0) -> bool:
    """Wait for another process's marker file (written no earlier than ``newer_than``); False on timeout.

    ``notice``: printed once the wait has lasted ``notice_after`` seconds (at once when 0), so that a wait is
    never silent."""
    start = time.monotonic()
    while not _fresh(path, newer_than):
        waited = time.monotonic() - start
        if notice is not None and waited >= notice_after:
            print(notice, file=sys.stderr, flush=True)
            notice = None
        if waited > timeout:
            return False
        time.sleep(0.2)
    return True


def _waiting(rank: int, world: int, whom: str, marker: Path) -> tuple[str, float]:
    """What a process says while it waits for ``whom``, and after how many seconds it says it."""
    text = (f"mmeval: process {rank} of {world} (WORLD_SIZE={world}) is waiting up to {launch_timeout():.0f} s for "
            f"{whom} to start (it writes {marker})")
    if launch.under_launcher():
        return text, SLOW_PARTNERS_S
    return (text + f"; no launcher variable ({', '.join(launch.LAUNCHER_VARS[:2])} ...) is set: if this was not "
            f"started by torchrun or accelerate launch, stop it and unset WORLD_SIZE and RANK"), 0.0


def _missing_partners(world: int) -> InputError:
    return InputError(f"WORLD_SIZE={world} says this is one of {world} processes, but the others did not show up "
                      f"within {launch_timeout():.0f} s. Start the run with a launcher (torchrun --nproc-per-node "
                      f"{world} -m mmeval run ..., or accelerate launch), or unset WORLD_SIZE/RANK for a single "
                      "process (MMEVAL_LAUNCH_TIMEOUT sets the wait)")


def announce(out: Path, rank: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    mark(out, rank, "alive")


def wait_for_partners(out: Path, world: int, started: float) -> None:
    """Rank 0: every other rank must announce itself within the launch timeout."""
    for r in range(1, world):
        marker = out / f".rank{r}.alive"
        notice, after = _waiting(0, world, f"process {r}" if world == 2 else f"processes 1 to {world - 1}", marker)
        if not wait_for(marker, newer_than=started - LAUNCH_SKEW_S, timeout=launch_timeout(),
                        notice=notice if r == 1 else None, notice_after=after):
            raise _missing_partners(world)


def wait_for_rank0(out: Path, started: float, world: int) -> None:
    """Rank > 0: rank 0 must show up within the launch timeout; then it may take its time to set up."""
    # ranks start together; a marker much older than this process is a leftover, not rank 0's
    marker = out / ".rank0.alive"
    notice, after = _waiting(launch.rank_and_world()[0], world, "process 0", marker)
    if not wait_for(marker, newer_than=started - LAUNCH_SKEW_S, timeout=launch_timeout(), notice=notice,
                    notice_after=after):
        raise _missing_partners(world)
    wait_for(out / ".rank0.ready", newer_than=started - LAUNCH_SKEW_S)


def wait_for_others(out: Path, world: int, started: float) -> None:
    for r in range(1, world):
        wait_for(out / f".rank{r}.done", newer_than=started - LAUNCH_SKEW_S)


def clean_up(out: Path, world: int) -> None:
    for r in range(world):
        for name in (f"predictions.rank{r}.jsonl", f".rank{r}.done", f".rank{r}.ready", f".rank{r}.alive"):
            (out / name).unlink(missing_ok=True)
