"""An annotator's answers: an ordinary run directory, written by the predictions writer every run uses.

``human-NAME/`` holds run.json (model ``human:NAME``), predictions.jsonl and timings.jsonl like a model's
run, so ``mmeval report``, ``compare`` and the heatmaps read it unchanged. The directory is locked while
served (one writer), claimed like a run's (one config, only mmeval's files), and every answer is flushed
before the browser is told it was saved: a reload, a closed tab or a killed server loses nothing, and
answering the same question again never leaves two lines for it (a changed answer rewrites the file
atomically, as a run's end does).

An "unsure" answer is recorded as no choice (``choice`` null, ``note`` "unsure"): scored wrong, as an
invalid model answer is. Time per answer is measured in the browser from the moment the images are shown
to the key press; time with the tab hidden and idle time (beyond :data:`IDLE_AFTER_SECONDS` without any
key, pointer or wheel input) are recorded apart, and ``seconds`` (what the latency analyses read) is the
rest: the time spent looking.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mmeval.config import RunRecord
from mmeval.errors import InputError
from mmeval.human.session import PRACTICE_DIR, RUN_PREFIX, HumanSession
from mmeval.human.stimuli import Item, Stimuli
from mmeval.predictions import Prediction, PredictionWriter, latest_by_id, read_predictions, write_sorted
from mmeval.prompting.messages import Response
from mmeval.run.rundir import (
    PREDICTIONS,
    TIMINGS,
    RunDirLock,
    claim,
    ensure_writable,
    planned_files,
    record_outputs,
    write_run_record,
    write_skipped,
)
from mmeval.run.runner import to_prediction

#: a pause in input longer than this counts as idle beyond it (the page says so in its guidelines)
IDLE_AFTER_SECONDS = 30.0
UNSURE = "unsure"


@dataclass(frozen=True)
class Timing:
    """What the browser measured for one answer, in milliseconds."""

    shown_ms: float  # from the images on screen to the key press
    hidden_ms: float = 0.0  # of which the tab was hidden
    idle_ms: float = 0.0  # of which no input came for longer than IDLE_AFTER_SECONDS (beyond that)

    def active_seconds(self) -> float:
        return max(0.0, self.shown_ms - self.hidden_ms - self.idle_ms) / 1000


class Rejected(InputError):
    """An answer the session does not take (a closed block, an unknown option ...); ``status`` for HTTP."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


Outcome = Literal["saved", "replaced", "unchanged"]


