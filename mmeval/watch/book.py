"""The curve's book: which steps are done (with their run directories) or skipped, and the curve files
recomputed from the done steps' predictions. Shared by ``mmeval watch`` and the Trainer callback, so both
write the same files by the same rules; ``curve.json`` keeps the book across sessions.
"""

from __future__ import annotations

from pathlib import Path

from mmeval.errors import InputError
from mmeval.layout import PREDICTIONS
from mmeval.predictions import Prediction, read_predictions
from mmeval.report.references import measured_on_mmad
from mmeval.watch.curve import CURVE_JSON, CurvePoint, CurveRecord, StepEntry, best_step, step_points, write_curve
from mmeval.watch.plots import DEFAULT_REFERENCES, write_figures

STEPS = "steps"


def step_dir(out: Path, step: int) -> Path:
    """The run directory of a step."""
    return out / STEPS / f"step-{step:07d}"


class CurveBook:
    """The steps of one curve and its files in ``out`` (module docstring)."""

    def __init__(self, out: Path, title: str, setup: str, references: tuple[str, ...] = DEFAULT_REFERENCES) -> None:
        """``setup``: :func:`~mmeval.watch.curve.setup_digest` of the steps' run config; a book of another setup
        in ``out`` is refused (its steps answered other questions, or asked them otherwise)."""
        self.out = out
        self.title = title
        self.setup = setup
        self.references = references
        self.entries: dict[int, StepEntry] = self._previous()
        self._preds: dict[int, list[Prediction]] = {}
        self._points: dict[tuple[int, int | None], list[CurvePoint]] = {}

    def _previous(self) -> dict[int, StepEntry]:
        path = self.out / CURVE_JSON
        if not path.is_file():
            return {}
        try:
            record = CurveRecord.model_validate_json(path.read_bytes())
        except ValueError:
            raise InputError(f"{path}: not a curve of this mmeval version; choose another --out") from None
        if record.setup and record.setup != self.setup:
            raise InputError(f"{self.out} holds a curve of another setup (data, subset, shots, seed, answer mode or "
                             f"model options differ: {record.setup} vs {self.setup}); choose another --out, or "
                             "give the settings it was made with")
        return {e.step: e for e in record.steps}

    def done(self, step: int, checkpoint: str, kind: str, digest: str, seconds: float | None = None
             ) -> list[CurvePoint]:
        """Record a step whose run directory is complete; rewrite the curve; return the step's points."""
        self._preds.pop(step, None)
        self._points = {k: v for k, v in self._points.items() if step not in k}
        self.entries[step] = StepEntry(step=step, checkpoint=checkpoint, kind=kind, status="done",
                                       run_dir=str(step_dir(self.out, step).relative_to(self.out)), digest=digest,
                                       seconds=None if seconds is None else round(seconds, 3))
        return self.write().get(step, [])

    def skipped(self, step: int, checkpoint: str, kind: str, reason: str) -> None:
        self.entries[step] = StepEntry(step=step, checkpoint=checkpoint, kind=kind, status="skipped", reason=reason)
        self.write()

    def _predictions(self, entry: StepEntry) -> list[Prediction]:
        if entry.step not in self._preds:
            self._preds[entry.step] = read_predictions(self.out / entry.run_dir / PREDICTIONS)
        return self._preds[entry.step]

    def write(self) -> dict[int, list[CurvePoint]]:
        """Recompute the curve from the done steps and write curve.csv, curve.json, curve.svg and curve.html;
        returns every step's points."""
        done = [e for _, e in sorted(self.entries.items()) if e.status == "done"]
        previous: StepEntry | None = None
        points: list[CurvePoint] = []
        by_step: dict[int, list[CurvePoint]] = {}
        for entry in done:
            key = (entry.step, previous.step if previous else None)  # McNemar pairs a step with the one before
            if key not in self._points:
                self._points[key] = step_points(entry.step, entry.checkpoint, self._predictions(entry),
                                                self._predictions(previous) if previous else None, seed=0)
            by_step[entry.step] = self._points[key]
            points.extend(self._points[key])
            previous = entry
        datasets = {p.dataset for e in done for p in self._predictions(e)}
        record = CurveRecord(points=points, steps=[e for _, e in sorted(self.entries.items())],
                             best_step=best_step(points), on_mmad=measured_on_mmad(datasets), setup=self.setup)
        write_curve(self.out, record)
        write_figures(self.out, record, title=self.title, refs=self.references)
        return by_step
