"""A run's report files, from its directory: scores.csv, scores.json, heatmap.svg, analysis.json, ci.csv,
mmad_answers.json and report.html."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mmeval import heap
from mmeval.predictions import Prediction
from mmeval.report.csvsafe import write_csv
from mmeval.report.html import RUN_TEMPLATE, write_page
from mmeval.report.official import export_answers
from mmeval.report.score_files import RunScores, ScoresRecord, Skipped, usage_totals, write_tables

if TYPE_CHECKING:
    from mmeval.report.analysis import RunData

#: the files write_run_report writes beside report.html, as the page lists them
FILES = ["scores.csv", "scores.json", "ci.csv", "analysis.json", "mmad_answers.json", "heatmap.svg"]


def write_run_report(run_dir: Path, *, cycle_ms: float | None = None, html: bool = True,
                     n_boot: int = 1000, seed: int = 0, preds: list[Prediction] | None = None,
                     humans: Sequence[Path] = ()) -> pd.DataFrame:
    """Score a run directory (predictions.jsonl + run.json) into its report files; returns the score table.

    scores.csv, scores.json, heatmap.svg, analysis.json (hallucination, bootstrap CIs, calibration, latency,
    CircularEval: see :mod:`mmeval.report.analysis`), ci.csv, mmad_answers.json (the benchmark questions in
    the official MMAD answers format) and report.html. ``preds``: the run's predictions.jsonl as its writer
    just wrote it (read from the file when not given). A measured human panel on the run's sample (found
    beside its subset file, or in ``humans``: see :mod:`mmeval.report.human_panel`) goes into report.html and
    human_panel.json.
    """
    # the analyses (scipy and the rest) load when there is a run to report on, not when ``mmeval run`` starts
    from mmeval.report import analysis

    with heap.records_kept():
        with heap.building():
            rd = analysis.load_run(run_dir, preds=preds)
        return _write(run_dir, rd, cycle_ms=cycle_ms, html=html, n_boot=n_boot, seed=seed, humans=humans)


def _write(run_dir: Path, rd: RunData, *, cycle_ms: float | None, html: bool, n_boot: int,
           seed: int, humans: Sequence[Path] = ()) -> pd.DataFrame:
    from mmeval.report import analysis, human_panel
    from mmeval.report.run_page import run_page

    root = rd.image_root()
    res = analysis.analyse(rd.preds, run_dir=run_dir, cycle_ms=cycle_ms, n_boot=n_boot, seed=seed,
                           masks=analysis.masks_of(rd.record.source, root), image_root=root)
    record = RunScores(title=rd.title, scores=ScoresRecord.table_scores(res.table), counts=res.counts,
                       run=rd.record, skipped=Skipped(count=len(rd.skipped), records=rd.skipped),
                       usage=usage_totals(rd.usage), status=rd.status)
    heatmap = write_tables(res.table, record, run_dir)
    (run_dir / "analysis.json").write_text(
        json.dumps(res.record(rd.title).jsonable(), indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    write_csv(res.ci, run_dir / "ci.csv", index=False, float_format="%.4f")
    export_answers(analysis.plain_preds(rd.preds), run_dir / "mmad_answers.json")
    panel = human_panel.find_panel([rd], humans, n_boot=n_boot, seed=seed)
    if panel is not None:
        (run_dir / human_panel.FILE).write_text(panel.model_dump_json(indent=1), encoding="utf-8")
    else:
        (run_dir / human_panel.FILE).unlink(missing_ok=True)
    if html:
        write_page(run_dir / "report.html", RUN_TEMPLATE,
                   run_page(rd, res, heatmap_svg=heatmap, files=FILES, panel=panel))
    return res.table
