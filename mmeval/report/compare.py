"""``mmeval compare``: runs side by side, with the human baseline and published MMAD rows.

One row per run (its Average-over-datasets row) and per reference; the first run is the baseline
every later run is tested against (paired McNemar per task, see :func:`mmeval.report.analysis.paired_mcnemar`).
Writes, with ``out``: compare.csv, compare.json, heatmap.svg (model x task, the fixed colour scale of
every mmeval heatmap) and compare.html.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from mmeval import scoring, tasks
from mmeval.errors import InputError
from mmeval.jsonsafe import json_safe
from mmeval.predictions import Prediction
from mmeval.report import analysis, human_panel, references
from mmeval.report.analysis import Analysis, RunData
from mmeval.report.answer_rows import MAX_WRONG, AnswerRow, Thumbnails, answer_rows, row_tasks, wrong_answers
from mmeval.report.csvsafe import write_csv
from mmeval.report.figures import bars_vs_human, heatmap
from mmeval.report.html import COMPARE_TEMPLATE, write_page


@dataclass(frozen=True)
class PairedTest:
    """Run ``b`` tested against the baseline ``a``: paired McNemar per task (:func:`analysis.paired_mcnemar`)."""

    a: str
    b: str
    table: pd.DataFrame


@dataclass(frozen=True)
class Coverage:
    """Which questions a comparison stands on: those every run answered, with the same content."""

    shared: int
    per_run: list[int]  # plain questions each run holds
    differing: int  # ids present in every run whose question, options or answer differ

    @property
    def complete(self) -> bool:
        return self.differing == 0 and all(n == self.shared for n in self.per_run)

    def note(self) -> str:
        if self.complete:
            return ""
        return (f"The runs do not hold the same questions ({', '.join(map(str, self.per_run))} questions; "
                f"{self.differing} with the same id but other content): every figure here is computed on the "
                f"{self.shared} questions all of them answered alike.")


@dataclass
class Comparison:
    table: pd.DataFrame  # label -> kind, source, task columns, Average, detection metrics, Average CI
    runs: list[RunData]
    results: list[Analysis]
    tests: list[PairedTest] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    coverage: Coverage | None = None
    #: people who answered the same sample as the runs (mmeval human serve), if any
    panel: human_panel.HumanPanel | None = None
    tasks: list[str] = field(default_factory=list)  # the task columns: those the runs ask, in report order

    @property
    def task_cols(self) -> list[str]:
        """The task columns and their Average: what the heatmap, the bars and the terminal show."""
        return self.tasks + [scoring.AVERAGE]


def parse_with(values: Sequence[str] | None) -> list[str]:
    """``--with a,b --with c`` -> canonical reference names, in order, without repeats (InputError if unknown)."""
    names: list[str] = []
    for value in values or []:
        for part in value.split(","):
            if part.strip():
                canon = references.resolve(part)
                if canon not in names:
                    names.append(canon)
    return names


def _labels(runs: Sequence[RunData]) -> list[str]:
    base = [r.label for r in runs]
    out = []
    for r, label in zip(runs, base, strict=True):
        out.append(f"{label} [{r.path.name}]" if base.count(label) > 1 else label)
    if len(set(out)) < len(out):  # same directory name twice: number them
        out = [f"{label} #{i + 1}" for i, label in enumerate(out)]
    return out


def _content(p: Prediction) -> tuple[str, ...]:
    """What makes two runs' answers to a question comparable: the same question, option texts and answer."""
    return (p.question, *sorted(p.options.values()), p.options.get(p.answer, ""))


def shared_questions(runs: Sequence[RunData]) -> tuple[set[str], Coverage]:
    """The plain question ids every run answered with the same content, and how many were left out."""
    contents = [{p.id: _content(p) for p in analysis.plain_preds(r.preds)} for r in runs]
    common = set.intersection(*(set(c) for c in contents)) if contents else set()
    same = {i for i in common if all(c[i] == contents[0][i] for c in contents)}
    return same, Coverage(shared=len(same), per_run=[len(c) for c in contents], differing=len(common - same))


