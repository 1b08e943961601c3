"""``mmeval data check``: is a benchmark answerable without its images? ``mmeval data fetch``: get MMAD.
``mmeval data subset``: a fixed, stratified, seeded sample of its questions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mmeval.cli import args as flags
from mmeval.errors import InputError


def add_parser(sub: Any) -> None:
    data = sub.add_parser("data", help="inspect a benchmark without a model",
                          description="Inspect a benchmark's questions without any model.")
    actions = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    chk = actions.add_parser(
        "check", help="blind baselines: can the questions be answered without the images?",
        description="Count the questions per dataset, category and type, check the answer letters for balance "
                    "(in the file and after the seeded shuffle), and try rules that never open an image (longest "
                    "and shortest option, the option text most often right elsewhere, the same knowing the "
                    "category, a text-only classifier) against chance, with 95 percent confidence intervals and a "
                    "verdict per type. Writes data_check.csv and data_check.json.")
    chk.add_argument("data", nargs="+", metavar="DATA",
                     help="an mmad.json, a directory holding one, 'synthetic[:SCALE]', 'mmad', or a table (as "
                          "'mmeval run --data' takes); several are pooled")
    chk.add_argument("--columns", metavar="FIELD=COLUMN,...",
                     help="for tables: which column holds each field (as 'mmeval run --columns')")
    chk.add_argument("--image-root", help="for tables: the folder their image paths are relative to (as 'mmeval run "
                                          "--image-root')")
    chk.add_argument("--out", help="directory for data_check.csv and data_check.json (default: beside the "
                                   "mmad.json, where a run's report can find it; required when pooling several)")
    chk.add_argument("--seed", type=flags.seed, default=0,
                     help="seed of the option shuffle, as 'mmeval run --seed' (default: 0)")
    chk.set_defaults(func=cmd_check)
    sub_ = actions.add_parser(
        "subset", help="a fixed sample of the questions: up to N per dataset x question type, seeded",
        description="Draw up to --per-type questions from every dataset x question type of a benchmark (a seeded "
                    "draw per cell: the same data, N and seed give the same sample) and write them to --out as "
                    "subset.json: the question ids and the digest that names the sample. 'mmeval run --subset FILE' "
                    "answers exactly those questions, and 'mmeval human serve --subset FILE' asks them of people; "
                    "runs on the same sample carry the same digest and compare question by question.")
    sub_.add_argument("data", metavar="DATA", help="an mmad.json, a directory holding one, 'synthetic[:SCALE]', "
                                                   "'mmad', or a table (as 'mmeval run --data' takes)")
    sub_.add_argument("--per-type", type=flags.count, required=True, metavar="N",
                      help="questions drawn per dataset x question type (all of a cell that has fewer)")
    sub_.add_argument("--seed", type=flags.seed, default=0, help="seed of the draw (default: 0)")
    sub_.add_argument("--out", required=True, metavar="SUBSET_JSON", help="the file to write (e.g. subset.json)")
    sub_.add_argument("--shots", type=flags.count_or_zero, default=1,
                      help="sample only questions whose record lists this many templates, as 'mmeval run --shots' "
                           "needs (default: 1, as run's)")
    sub_.add_argument("--templates", choices=["random", "similar"], default="random",
                      help="which template list --shots counts (default: random)")
    sub_.add_argument("--columns", metavar="FIELD=COLUMN,...", help="for tables (as 'mmeval run --columns')")
    sub_.add_argument("--image-root", help="the folder image paths are relative to (as 'mmeval run --image-root')")
    sub_.set_defaults(func=cmd_subset)
    fetch = actions.add_parser(
        "fetch", help="download a published benchmark (MMAD) from the Hugging Face hub into mmeval's cache",
        description="Download the MMAD benchmark (the dataset repository jiang-cc/MMAD: mmad.json, "
                    "domain_knowledge.json and the image archives) from the Hugging Face hub into mmeval's cache, "
                    "unpack it safely and verify its counts (39,672 questions on 8,366 images, or 39,670 in the "
                    "later revision). A dropped connection is resumed; rerunning after an interruption downloads "
                    "only what had not arrived. Afterwards '--data mmad' uses it without a network. Prints the "
                    "folder. The data is licensed CC BY-NC-SA 4.0 (non-commercial). "
                    "Needs the hub extra: pip install 'mmeval[hub]'.")
    from mmeval.data.hub import BENCHMARKS

    fetch.add_argument("name", choices=list(BENCHMARKS), help="which benchmark")
    fetch.add_argument("--revision", help="a branch, tag or commit of the dataset repository (default: main); "
                                          "'--data mmad@REVISION' uses it")
    fetch.add_argument("--force", action="store_true", help="unpack and verify again even if a verified copy exists")
    fetch.add_argument("--allow-other-counts", action="store_true",
                       help="accept question and image counts of no known release (a new revision)")
    fetch.add_argument("--delete-archives", action="store_true",
                       help="after unpacking, delete the downloaded archives from the hub cache (frees about as much "
                            "disk as the images take; a later --force downloads them again)")
    fetch.set_defaults(func=cmd_fetch)


def cmd_check(args: argparse.Namespace) -> int:
    from mmeval.data import resolve
    from mmeval.data.tables import parse_columns
    from mmeval.report import data_check
    from mmeval.run.rundir import ensure_writable

    columns = parse_columns(args.columns)
    paths = [resolve(spec, args.image_root, columns=columns)[0] for spec in args.data]
    if args.out is None and len(paths) > 1:
        raise InputError("--out is required when several benchmarks are pooled")
    out = Path(args.out) if args.out else paths[0].parent
    ensure_writable(out)
    result = data_check.check(paths, seed=args.seed)
    print(data_check.summary(result), file=sys.stderr)
    files = data_check.write_data_check(result, out)
    print(files["csv"].resolve())
    return 0


def cmd_subset(args: argparse.Namespace) -> int:
    from mmeval.data import load_benchmark, resolve
    from mmeval.data.subset import draw
    from mmeval.data.tables import parse_columns

    if args.shots < 0:
        raise InputError(f"--shots must be 0 or more, got {args.shots}")
    json_path, root = resolve(args.data, args.image_root, columns=parse_columns(args.columns))
    bench = load_benchmark(json_path, root, shots=args.shots, templates=args.templates)
    sample = draw(bench.questions, args.per_type, args.seed, source=str(json_path))
    out = Path(args.out)
    try:
        sample.write(out)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    short = [s for s in sample.strata if s.drawn < args.per_type]
    print(f"mmeval: sample {sample.digest}: {len(sample.ids)} of {len(bench.questions)} questions, "
          f"{len(sample.strata)} dataset x type cell(s)"
          + (f"; {len(short)} cell(s) had fewer than {args.per_type} and are taken whole" if short else "")
          + (f"; {len(bench.skipped)} record(s) skipped (unusable with --shots {args.shots})" if bench.skipped else ""),
          file=sys.stderr)
    print(out.resolve())
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from mmeval.data import hub

    bench = hub.BENCHMARKS[args.name]
    path = hub.fetch(bench, revision=args.revision, force=args.force, allow_other_counts=args.allow_other_counts,
                     delete_archives=args.delete_archives)
    facts = hub.status(bench, args.revision) or {}
    if not args.force and facts:
        print(f"mmeval: {bench.name}: {facts.get('questions', 0):,} questions on {facts.get('images', 0):,} images, "
              f"{facts.get('release', '')}; use it with --data {bench.spec}"
              + (f"@{args.revision}" if args.revision else ""), file=sys.stderr)
    print(path.parent)
    return 0
