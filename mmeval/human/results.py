"""A panel's results: its annotators' runs read back, their agreement, and the majority-vote run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmeval.config import RunRecord
from mmeval.errors import InputError
from mmeval.human.agreement import AgreementRecord, agreement
from mmeval.human.panel import write_panel
from mmeval.human.session import RUN_PREFIX, HumanSession
from mmeval.layout import PREDICTIONS, RUN_FILE
from mmeval.predictions import Prediction, read_predictions


@dataclass
class PanelResults:
    session: HumanSession
    dirs: dict[str, Path]  # annotator -> run directory
    answers: dict[str, list[Prediction]]  # annotator -> predictions
    source: str  # the mmad.json the questions came from
    agreement: AgreementRecord

    def describe(self) -> str:
        """One line per annotator: how many questions they answered, and how many of those "unsure"."""
        return "\n".join(f"{name}: {len(preds)} answered, {sum(p.choice is None for p in preds)} unsure"
                         for name, preds in self.answers.items())


def collect(folder: Path) -> PanelResults:
    """Every annotator's answers (those of their current run config) and their agreement; an InputError for a
    folder that is no panel, or where nobody has answered yet."""
    session = HumanSession.read(folder)
    if session is None:
        raise InputError(f"{folder}: not a human panel folder (no human.json; 'mmeval human serve --out {folder}' "
                         "makes one)")
    dirs, answers, source = {}, {}, ""
    for name in session.annotators:
        run = folder / (RUN_PREFIX + name)
        if not (run / RUN_FILE).is_file():
            continue
        record = RunRecord.read(run / RUN_FILE)
        preds = [p for p in read_predictions(run / PREDICTIONS) if p.config == record.digest]
        if preds:
            dirs[name], answers[name], source = run, preds, record.source
    if not answers:
        raise InputError(f"{folder}: no annotator has answered yet")
    return PanelResults(session, dirs, answers, source, agreement(answers, session.subset))


def write_results(folder: Path) -> tuple[PanelResults, Path]:
    """agreement.json and the majority-vote run (``human-panel/``); returns the results and the panel's directory."""
    results = collect(folder)
    (folder / "agreement.json").write_text(results.agreement.model_dump_json(indent=1), encoding="utf-8")
    panel = write_panel(folder, results.session, results.answers, results.source)
    return results, panel
