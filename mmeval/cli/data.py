"""``mmeval data check``: is a benchmark answerable without its images? ``mmeval data fetch``: get MMAD."""

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
