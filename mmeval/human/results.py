"""A panel's results: its annotators' runs read back, their agreement, and the majority-vote run with its report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmeval.errors import InputError
from mmeval.human.agreement import AgreementRecord, agreement
from mmeval.human.panel import write_panel
from mmeval.human.session import RUN_PREFIX, HumanSession
from mmeval.layout import PREDICTIONS, RUN_FILE
from mmeval.predictions import Prediction
from mmeval.report.analysis import load_run, read_timings
from mmeval.report.csvsafe import write_csv
from mmeval.report.run_report import write_run_report
from mmeval.run.rundir import RunDirLock


@dataclass
class PanelResults:
    session: HumanSession
    answers: dict[str, list[Prediction]]  # annotator -> predictions
    times: dict[str, dict[str, float]]  # annotator -> question id -> seconds
    source: str
    agreement: AgreementRecord


def annotator_dirs(folder: Path) -> dict[str, Path]:
    """Annotator name -> run directory, for every annotator of the panel with answers on disk."""
    session = HumanSession.read(folder)
    if session is None:
        raise InputError(f"{folder}: not a human panel folder (no human.json; 'mmeval human serve --out {folder}' "
                         "makes one)")
    out = {}
    for name in session.annotators:
        run = folder / (RUN_PREFIX + name)
        if (run / PREDICTIONS).is_file() and (run / RUN_FILE).is_file() and (run / PREDICTIONS).stat().st_size:
            out[name] = run
    return out


def collect(folder: Path) -> PanelResults:
    """Every annotator's answers and times, and their agreement; an InputError when nobody answered yet."""
    session = HumanSession.read(folder)
    dirs = annotator_dirs(folder)
    if session is None or not dirs:
        raise InputError(f"{folder}: no annotator has answered yet")
    runs = {name: load_run(path) for name, path in dirs.items()}
    answers = {name: rd.preds for name, rd in runs.items()}
    times = {name: read_timings(path)[0] for name, path in dirs.items()}
    source = next(iter(runs.values())).record.source
    return PanelResults(session, answers, times, source, agreement(answers, session.subset))


def write_results(folder: Path) -> tuple[PanelResults, dict[str, Path]]:
    """agreement.json and agreement.csv, the majority-vote run (``human-panel/``) and the reports of the panel and
    of every annotator not being served right now (a served one's report is written when they finish)."""
    results = collect(folder)
    record = results.agreement
    (folder / "agreement.json").write_text(record.model_dump_json(indent=1), encoding="utf-8")
    write_csv(record.table(), folder / "agreement.csv", index=False, float_format="%.4f")
    if not record.pair_table().empty:
        write_csv(record.pair_table(), folder / "agreement_pairs.csv", index=False, float_format="%.4f")
    panel = write_panel(folder, results.session, results.answers, results.times, results.source)
    write_run_report(panel)
    for name in results.answers:
        run = folder / (RUN_PREFIX + name)
        lock = RunDirLock(run)
        try:
            lock.acquire()
        except InputError:
            continue  # being served
        try:
            write_run_report(run)
        finally:
            lock.release()
    files = {"agreement": folder / "agreement.json", "csv": folder / "agreement.csv", "panel": panel}
    return results, files


def describe(results: PanelResults) -> str:
    """One line per annotator: how many questions they answered, and how many of those "unsure"."""
    return "\n".join(f"{name}: {len(preds)} answered, {sum(p.choice is None for p in preds)} unsure"
                     for name, preds in results.answers.items())
