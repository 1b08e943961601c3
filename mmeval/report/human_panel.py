"""A measured human panel beside runs: people who answered the same sample (``mmeval human serve``).

The MMAD paper's human figures hold for MMAD's questions only. On a sample of any benchmark, the people
who answered it in ``mmeval human serve`` are the human baseline: each annotator's run and the majority-vote
panel (``human:panel``). They are shown beside a run only when they answered the same sample: the digest
of the run's ``--subset`` equals theirs. They are found in the folder of the run's subset file (where
``human serve`` keeps its sample, so ``mmeval run --subset reports/human/subset.json`` finds its panel)
and in folders given with ``--human``.

Per task: each human's accuracy with its 95% bootstrap interval (the run report's method, Average row),
the median time per answer, and for each run the gap run - human, against the majority vote where there
is one (else the annotator with the most answers).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from mmeval import scoring, tasks
from mmeval.config import RunRecord
from mmeval.errors import InputError
from mmeval.layout import HUMAN_MODEL, HUMAN_PANEL_MODEL, RUN_FILE
from mmeval.report.analysis import RunData, bootstrap_ci, load_run, plain_preds, read_timings

#: version of human_panel.json (bumped when its fields change meaning)
HUMAN_PANEL_SCHEMA_VERSION = 1
FILE = "human_panel.json"


class TaskMeasure(BaseModel):
    """One task (or the Average) of one run or human: accuracy with its interval, and the median time per answer."""

    model_config = ConfigDict(frozen=True)

    task: str
    accuracy: float | None
    lo: float | None
    hi: float | None
    median_seconds: float | None
    questions: int


class Measured(BaseModel):
    """A run or a human, measured per task."""

    model_config = ConfigDict(frozen=True)

    label: str
    dir: str
    answered: int
    tasks: list[TaskMeasure]

    def of(self, task: str) -> TaskMeasure | None:
        return next((t for t in self.tasks if t.task == task), None)


class Gap(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: str
    gap: float | None  # run - human, in points


class RunVsHuman(BaseModel):
    model_config = ConfigDict(frozen=True)

    run: Measured
    gaps: list[Gap]


class HumanPanel(BaseModel):
    """human_panel.json: the humans who answered the run's sample, and each run's gap to them."""

    model_config = ConfigDict(frozen=True)

    version: int = HUMAN_PANEL_SCHEMA_VERSION
    subset: str
    folders: list[str]
    humans: list[Measured]
    reference: str  # the human the gaps are taken against
    runs: list[RunVsHuman]


def _nan_none(value: float) -> float | None:
    return None if value != value else float(value)  # NaN -> None


def measure(rd: RunData, *, n_boot: int = 1000, seed: int = 0) -> Measured:
    """Per task and Average: accuracy (scores.csv's Average row), its bootstrap interval, median seconds per answer."""
    preds = plain_preds(rd.preds)
    ci = bootstrap_ci(preds, n_boot=n_boot, seed=seed)
    cells: dict[str, dict[str, float]] = {str(r["metric"]): {k: float(r[k]) for k in ("value", "lo", "hi")}
                                          for r in ci[ci["dataset"] == scoring.AVERAGE].to_dict("records")}
    seconds, _ = read_timings(rd.path)
    by_task: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for p in preds:
        counts[p.task] = counts.get(p.task, 0) + 1
        if p.id in seconds:
            by_task.setdefault(p.task, []).append(seconds[p.id])
    every = [s for values in by_task.values() for s in values]
    rows = []
    for task in [t for t in tasks.task_names() if t in counts] + [scoring.AVERAGE]:
        cell = cells.get(task, {"value": float("nan"), "lo": float("nan"), "hi": float("nan")})
        times = every if task == scoring.AVERAGE else by_task.get(task, [])
        rows.append(TaskMeasure(
            task=task, accuracy=_nan_none(cell["value"]), lo=_nan_none(cell["lo"]), hi=_nan_none(cell["hi"]),
            median_seconds=statistics.median(times) if times else None,
            questions=len(preds) if task == scoring.AVERAGE else counts.get(task, 0)))
    return Measured(label=rd.model, dir=str(rd.path.resolve()), answered=len(preds), tasks=rows)


def human_run_dirs(folder: Path) -> list[Path]:
    """The human runs in a panel's folder (or the folder itself when it is one), the majority vote first."""
    candidates = [folder] if (folder / RUN_FILE).is_file() else sorted(p for p in folder.iterdir() if p.is_dir())
    found = []
    for path in candidates:
        try:
            record = RunRecord.read(path / RUN_FILE) if (path / RUN_FILE).is_file() else None
        except InputError:
            continue
        if record is not None and record.config.model.startswith(HUMAN_MODEL):
            found.append((record.config.model != HUMAN_PANEL_MODEL, path))
    return [path for _, path in sorted(found)]


def _answers(path: Path) -> RunData | None:
    try:
        return load_run(path)
    except InputError:
        return None  # no answers yet


def _sample_of(runs: Sequence[RunData]) -> str | None:
    samples = {r.config.subset for r in runs}
    return samples.pop() if len(samples) == 1 else None


def find_panel(runs: Sequence[RunData], extra: Sequence[Path] = (), *, n_boot: int = 1000,
               seed: int = 0) -> HumanPanel | None:
    """The humans who answered the same sample as every run (see the module docstring); None when there are none.

    A folder given in ``extra`` (``--human``) that holds no human answers to that sample is an InputError.
    """
    sample = _sample_of(runs)
    for folder in extra:
        if not Path(folder).is_dir():
            raise InputError(f"--human {folder}: no such folder")
    if sample is None:
        if extra:
            raise InputError("--human: the runs were not run on one sample (mmeval run --subset), so no human panel "
                             "measured on a sample can be compared with them")
        return None
    explicit = [Path(f).resolve() for f in extra]
    folders = list(explicit) + [Path(r.config.subset_path).parent.resolve() for r in runs
                                if r.config.subset_path and Path(r.config.subset_path).parent.is_dir()]
    humans: dict[Path, RunData] = {}
    used: list[str] = []
    for folder in dict.fromkeys(folders):
        matching = [rd for rd in map(_answers, human_run_dirs(folder)) if rd is not None and rd.config.subset == sample]
        if folder in explicit and not matching:
            raise InputError(f"--human {folder}: holds no human answers to sample {sample} (the runs' --subset)")
        if matching:
            used.append(str(folder))
            humans.update({rd.path.resolve(): rd for rd in matching if rd.path.resolve() not in humans})
    if not humans:
        return None
    measured = [measure(h, n_boot=n_boot, seed=seed) for h in humans.values()]
    ref = next((m for m in measured if m.label == HUMAN_PANEL_MODEL), max(measured, key=lambda m: m.answered))
    versus = []
    for r in runs:
        m = measure(r, n_boot=n_boot, seed=seed)
        gaps = []
        for t in m.tasks:
            h = ref.of(t.task)
            gap = t.accuracy - h.accuracy if h and h.accuracy is not None and t.accuracy is not None else None
            gaps.append(Gap(task=t.task, gap=gap))
        versus.append(RunVsHuman(run=m, gaps=gaps))
    return HumanPanel(subset=sample, folders=used, humans=measured, reference=ref.label, runs=versus)


def page_rows(panel: HumanPanel) -> dict[str, object]:
    """What a page shows of a panel: one row per task, cells per human and per run (gap included)."""
    order = [t for t in tasks.task_names() + [scoring.AVERAGE]
             if any(h.of(t) for h in panel.humans) or any(r.run.of(t) for r in panel.runs)]
    rows = []
    for t in order:
        rows.append({
            "task": t,
            "humans": [h.of(t) for h in panel.humans],
            "runs": [{"m": r.run.of(t), "gap": next((g.gap for g in r.gaps if g.task == t), None)} for r in panel.runs],
        })
    return {"rows": rows, "humans": panel.humans, "runs": [r.run for r in panel.runs], "reference": panel.reference,
            "subset": panel.subset, "folders": panel.folders}


def text_summary(panel: HumanPanel) -> str:
    """Per task: each human's accuracy [interval] and median seconds, each run's gap to the reference."""
    lines = [f"Measured human panel (sample {panel.subset}; gap = run - {panel.reference}):"]
    for t in page_rows(panel)["rows"]:  # type: ignore[attr-defined]
        cells = []
        for h in t["humans"]:
            if h is not None and h.accuracy is not None:
                secs = f", {h.median_seconds:.1f} s" if h.median_seconds is not None else ""
                cells.append(f"{h.accuracy:.1f} [{h.lo:.1f}, {h.hi:.1f}]{secs}")
            else:
                cells.append("-")
        gaps = [f"{r['gap']:+.1f}" if r["gap"] is not None else "-" for r in t["runs"]]
        lines.append(f"  {t['task']:<22} " + " | ".join(cells) + "   gap: " + " ".join(gaps))
    lines.append("  humans: " + ", ".join(h.label for h in panel.humans) + "; runs: "
                 + ", ".join(r.run.label for r in panel.runs))
    return "\n".join(lines)
