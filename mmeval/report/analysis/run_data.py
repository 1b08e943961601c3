"""A run directory's contents, read back: predictions, run.json, usage, skipped questions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval.config import RunConfig, RunRecord, RunStatus
from mmeval.errors import InputError
from mmeval.layout import CHANGES, PREDICTIONS, RUN_FILE, SKIPPED, STATUS, USAGE
from mmeval.predictions import Prediction, read_predictions


@dataclass
class RunData:
    """A run directory's contents."""

    path: Path
    preds: list[Prediction]
    record: RunRecord  # run.json
    usage: list[dict[str, Any]] = field(default_factory=list)  # usage.jsonl: one line per process and session
    skipped: list[dict[str, Any]] = field(default_factory=list)  # skipped.json: the records the data loader skipped
    changes: list[dict[str, Any]] = field(default_factory=list)  # changes.jsonl: sessions in which the data changed
    #: status.json: how complete the answers are (None: not known, e.g. a run from before status files)
    status: RunStatus | None = None

    @property
    def config(self) -> RunConfig:
        return self.record.config

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def label(self) -> str:
        return f"{self.model} ({self.config.shots}-shot)"

    @property
    def title(self) -> str:
        return f"{self.model} · {self.config.shots}-shot · seed {self.config.seed}"

    def image_root(self) -> Path | None:
        if self.config.image_root:
            return Path(self.config.image_root)
        return Path(self.record.source).parent if self.record.source else None


def load_run(run_dir: Path, preds: list[Prediction] | None = None) -> RunData:
    """A run directory read back; ``preds``: its predictions.jsonl already in memory (as its writer wrote it)."""
    run_dir = Path(run_dir)
    pred_path = run_dir / PREDICTIONS
    if not pred_path.is_file():
        raise InputError(f"{run_dir}: no {PREDICTIONS} (is this a run directory?)")
    if preds is None:
        preds = read_predictions(pred_path)
    if not preds:
        raise InputError(f"{pred_path}: no predictions yet")
    if not (run_dir / RUN_FILE).is_file():
        raise InputError(f"{run_dir}: no {RUN_FILE} (is this a run directory?)")
    record = RunRecord.read(run_dir / RUN_FILE)

    skipped: list[dict[str, Any]] = []
    if (run_dir / SKIPPED).is_file():
        try:
            skipped = json.loads((run_dir / SKIPPED).read_text(encoding="utf-8"))
        except ValueError:
            raise InputError(f"{run_dir / SKIPPED}: not valid JSON") from None
    return RunData(run_dir, preds, record, _jsonl(run_dir / USAGE), skipped, _jsonl(run_dir / CHANGES),
                   RunStatus.read(run_dir / STATUS))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file (a torn or foreign line is passed over); [] when there is none."""
    out: list[dict[str, Any]] = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out
