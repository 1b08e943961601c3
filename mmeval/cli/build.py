"""``mmeval build``: generate benchmark data that needs no download."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    build = sub.add_parser("build", help="generate a bundled benchmark",
                           description="Generate benchmark data that needs no download.")
    build.add_argument("what", choices=["synthetic"], help="which benchmark")
    build.add_argument("--out", required=True, help="directory to write mmad.json, images, masks and "
                                                    "domain_knowledge.json")
    build.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    from mmeval.data.synthetic.scales import DEFAULT_SCALE, SCALES

    build.add_argument("--scale", choices=list(SCALES), default=DEFAULT_SCALE,
                       help="how many images: " + "; ".join(f"'{s.name}' {s.purpose}" for s in SCALES.values())
                            + f" (default: {DEFAULT_SCALE})")
    build.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    from mmeval.data.synthetic.generator import build_synthetic
    from mmeval.run.rundir import ensure_writable

    ensure_writable(Path(args.out))
    path = build_synthetic(Path(args.out), seed=args.seed, scale=args.scale, progress=True)
    print(path)
    return 0