class AnnotatorRun:
    """One annotator's run directory, held (locked) while the session is served."""

    def __init__(self, folder: Path, session: HumanSession, name: str, stimuli: Stimuli) -> None:
        self.name = name
        self.dir = folder / (RUN_PREFIX + name)
        self.config = session.run_config(name, folder)
        self.digest = self.config.digest()
        self.items = stimuli.items
        self._by_id = {item.id: item for item in self.items}
        self._detection = stimuli.detection_count
        self._mutex = threading.Lock()
        self._closed = False
        ensure_writable(self.dir)
        self._lock = RunDirLock(self.dir).acquire()
        try:
            claim(self.dir, self.config, overwrite=False, allow_other_files=False,
                  data_paths=[Path(stimuli.bench.source), stimuli.bench.root])
            record_outputs(self.dir, planned_files(1))
            write_run_record(self.dir, RunRecord(digest=self.digest, config=self.config, source=stimuli.bench.source))
            write_skipped(self.dir, [])
            path = self.dir / PREDICTIONS
            on_disk = [p for p in read_predictions(path, repair=True) if p.config == self.digest]
            # an answer stands while its question does: one whose record changed since is asked again
            self.answers: dict[str, Prediction] = {
                i: p for i, p in latest_by_id(on_disk).items()
                if i in self._by_id and p.question_digest == self._by_id[i].prepared.digest}
            if len(self.answers) != len(on_disk):  # repeated or foreign lines: one line per question again
                self._rewrite()
            self._writer = PredictionWriter(path)
            self._timings = open(self.dir / TIMINGS, "a", encoding="utf-8")
        except BaseException:
            self._lock.release()
            raise
        self.practice = PracticeLog(folder / PRACTICE_DIR / f"{name}.jsonl", len(stimuli.practice))

    # ----------------------------------------------------------------------------------------- reading

    def answered(self) -> int:
        return len(self.answers)

    def next_open(self) -> int | None:
        """The first question without an answer, in the session's order; None when all are answered."""
        return next((item.n for item in self.items if item.id not in self.answers), None)

    def detection_open(self) -> bool:
        """Whether the detection block takes answers: until every one of its questions has one."""
        return any(item.id not in self.answers for item in self.items[: self._detection])

    def may_show(self, item: Item) -> bool:
        """Questions after the detection block stay hidden until it is closed; the block is closed for good."""
        return item.block == "detection" if self.detection_open() else item.block != "detection"

    def given(self, item: Item) -> dict[str, object] | None:
        """The annotator's own earlier answer to an item (for going back to it), or None."""
        pred = self.answers.get(item.id)
        if pred is None:
            return None
        return {"choice": pred.choice, "unsure": pred.note == UNSURE}

    # ----------------------------------------------------------------------------------------- writing

    def answer(self, n: int, choice: str | None, timing: Timing) -> Outcome:
        """Record the answer to item ``n`` (``choice`` None: unsure); the same answer again changes nothing."""
        if not 0 <= n < len(self.items):
            raise Rejected(f"no question {n}", 404)
        item = self.items[n]
        with self._mutex:
            if not self.may_show(item):
                raise Rejected("the detection block is closed" if item.block == "detection"
                               else "answer the detection block first")
            options = item.prepared.request.options
            if choice is not None and choice not in options:
                raise Rejected(f"'{choice}' is not an option of question {n}", 422)
            old = self.answers.get(item.id)
            if old is not None and old.choice == choice and (old.note == UNSURE) == (choice is None):
                return "unchanged"
            pred = self._prediction(item, choice)
            if old is None:
                self._writer.write(pred)
                self.answers[item.id] = pred
                outcome: Outcome = "saved"
            else:
                self.answers[item.id] = pred
                self._rewrite()
                outcome = "replaced"
            self._timings.write(json.dumps({
                "id": item.id, "seconds": round(timing.active_seconds(), 3), "batch_size": 1,
                "shown_seconds": round(timing.shown_ms / 1000, 3), "hidden_seconds": round(timing.hidden_ms / 1000, 3),
                "idle_seconds": round(timing.idle_ms / 1000, 3)}) + "\n")
            self._timings.flush()
            return outcome

    def _prediction(self, item: Item, choice: str | None) -> Prediction:
        response = Response(id=item.id, text=choice or UNSURE, note=None if choice else UNSURE)
        pred = to_prediction(item.prepared, response, self.config.model, self.digest)
        return pred if pred.choice == choice else pred.model_copy(update={"choice": choice})

    def _rewrite(self) -> None:
        """predictions.jsonl rewritten atomically, one line per question in the session's order."""
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.close()
        write_sorted(self.dir / PREDICTIONS, self.answers, [item.id for item in self.items])
        if writer is not None:
            self._writer = PredictionWriter(self.dir / PREDICTIONS)

    def _finish(self, then: Callable[[Path], object]) -> None:
        with self._mutex:
            self._rewrite()
            then(self.dir)

    def when_finished(self, then: Callable[[Path], object]) -> None:
        """Put the file in the session's order, then call ``then(run_dir)`` (the command line passes the report
        writer) on a thread of its own, so the page goes on; :meth:`close` waits for it."""
        self._reporting = threading.Thread(target=self._finish, args=(then,), name=f"finish-{self.name}",
                                           daemon=True)
        self._reporting.start()

    def close(self) -> None:
        """Wait for a report being written, put the file in the session's order, release the directory (once)."""
        reporting: threading.Thread | None = getattr(self, "_reporting", None)
        if reporting is not None:
            reporting.join()
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            if self.answers:
                self._rewrite()  # the session's order, as a model run leaves its file
            self._writer.close()
            self._timings.close()
            record_outputs(self.dir)
            self._lock.release()


class PracticeLog:
    """The practice answers of one annotator (not part of any run): which practice question got which letter."""

    def __init__(self, path: Path, total: int) -> None:
        self.path = path
        self.total = total
        self.done: dict[int, str | None] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                    self.done[int(rec["i"])] = rec.get("choice")
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line

    def finished(self) -> bool:
        return all(i in self.done for i in range(self.total))

    def next_index(self) -> int:
        """The first practice question not answered yet (``total`` when none is left)."""
        return next((i for i in range(self.total) if i not in self.done), self.total)

    def record(self, i: int, choice: str | None, correct: bool) -> None:
        if i in self.done:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"i": i, "choice": choice, "correct": correct}) + "\n")
        self.done[i] = choice
