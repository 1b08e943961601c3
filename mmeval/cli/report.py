"""``mmeval report``, ``mmeval compare`` and ``mmeval score-mmad``: scores and reports from answers on disk."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mmeval.cli import args as flags
from mmeval.errors import InputError

_CYCLE_HELP = "production line cycle time in milliseconds: the report says whether the model keeps up"
_HUMAN_HELP = ("a human panel's folder (mmeval human serve --out): people who answered the same sample (--subset) are "
               "shown beside the run(s), with the gap per task; a panel beside the run's subset file is found without "
               "it (repeatable)")


def add_parser(sub: Any) -> None:
    rep = sub.add_parser("report", help="(re)write the report of a run directory",
                         description="Score RUN_DIR/predictions.jsonl into scores.csv, scores.json, analysis.json, "
                                     "report.html and heatmap.svg.")
    rep.add_argument("run_dir", help="a directory written by 'mmeval run'")
    rep.add_argument("--cycle-ms", type=flags.positive_ms, metavar="MS", help=_CYCLE_HELP)
    rep.add_argument("--human", action="append", default=[], metavar="DIR", help=_HUMAN_HELP)
    rep.set_defaults(func=cmd_report)

    cmp = sub.add_parser(
        "compare", help="compare runs with each other, the human baseline and published MMAD results",
        description="Put runs side by side (their Average-over-datasets accuracy per task), beside the human expert "
                    "baseline and published MMAD rows; test each run against the first with a paired McNemar test "
                    "per task. With --out: compare.html, compare.csv, compare.json and heatmap.svg in OUT.")
    cmp.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories; the first is the baseline (A)")
    cmp.add_argument("--with", dest="with_refs", action="append", metavar="NAMES",
                     help="comma-separated references, matched case-insensitively: 'human' (expert, approximate), "
                          "'human-ordinary', or a published model such as 'gpt-4o', 'claude-3-5-sonnet-20241022'")
    cmp.add_argument("--out", help="directory for compare.html, compare.csv, compare.json, heatmap.svg")
    cmp.add_argument("--cycle-ms", type=flags.positive_ms, metavar="MS",
                     help="production line cycle time in milliseconds")
    cmp.add_argument("--bootstrap", type=flags.count, default=1000, metavar="N",
                     help="bootstrap resamples for the confidence intervals (default: 1000)")
    cmp.add_argument("--seed", type=flags.seed, default=0, help="bootstrap seed, a whole number of at least 0 "
                                                               "(default: 0)")
    cmp.add_argument("--human", action="append", default=[], metavar="DIR", help=_HUMAN_HELP)
    cmp.set_defaults(func=cmd_compare)

    sm = sub.add_parser("score-mmad", help="score an answers file written by the official MMAD scripts",
                        description="Re-score an official MMAD answers JSON (a list of {image, question, "
                                    "question_type, correct_answer, gpt_answer}) into the same tables.")
    sm.add_argument("answers", help="answers_*.json from the MMAD evaluation scripts")
    sm.add_argument("--out", required=True, help="directory for scores.csv, scores.json, heatmap.svg")
    sm.add_argument("--drop-invalid", action="store_true",
                    help="leave invalid answers (not one of the question's letters) out of the denominators "
                         "(default: count them wrong)")
    sm.add_argument("--official-quirks", action="store_true",
                    help="count exactly what MMAD's summary script counts, quirks included: only A-E are letters, "
                         "invalid answers are dropped, and the answer after each dropped one is skipped as its "
                         "loop skips it (reproduces published numbers; not an honest measure)")
    sm.set_defaults(func=cmd_score_mmad)


def cmd_report(args: argparse.Namespace) -> int:
    from mmeval.config import RunRecord
    from mmeval.report.run_report import write_run_report

    run_dir = Path(args.run_dir)
    cycle_ms = args.cycle_ms
    if cycle_ms is None and (run_dir / "run.json").is_file():
        cycle_ms = RunRecord.read(run_dir / "run.json").cycle_ms  # the run's own, unless given now
    table = write_run_report(run_dir, cycle_ms=cycle_ms, humans=[Path(h) for h in args.human])
    print(table.round(2).to_string(), file=sys.stderr)
    print(f"report: {Path(args.run_dir).resolve()}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from mmeval.report import compare

    comp = compare.compare([Path(r) for r in args.runs], args.with_refs or [], cycle_ms=args.cycle_ms,
                           n_boot=args.bootstrap, seed=args.seed, humans=[Path(h) for h in args.human])
    print(compare.text_summary(comp), file=sys.stderr)
    if args.out:
        files = compare.write(comp, Path(args.out), cycle_ms=args.cycle_ms)
        print(f"report: {files['html'].resolve()}")
    return 0


def cmd_score_mmad(args: argparse.Namespace) -> int:
    from mmeval import scoring
    from mmeval.report.official import answers_frame, read_answers
    from mmeval.report.score_files import OfficialScores, ScoresRecord, write_tables

    path = Path(args.answers)
    df = answers_frame(read_answers(path), official_quirks=args.official_quirks)
    if args.drop_invalid or args.official_quirks:
        df = df[df["valid"]]
    if df.empty:
        raise InputError(f"{path}: no answers to score")
    table = scoring.score_table(df)
    record = OfficialScores(title=path.stem, scores=ScoresRecord.table_scores(table), counts=scoring.counts(df),
                            source=str(path.resolve()), drop_invalid=args.drop_invalid,
                            official_quirks=args.official_quirks)
    write_tables(table, record, Path(args.out))
    print(table.round(2).to_string(), file=sys.stderr)
    print(f"report: {Path(args.out).resolve()}")
    return 0
