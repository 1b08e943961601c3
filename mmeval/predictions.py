"""Predictions on disk: a JSONL file that is appended and flushed one line at a time.

Durability: every line is flushed to the operating system before the next answer is written, so a
killed process (Ctrl-C, ``kill -9``, a crash) loses only the questions in flight. Lines are forced to
the disk itself (``fsync``) in groups, every :data:`FSYNC_EVERY_LINES` lines or
:data:`FSYNC_EVERY_SECONDS` seconds, whichever comes first, and when the file is closed: a power loss
loses at most that window. A killed process leaves at most one torn last line, which is detected and
dropped on resume. At the end of a run the file is rewritten in question order (atomically) unless it
holds exactly that already, so the same config gives a byte-identical file whatever the batch order,
concurrency, or interruptions were.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, TypeAdapter

from mmeval.errors import InputError
from mmeval.lean import LeanModel


class Prediction(LeanModel):
    """One line of predictions.jsonl."""

    # NaN and infinities in free-form fields (boost notes, artifacts) are written as Python's json writes them
    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")

    id: str
    image: str
    dataset: str
    category: str
    type: str
    task: str
    is_normal: bool
    question: str
    options: dict[str, str]
    answer: str
    response: str
    choice: str | None
    #: option letter -> score as the model gave it; null where it was not a finite number
    scores: dict[str, float | None] | None = None
    error: str | None = None
    note: str | None = None
    variant: str | None = None  # None for the benchmark's own questions; "rot1".. or "probe" (see variants.py)
    base_id: str | None = None  # for rotations: the id of the question they rotate
    model: str
    config: str
    #: digest of the question's data when it was answered (see mmeval.data.loading.question_digest)
    question_digest: str | None = None
    #: for an error: whether a rerun may fix it (False: the same request would fail again)
    retryable: bool | None = None
    #: what each boost recorded for this question (boost name -> its notes), e.g. the knowledge it added
    boost_notes: dict[str, Any] | None = None
    #: what the model produced besides its answer (an anomaly map's file and image score ...)
    artifacts: dict[str, Any] | None = None

    @property
    def correct(self) -> bool:
        return self.choice is not None and self.choice == self.answer


def dumps(pred: Prediction) -> str:
    """One compact line, UTF-8 unescaped, by pydantic's serialiser (several times faster than ``json.dumps``)."""
    return pred.model_dump_json()


def read_predictions(path: Path, *, repair: bool = False) -> list[Prediction]:
    """Read a predictions file; a torn final line is dropped (and cut off the file when ``repair``)."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    whole = _read_whole(lines)
    if whole is not None:
        return whole
    out: list[Prediction] = []
    good_end = 0
    offset = 0
    for n, line in enumerate(lines, 1):
        end = offset + len(line) + 1
        if line.strip():
            try:
                out.append(Prediction.model_validate_json(line))
                good_end = min(end, len(raw))
            except ValueError:
                is_last = all(not rest.strip() for rest in lines[n:])
                if not is_last:
                    raise InputError(f"{path}: line {n} is not a valid prediction "
                                     "(the file was edited by hand?)") from None
                if repair:
                    with open(path, "r+b") as fh:
                        fh.truncate(good_end)
                break
        offset = end
    return out


_MANY = TypeAdapter(list[Prediction])


def _read_whole(lines: list[bytes]) -> list[Prediction] | None:
    """Every line validated in one call (a run's file is read whole several times); None when any line is
    not a prediction, for the line-by-line reading to find which. One prediction per non-empty line, or
    None: a line break inside a prediction could otherwise join two lines into one."""
    kept = [line for line in lines if line.strip()]
    try:
        preds = _MANY.validate_json(b"[" + b",".join(kept) + b"]")
    except ValueError:
        return None
    return preds if len(preds) == len(kept) else None


#: lines written between two fsyncs at most ...
FSYNC_EVERY_LINES = 256
#: ... and seconds
FSYNC_EVERY_SECONDS = 1.0


class PredictionWriter:
    """Appends predictions: each line flushed at once, synced to disk in groups (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                last = fh.read(1)
            if last != b"\n":
                with open(path, "ab") as fh:  # a last line without its newline: start appends on a fresh line
                    fh.write(b"\n")
        self._fh = open(path, "a", encoding="utf-8")
        self._unsynced = 0
        self._synced_at = time.monotonic()

    def write(self, pred: Prediction) -> str:
        """Append one prediction; returns its line (without the newline)."""
        line = dumps(pred)
        self._fh.write(line + "\n")
        self._fh.flush()
        self._unsynced += 1
        if self._unsynced >= FSYNC_EVERY_LINES or time.monotonic() - self._synced_at >= FSYNC_EVERY_SECONDS:
            self.sync()
        return line

    def sync(self) -> None:
        if self._unsynced:
            os.fsync(self._fh.fileno())
        self._unsynced = 0
        self._synced_at = time.monotonic()

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def latest_by_id(preds: Iterable[Prediction]) -> dict[str, Prediction]:
    """The last line written for each id wins (a retried error replaces the error line)."""
    out: dict[str, Prediction] = {}
    for p in preds:
        out[p.id] = p
    return out


def write_sorted(path: Path, preds: dict[str, Prediction], order: Sequence[str],
                 lines: dict[str, str] | None = None) -> list[Prediction]:
    """Rewrite the file in question order, atomically (tmp file + rename); returns the predictions in that order.

    ``lines``: predictions already serialised (by :meth:`PredictionWriter.write`), reused as they are.
    """
    rank = {qid: i for i, qid in enumerate(order)}
    ordered = sorted(preds.values(), key=lambda p: (rank.get(p.id, len(rank)), p.id))
    known = lines or {}
    if _holds(path, ((known.get(p.id) or dumps(p)) for p in ordered)):
        return ordered  # written in question order already (one process, from an empty file): nothing to redo
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for p in ordered:
            fh.write((known.get(p.id) or dumps(p)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return ordered


def _holds(path: Path, lines: Iterable[str]) -> bool:
    """Whether the file is exactly these lines, each ended by a newline (compared as it is read, a line at a
    time: the file is never held whole)."""
    try:
        with open(path, "rb") as fh:
            for line in lines:
                want = line.encode("utf-8") + b"\n"
                if fh.read(len(want)) != want:
                    return False
            return fh.read(1) == b""
    except OSError:
        return False