def _restrict(run: RunData, ids: set[str]) -> RunData:
    """The run's predictions of the shared questions (their rotations too; probes of the shared images)."""
    images = {p.image for p in run.preds if p.id in ids}
    keep = [p for p in run.preds if (p.base_id or p.id) in ids or (p.variant == analysis.PROBE and p.image in images)]
    return replace(run, preds=keep)


def compare(run_dirs: Sequence[Path], with_refs: Sequence[str] = (), *, cycle_ms: float | None = None,
            n_boot: int = 1000, seed: int = 0, humans: Sequence[Path] = ()) -> Comparison:
    """The runs side by side (see the module docstring); ``humans``: folders of human panels to look in besides
    the runs' subset folder (:func:`mmeval.report.human_panel.find_panel`)."""
    refs = parse_with(with_refs)
    if not run_dirs:
        raise InputError("compare needs at least one run directory")
    runs = [analysis.load_run(Path(d)) for d in run_dirs]
    ids, coverage = shared_questions(runs)
    if not ids:
        raise InputError("these runs share no question (same id, question, options and answer): they were run on "
                         "different data, so there is nothing to compare")
    if not coverage.complete:
        runs = [_restrict(r, ids) for r in runs]
    labels = _labels(runs)
    results = [analysis.analyse(r.preds, run_dir=r.path, cycle_ms=cycle_ms, n_boot=n_boot, seed=seed) for r in runs]
    avg = scoring.AVERAGE
    asked = tasks.in_order(t for res in results for t in scoring.task_columns(res.table))
    cols = scoring.columns(asked)
    rows = []
    for r, label, res in zip(runs, labels, results, strict=True):
        avg_row = scoring.table_row(res.table, avg)
        lo, hi = res.ci_of(avg, avg)
        rows.append({"label": label, "kind": "run", "source": str(r.path.resolve()),
                     **{c: avg_row.get(c, float("nan")) for c in cols}, "Average_lo": lo, "Average_hi": hi})
    for name in refs:
        ref = references.reference_row(name)
        rows.append({"label": ref.label, "kind": ref.kind, "source": ref.source,
                     **{c: ref.score(c) for c in cols}, **ref.over(asked),
                     "Average_lo": float("nan"), "Average_hi": float("nan")})
    table = pd.DataFrame(rows).set_index("label")
    tests = [PairedTest(labels[0], labels[i], analysis.paired_mcnemar(runs[0].preds, runs[i].preds))
             for i in range(1, len(runs))]
    panel = human_panel.find_panel(runs, humans, n_boot=n_boot, seed=seed)
    return Comparison(table, runs, results, tests, refs, coverage, panel, asked)


def _summary_row(label: str, res: Analysis) -> dict[str, Any]:
    overall = res.overall_hallucination()
    det, cal, lat = res.detection_scores, res.calibration, res.latency
    circ = res.circular
    circ_avg = circ[circ["task"] == scoring.AVERAGE].iloc[0].to_dict() if not circ.empty else {}
    invalid = res.invalid
    inv_all = invalid[invalid["task"] == "All questions"]
    return {
        "label": label, "overkill": overall.get("overkill"), "miss": overall.get("miss"),
        "fabrication": res.fabrication.rate, "probes": res.fabrication.valid,
        "inconsistency": res.self_inconsistency.all.rate,
        "invalid_rate": float(inv_all["invalid_rate"].iloc[0]) if not inv_all.empty else float("nan"),
        "auroc": det.auroc, "aupr": det.aupr, "ece": cal.ece,
        "image_p50_ms": lat.image_p50_ms, "image_p95_ms": lat.image_p95_ms,
        "questions_per_second": lat.questions_per_second, "keeps_up": lat.keeps_up,
        "circular": circ_avg.get("circular"), "circular_plain": circ_avg.get("plain"),
    }


