"""The run directory: its file names, who may write there, and what ``--overwrite`` may remove.

Guarantees:

- **One writer.** A run holds an exclusive lock on the directory (``.lock``, :mod:`mmeval.locks`) for its
  whole life; a second run into the same ``--out`` stops at once with the other process's pid and
  command. The lock dies with its process, so a crash never leaves the directory locked.
- **Only its own files.** mmeval records every file it writes in a manifest (``.mmeval-manifest``);
  ``--overwrite`` removes exactly those, never anything else. A directory holding other files (or the
  benchmark itself) is refused unless ``--allow-other-files`` says it is meant.
- **One config.** A directory holds one config's predictions; another config is refused unless
  ``--overwrite``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from fnmatch import fnmatch
from pathlib import Path
from types import TracebackType

from mmeval.config import RunConfig, RunRecord
from mmeval.errors import InputError
from mmeval.layout import ARTIFACTS, CHANGES, LOCK, MANIFEST, PREDICTIONS, RUN_FILE, SKIPPED, STATUS, TIMINGS, USAGE
from mmeval.locks import FileLock

__all__ = ["CHANGES", "LOCK", "MANIFEST", "PREDICTIONS", "RUN_FILE", "SKIPPED", "STATUS", "TIMINGS", "USAGE",
           "RunDirLock",
           "claim", "ensure_writable", "log_changes", "planned_files", "record_outputs"]

#: what mmeval may write into a run directory (the manifest lists what it actually wrote)
OWN_PATTERNS = ("predictions.jsonl", "predictions.rank*.jsonl", "predictions.jsonl.tmp", "run.json",
                "run.json.tmp", "status.json", "status.json.tmp", "skipped.json", "timings.jsonl",
                "timings.rank*.jsonl", "usage.jsonl", "changes.jsonl", "scores.csv", "scores.json", "analysis.json",
                "ci.csv", "heatmap.svg", "heatmap.png", "report.html", "mmad_answers.json", "human_panel.json",
                ".rank*.*", LOCK, MANIFEST, ARTIFACTS)


def is_own(name: str) -> bool:
    return any(fnmatch(name, pattern) for pattern in OWN_PATTERNS)


def ensure_writable(out: Path) -> None:
    """Create ``out`` if needed; an InputError naming it when it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


class RunDirLock:
    """An exclusive lock on a run directory (:class:`mmeval.locks.FileLock` on its ``.lock``), held until
    released (or the process ends); a second run is refused at once, never kept waiting."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK
        self._lock = FileLock(self.path)
        self._created = False

    def acquire(self) -> RunDirLock:
        self._created = not self.path.exists()
        holder = self._lock.try_acquire()
        if holder is not None:
            raise InputError(f"--out {self.path.parent} is in use by {holder}; wait for it to finish or choose "
                             "another --out (two runs writing one directory would lose answers)")
        return self

    def release(self) -> None:
        # a directory that got no run keeps no trace of the attempt
        self._lock.release(remove=self._created and not (self.path.parent / RUN_FILE).exists())

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def manifest(out: Path) -> list[str]:
    path = out / MANIFEST
    if not path.is_file():
        return []
    try:
        names = json.loads(path.read_text(encoding="utf-8")).get("files", [])
    except (ValueError, AttributeError):
        return []
    return [n for n in names if isinstance(n, str)]


def record_outputs(out: Path, planned: list[str] | None = None) -> None:
    """Add to the manifest the mmeval files now in ``out`` and those about to be written (``planned``)."""
    present = {p.name for p in out.iterdir() if is_own(p.name) and p.name != MANIFEST}
    names = sorted(set(manifest(out)) | present | {n for n in planned or [] if is_own(n)})
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"files": names}, indent=1), encoding="utf-8")
    tmp.replace(out / MANIFEST)


def _remove_own_files(out: Path) -> None:
    for name in manifest(out):
        path = out / name
        if not is_own(name) or name in (LOCK, MANIFEST):  # only ever what mmeval writes
            continue
        if path.is_file():
            path.unlink()
        elif name == ARTIFACTS and path.is_dir():
            shutil.rmtree(path)
    (out / MANIFEST).unlink(missing_ok=True)


def _foreign(out: Path) -> list[str]:
    listed = set(manifest(out))
    return sorted(p.name for p in out.iterdir() if p.name not in listed and not is_own(p.name))


def _holds_the_data(out: Path, data_paths: list[Path]) -> Path | None:
    out = out.resolve()
    for path in data_paths:
        real = path.resolve()
        if real == out or real.is_relative_to(out):
            return real
    return None


def claim(out: Path, config: RunConfig, *, overwrite: bool, allow_other_files: bool, data_paths: list[Path]) -> None:
    """Make ``out`` this run's directory, or refuse with the reason (see the module docstring).

    Call with the directory's lock held.
    """
    ensure_writable(out)
    if not allow_other_files:
        held = _holds_the_data(out, data_paths)
        if held is not None:
            raise InputError(f"--out {out} holds the benchmark itself ({held}); write runs elsewhere, or pass "
                             "--allow-other-files if you mean it (mmeval only ever removes its own files)")
        foreign = _foreign(out)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise InputError(f"--out {out} holds files mmeval did not write ({shown}); choose an empty or new "
                             "directory, or pass --allow-other-files (they are never touched)")
    run_file = out / RUN_FILE
    if run_file.exists():
        try:
            old_digest = json.loads(run_file.read_text(encoding="utf-8")).get("digest")
        except (ValueError, AttributeError):
            if not overwrite:
                raise InputError(f"{run_file} is damaged (not a JSON record); pass --overwrite to start the run "
                                 "afresh, or choose another --out") from None
            old_digest = None
        if old_digest != config.digest():
            if not overwrite:
                raise InputError(
                    f"--out {out} holds a run with a different config (digest {old_digest} vs "
                    f"{config.digest()}); choose another --out, or pass --overwrite to discard it")
            _remove_own_files(out)


def planned_files(world: int) -> list[str]:
    """Every file a run with ``world`` processes writes (listed in the manifest before it writes them)."""
    per_rank = [f"{stem}.rank{r}.jsonl" for r in range(world) for stem in ("predictions", "timings")]
    if world == 1:
        per_rank = []
    return [PREDICTIONS, RUN_FILE, STATUS, SKIPPED, TIMINGS, USAGE, CHANGES, ARTIFACTS, *per_rank]


def write_run_record(out: Path, record: RunRecord) -> None:
    record.write(out / RUN_FILE)


def write_skipped(out: Path, skipped: list[dict[str, str]]) -> None:
    (out / SKIPPED).write_text(json.dumps(skipped, indent=1), encoding="utf-8")


def log_changes(out: Path, changed: list[str], removed: list[str]) -> None:
    """Record that the data changed under the run: questions re-asked and predictions dropped."""
    if not changed and not removed:
        return
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "changed": len(changed), "removed": len(removed),
             "changed_ids": changed[:50], "removed_ids": removed[:50]}
    with open(out / CHANGES, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
