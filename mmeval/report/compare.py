"""``mmeval compare``: runs side by side, with the human baseline and published MMAD rows.

One row per run (its Average-over-datasets row) and per reference; the first run is the baseline
every later run is tested against (paired McNemar per task, see :func:`mmeval.report.analysis.paired_mcnemar`).
Writes, with ``out``: compare.csv, compare.json, heatmap.png (model x task, the fixed colour scale of
every mmeval heatmap) and compare.html.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mmeval import tasks as task_registry
from mmeval.errors import InputError
from mmeval.jsonsafe import json_safe
from mmeval.report import analysis, references
from mmeval.report import run_report as reports

DETECTION = ["Recall", "Precision", "F1", "Overkill", "Miss"]


@dataclass
class Comparison:
    table: pd.DataFrame  # label -> kind, source, task columns, Average, detection metrics, Average CI
    runs: list[analysis.RunData]
    results: list[dict[str, Any]]
    tests: list[dict[str, Any]] = field(default_factory=list)  # {"a", "b", "table": DataFrame}
    references: list[str] = field(default_factory=list)


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


def _labels(runs: Sequence[analysis.RunData]) -> list[str]:
    base = [r.label for r in runs]
    out = []
    for r, label in zip(runs, base):
        out.append(f"{label} [{r.path.name}]" if base.count(label) > 1 else label)
    if len(set(out)) < len(out):  # same directory name twice: number them
        out = [f"{label} #{i + 1}" for i, label in enumerate(out)]
    return out


def compare(run_dirs: Sequence[Path], with_refs: Sequence[str] = (), *, cycle_ms: float | None = None,
            n_boot: int = 1000, seed: int = 0) -> Comparison:
    refs = parse_with(with_refs)
    if not run_dirs:
        raise InputError("compare needs at least one run directory")
    runs = [analysis.load_run(Path(d)) for d in run_dirs]
    labels = _labels(runs)
    results = [analysis.analyse(r.preds, run_dir=r.path, cycle_ms=cycle_ms, n_boot=n_boot, seed=seed) for r in runs]
    cols = task_registry.task_names() + ["Average"] + DETECTION
    rows = []
    for r, label, res in zip(runs, labels, results):
        avg = res["table"].loc["Average"] if "Average" in res["table"].index else pd.Series(dtype=float)
        ci = res["ci"]
        avg_ci = ci[(ci["dataset"] == "Average") & (ci["metric"] == "Average")]
        rows.append({"label": label, "kind": "run", "source": str(r.path.resolve()),
                     **{c: float(avg.get(c, float("nan"))) for c in cols},
                     "Average_lo": float(avg_ci["lo"].iloc[0]) if not avg_ci.empty else float("nan"),
                     "Average_hi": float(avg_ci["hi"].iloc[0]) if not avg_ci.empty else float("nan")})
    for name in refs:
        ref = references.reference_row(name)
        rows.append({"label": ref["label"], "kind": ref["kind"], "source": ref["source"],
                     **{c: float(ref.get(c, float("nan"))) for c in cols},
                     "Average_lo": float("nan"), "Average_hi": float("nan")})
    table = pd.DataFrame(rows).set_index("label")
    tests = []
    for i in range(1, len(runs)):
        tests.append({"a": labels[0], "b": labels[i], "table": analysis.paired_mcnemar(runs[0].preds, runs[i].preds)})
    return Comparison(table, runs, results, tests, refs)


def _summary_row(label: str, res: dict[str, Any]) -> dict[str, Any]:
    hall = res["hallucination"]
    overall = hall[(hall["dataset"] == "*") & (hall["category"] == "*")].iloc[0].to_dict() if not hall.empty else {}
    det, cal, lat = res["detection_scores"], res["calibration"], res["latency"]
    circ = res["circular"]
    circ_avg = circ[circ["task"] == "Average"].iloc[0].to_dict() if not circ.empty else {}
    invalid = res["invalid"]
    inv_all = invalid[invalid["task"] == "All questions"]
    return {
        "label": label, "overkill": overall.get("overkill"), "miss": overall.get("miss"),
        "fabrication": res["fabrication"]["rate"], "probes": res["fabrication"]["valid"],
        "inconsistency": res["self_inconsistency"]["all"]["rate"],
        "invalid_rate": float(inv_all["invalid_rate"].iloc[0]) if not inv_all.empty else float("nan"),
        "auroc": det.get("auroc") if det.get("available") else None,
        "aupr": det.get("aupr") if det.get("available") else None,
        "ece": cal.get("ece") if cal.get("available") else None,
        "image_p50_ms": lat.get("image_p50_ms"), "image_p95_ms": lat.get("image_p95_ms"),
        "questions_per_second": lat.get("questions_per_second"), "keeps_up": lat.get("keeps_up"),
        "circular": circ_avg.get("circular"), "circular_plain": circ_avg.get("plain"),
    }


def write(comp: Comparison, out: Path, *, cycle_ms: float | None = None) -> dict[str, Path]:
    """compare.csv, compare.json, heatmap.png and compare.html in ``out``."""
    from mmeval.report import html as html_report

    out.mkdir(parents=True, exist_ok=True)
    table = comp.table
    table.to_csv(out / "compare.csv", float_format="%.4f")
    heat = table[[c for c in task_registry.task_names() + ["Average"]]]
    reports.heatmap(heat, out / "heatmap.png", "MMAD accuracy: model × task")
    labels = list(table.index[table["kind"] == "run"])
    summaries = [_summary_row(label, res) for label, res in zip(labels, comp.results)]
    payload = {
        "runs": [{"label": label, "dir": str(r.path.resolve()), "config": r.config, "digest": r.run.get("digest")}
                 for label, r in zip(labels, comp.runs)],
        "references": comp.references, "reference_source": references.SOURCE,
        "human_caveat": references.HUMAN_CAVEAT,
        "table": table.reset_index().to_dict(orient="records"),
        "tests": [{"a": t["a"], "b": t["b"], "mcnemar": t["table"].to_dict(orient="records")} for t in comp.tests],
        "summaries": summaries,
        "per_run": {label: analysis.to_jsonable({k: v for k, v in res.items() if k != "table"})
                    for label, res in zip(labels, comp.results)},
        "cycle_ms": cycle_ms,
    }
    (out / "compare.json").write_text(json.dumps(json_safe(payload), indent=1, ensure_ascii=False, default=str),
                                      encoding="utf-8")

    series = []
    for label, res in zip(labels, comp.results):
        gap = res["human_gap"]
        series.append({"label": label, "values": dict(zip(gap["task"], gap["run"])),
                       "lo": dict(zip(gap["task"], gap["lo"])), "hi": dict(zip(gap["task"], gap["hi"]))})
    for label, row in table[table["kind"] == "published"].iterrows():
        series.append({"label": label, "values": row.to_dict()})
    bars = html_report.bars_vs_human(series, "Accuracy per task vs human expert (approx.); runs with 95% bootstrap CI")

    thumbs: dict[str, tuple[str, str | None]] = {}
    diffs = []
    if comp.tests:
        base = comp.runs[0]
        base_by_id = {p.id: p for p in analysis.plain_preds(base.preds)}
        for t, run in zip(comp.tests, comp.runs[1:]):
            regress, improve = [], []
            for p in analysis.plain_preds(run.preds):
                q = base_by_id.get(p.id)
                if q is None or q.options.get(q.answer, "").strip() != p.options.get(p.answer, "").strip():
                    continue
                if q.correct and not p.correct:
                    regress.append(p)
                elif p.correct and not q.correct:
                    improve.append(p)
            rows = html_report._answer_rows(regress, run.image_root(), thumbs, html_report.MAX_WRONG,
                                            {"extra": "regression"})
            rows += html_report._answer_rows(improve, run.image_root(), thumbs,
                                             max(0, html_report.MAX_WRONG - len(rows)), {"extra": "fixed"})
            diffs.append({"a": t["a"], "b": t["b"], "rows": rows, "regressions": len(regress),
                          "fixed": len(improve), "tasks": list(dict.fromkeys(r["task"] for r in rows))})
    wrong, n_wrong = html_report.wrong_answers(comp.runs[-1].preds)
    wrong_rows = html_report._answer_rows(wrong, comp.runs[-1].image_root(), thumbs, html_report.MAX_WRONG)
    cols = task_registry.task_names() + ["Average"]
    ci_rows = []
    for label, res in zip(labels, comp.results):
        ci = res["ci"]
        avg = ci[ci["dataset"] == "Average"].set_index("metric") if not ci.empty else pd.DataFrame()
        ci_rows.append({"label": label, "cells": [avg.loc[c, ["value", "lo", "hi"]].tolist() if c in avg.index
                                                  else [None] * 3 for c in cols]})
    context = {
        "title": "MMAD comparison: " + " vs ".join(list(table.index)[:4]) + (" …" if len(table) > 4 else ""),
        "rows": [{"label": label, "kind": r["kind"], "source": r["source"], "cells": [r[c] for c in cols],
                  "lo": r["Average_lo"], "hi": r["Average_hi"],
                  "detection": [r[c] for c in DETECTION]} for label, r in table.iterrows()],
        "cols": cols, "detection_cols": DETECTION,
        "heatmap": html_report.png_b64(out / "heatmap.png"), "bars": bars,
        "human_caveat": references.HUMAN_CAVEAT, "reference_source": references.SOURCE,
        "tests": [{"a": t["a"], "b": t["b"], "rows": t["table"].to_dict(orient="records")} for t in comp.tests],
        "summaries": summaries, "cycle_ms": cycle_ms, "diffs": diffs, "ci_rows": ci_rows,
        "bootstrap": comp.results[0]["bootstrap"],
        "last_label": labels[-1], "wrong_rows": wrong_rows, "wrong_total": n_wrong,
        "wrong_tasks": list(dict.fromkeys(r["task"] for r in wrong_rows)),
        "thumb_css": html_report.thumb_css(thumbs),
        "runs": [{"label": label, "dir": str(r.path), "config": r.config} for label, r in zip(labels, comp.runs)],
    }
    html_report.write_compare_html(out / "compare.html", context)
    return {"html": out / "compare.html", "csv": out / "compare.csv", "json": out / "compare.json",
            "heatmap": out / "heatmap.png"}


def text_summary(comp: Comparison) -> str:
    """The model x task table and the significance tests, for the terminal."""
    cols = task_registry.task_names() + ["Average"]
    lines = [comp.table[cols].round(1).to_string()]
    for t in comp.tests:
        lines.append(f"\nA = {t['a']}  vs  B = {t['b']} (paired McNemar per task; Holm-adjusted across tasks)")
        view = t["table"][["task", "paired", "acc_a", "acc_b", "a_only", "b_only", "p", "p_holm", "method", "verdict"]]
        lines.append(view.round({"acc_a": 1, "acc_b": 1, "p": 4, "p_holm": 4}).to_string(index=False))
    if any(k != "run" for k in comp.table["kind"]):
        lines.append("\n" + references.HUMAN_CAVEAT)
        lines.append(f"References: {references.SOURCE}")
    return "\n".join(lines)
