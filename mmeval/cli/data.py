"""``mmeval data check``: is a benchmark answerable without its images?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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
                     help="an mmad.json, a directory holding one, or 'synthetic[:SCALE]'; several are pooled")
    chk.add_argument("--out", help="directory for data_check.csv and data_check.json (default: beside the "
                                   "mmad.json, where a run's report can find it; required when pooling several)")
    chk.add_argument("--seed", type=int, default=0,
                     help="seed of the option shuffle, as 'mmeval run --seed' (default: 0)")
    chk.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from mmeval.data.synthetic.cache import ensure_synthetic, synthetic_scale
    from mmeval.report import data_check
    from mmeval.run.rundir import ensure_writable

    paths = []
    for spec in args.data:
        scale = synthetic_scale(spec)
        paths.append(ensure_synthetic(scale) if scale else data_check.mmad_json(spec))
    if args.out is None and len(paths) > 1:
        raise InputError("--out is required when several benchmarks are pooled")
    out = Path(args.out) if args.out else paths[0].parent
    ensure_writable(out)
    result = data_check.check(paths, seed=args.seed)
    print(data_check.summary(result), file=sys.stderr)
    files = data_check.write_data_check(result, out)
    print(files["csv"].resolve())
    return 0