def _changes(base: RunData, run: RunData) -> tuple[list[Prediction], list[Prediction]]:
    """The plain questions ``run`` answers wrong and ``base`` right (regressions), and the reverse (fixed)."""
    base_by_id = {p.id: p for p in analysis.plain_preds(base.preds)}
    regress, improve = [], []
    for p in analysis.plain_preds(run.preds):
        q = base_by_id.get(p.id)
        if q is None or q.options.get(q.answer, "").strip() != p.options.get(p.answer, "").strip():
            continue
        if q.correct and not p.correct:
            regress.append(p)
        elif p.correct and not q.correct:
            improve.append(p)
    return regress, improve


def write(comp: Comparison, out: Path, *, cycle_ms: float | None = None) -> dict[str, Path]:
    """compare.csv, compare.json, heatmap.svg and compare.html in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    table = comp.table
    write_csv(table, out / "compare.csv", float_format="%.4f")
    heatmap_svg = heatmap(table[comp.task_cols], out / "heatmap.svg", "MMAD accuracy: model × task")
    labels = list(table.index[table["kind"] == "run"])
    summaries = [_summary_row(label, res) for label, res in zip(labels, comp.results, strict=True)]
    payload = {
        "runs": [{"label": label, "dir": str(r.path.resolve()), "config": r.config.model_dump(mode="json"),
                  "digest": r.record.digest} for label, r in zip(labels, comp.runs, strict=True)],
        "references": comp.references, "reference_source": references.SOURCE,
        "human_caveat": references.HUMAN_CAVEAT,
        "table": table.reset_index().to_dict(orient="records"),
        "tests": [{"a": t.a, "b": t.b, "mcnemar": t.table.to_dict(orient="records")} for t in comp.tests],
        "summaries": summaries,
        "per_run": {label: res.record(label).jsonable(exclude={"version", "title", "table"})
                    for label, res in zip(labels, comp.results, strict=True)},
        "cycle_ms": cycle_ms,
        "coverage": {"shared": comp.coverage.shared, "per_run": comp.coverage.per_run,
                     "differing": comp.coverage.differing, "note": comp.coverage.note()} if comp.coverage else None,
        "comparable_with_references": _comparable(comp),
        "human_panel": comp.panel.model_dump(mode="json") if comp.panel else None,
    }
    (out / "compare.json").write_text(json.dumps(json_safe(payload), indent=1, ensure_ascii=False, default=str),
                                      encoding="utf-8")
    write_page(out / "compare.html", COMPARE_TEMPLATE, compare_page(comp, labels, summaries, heatmap_svg,
                                                                    cycle_ms))
    return {"html": out / "compare.html", "csv": out / "compare.csv", "json": out / "compare.json",
            "heatmap": out / "heatmap.svg"}


def compare_page(comp: Comparison, labels: list[str], summaries: list[dict[str, Any]], heatmap_svg: str,
                 cycle_ms: float | None) -> dict[str, Any]:
    """What compare.html shows (the context of its template); ``heatmap_svg``: the model x task heatmap."""
    table = comp.table
    series = [res.gap_series(label) for label, res in zip(labels, comp.results, strict=True)]
    for label, row in table[table["kind"] == "published"].iterrows():
        series.append({"label": label, "values": row.to_dict()})
    bars = bars_vs_human(series, "Accuracy per task vs human expert (approx.); runs with 95% bootstrap CI", comp.tasks)

    thumbs = Thumbnails()
    diffs = []
    for t, run in zip(comp.tests, comp.runs[1:], strict=True):
        regress, improve = _changes(comp.runs[0], run)
        rows: list[AnswerRow] = answer_rows(regress, run.image_root(), thumbs, MAX_WRONG, "regression")
        rows += answer_rows(improve, run.image_root(), thumbs, max(0, MAX_WRONG - len(rows)), "fixed")
        diffs.append({"a": t.a, "b": t.b, "rows": rows, "regressions": len(regress), "fixed": len(improve),
                      "tasks": row_tasks(rows)})
    wrong, n_wrong = wrong_answers(comp.runs[-1].preds)
    wrong_rows = answer_rows(wrong, comp.runs[-1].image_root(), thumbs, MAX_WRONG)
    cols = comp.task_cols
    ci_rows = []
    for label, res in zip(labels, comp.results, strict=True):
        avg = res.ci[res.ci["dataset"] == scoring.AVERAGE] if not res.ci.empty else res.ci
        cells = {m: [v, lo, hi] for m, v, lo, hi in zip(avg["metric"], avg["value"], avg["lo"], avg["hi"], strict=True)}
        ci_rows.append({"label": label, "cells": [cells.get(c, [None] * 3) for c in cols]})
    detection = [m for m in scoring.DETECTION_METRICS if m in table.columns]
    return {
        "title": "MMAD comparison: " + " vs ".join(list(table.index)[:4]) + (" …" if len(table) > 4 else ""),
        "rows": [{"label": label, "kind": r["kind"], "source": r["source"], "cells": [r[c] for c in cols],
                  "lo": r["Average_lo"], "hi": r["Average_hi"],
                  "detection": [r[c] for c in detection]} for label, r in table.iterrows()],
        "cols": cols, "detection_cols": detection,
        "heatmap": heatmap_svg, "bars": bars,
        "human_caveat": references.HUMAN_CAVEAT, "reference_source": references.SOURCE,
        "tests": [{"a": t.a, "b": t.b, "rows": t.table.to_dict(orient="records")} for t in comp.tests],
        "summaries": summaries, "cycle_ms": cycle_ms, "diffs": diffs, "ci_rows": ci_rows,
        "bootstrap": comp.results[0].bootstrap,
        "last_label": labels[-1], "wrong_rows": wrong_rows, "wrong_total": n_wrong,
        "wrong_tasks": row_tasks(wrong_rows),
        "thumb_css": thumbs.css(),
        "runs": [{"label": label, "dir": str(r.path), "config": r.config}
                 for label, r in zip(labels, comp.runs, strict=True)],
        "coverage_note": comp.coverage.note() if comp.coverage else "",
        "comparable": _comparable(comp), "not_comparable": references.NOT_COMPARABLE,
        "panel": human_panel.page_rows(comp.panel) if comp.panel else None,
    }


def _comparable(comp: Comparison) -> bool:
    """Whether MMAD's reference rows are comparable with the runs (every run on MMAD's datasets)."""
    return all(references.measured_on_mmad({p.dataset for p in r.preds}) for r in comp.runs)


def text_summary(comp: Comparison) -> str:
    """The model x task table and the significance tests, for the terminal."""
    lines = [comp.table[comp.task_cols].round(1).to_string()]
    if comp.coverage is not None and comp.coverage.note():
        lines.append("\n" + comp.coverage.note())
    for t in comp.tests:
        lines.append(f"\nA = {t.a}  vs  B = {t.b} (paired McNemar per task; Holm-adjusted across tasks)")
        view = t.table[["task", "paired", "acc_a", "acc_b", "a_only", "b_only", "p", "p_holm", "method", "verdict"]]
        lines.append(view.round({"acc_a": 1, "acc_b": 1, "p": 4, "p_holm": 4}).to_string(index=False))
    if comp.panel is not None:
        lines.append("\n" + human_panel.text_summary(comp.panel))
    if any(k != "run" for k in comp.table["kind"]):
        if not _comparable(comp):
            lines.append("\n" + references.NOT_COMPARABLE)
        lines.append("\n" + references.HUMAN_CAVEAT)
        lines.append(f"References: {references.SOURCE}")
    return "\n".join(lines)
