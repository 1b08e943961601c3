"""``mmeval build``: benchmarks in the MMAD format, generated (``synthetic``) or built from a team's own images.

``mmeval build mvtec|visa|folders ROOT --out DIR`` reads labelled images in one of three layouts, writes
the benchmark (``mmeval.builders``), then runs the validity check (``mmeval data check``) on it, prints
its verdict and adds it to the benchmark's README.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from mmeval.cli import args as flags

LAYOUT_HELP = {
    "mvtec": ("an MVTec-AD-layout folder: CATEGORY/train/good, CATEGORY/test/DEFECT, "
              "CATEGORY/ground_truth/DEFECT/NAME_mask.png"),
    "visa": "a VisA-layout folder: split_csv/1cls.csv (object,split,label,image,mask) and OBJECT/image_anno.csv",
    "folders": ("good/ and bad/ images per product: PRODUCT/good/, PRODUCT/bad/ (or bad/DEFECT/), optional "
                "PRODUCT/masks/ mirroring bad/ and PRODUCT/templates/"),
}


def add_parser(sub: Any) -> None:
    build = sub.add_parser("build", help="build a benchmark: the bundled synthetic one, or one from your own images",
                           description="Build a benchmark in the MMAD format: 'synthetic' generates the bundled one; "
                                       "'mvtec', 'visa' and 'folders' build one from labelled images in that layout, "
                                       "then check it with 'mmeval data check'.")
    kinds = build.add_subparsers(dest="what", required=True, metavar="KIND")
    syn = kinds.add_parser("synthetic", help="the bundled synthetic benchmark (no download)",
                           description="Generate the synthetic benchmark that needs no download.")
    syn.add_argument("--out", required=True, help="directory to write mmad.json, images, masks and "
                                                  "domain_knowledge.json")
    syn.add_argument("--seed", type=flags.seed, default=0, help="generator seed, a whole number of at least 0 "
                                                                  "(default: 0)")
    from mmeval.data.synthetic.scales import DEFAULT_SCALE, SCALES

    syn.add_argument("--scale", choices=list(SCALES), default=DEFAULT_SCALE,
                     help="how many images: " + "; ".join(f"'{s.name}' {s.purpose}" for s in SCALES.values())
                          + f" (default: {DEFAULT_SCALE})")
    syn.set_defaults(func=cmd_synthetic)
    for layout, what in LAYOUT_HELP.items():
        p = kinds.add_parser(
            layout, help=f"a benchmark from {what.split(':')[0]}",
            description=f"Build an MMAD-format benchmark from {what}. Every question that follows from the labels, "
                        "masks and names is asked (Anomaly Detection, Defect Classification, Defect Localization, "
                        "Object Classification); the descriptive ones come from --knowledge or --writer. Writes "
                        "mmad.json, the images, the masks, README.md and build_report.json into --out, then checks "
                        "whether the questions can be answered without the images and prints the verdict.")
        p.add_argument("root", metavar="ROOT", help="the folder to read")
        p.add_argument("--out", required=True, help="directory to write the benchmark into (new or empty; one an "
                                                    "earlier build wrote is replaced)")
        p.add_argument("--seed", type=flags.seed, default=0,
                       help="seed of every random choice, a whole number of at least 0 (default: 0); the same seed "
                            "builds byte-identical files")
        p.add_argument("--name", help="the dataset name, the first part of every image path (default: ROOT's name)")
        p.add_argument("--template-count", type=flags.count, default=4, metavar="K",
                       help="normal templates listed per image, in similar_templates and random_templates (default: 4)")
        p.add_argument("--copy", action="store_true", help="copy the images (default: hard links where the file "
                                                           "system allows, which take no extra disk)")
        p.add_argument("--knowledge", metavar="FILE",
                       help="a knowledge file in MMAD's domain_knowledge.json shape (dataset -> category -> 'good' and "
                            "defect names -> '<Title> Description: ... [Effect: ...]'): Defect Description and "
                            "Defect Analysis questions from it, or context for --writer")
        p.add_argument("--writer", metavar="openai:MODEL",
                       help="a model that writes the descriptive questions (Defect Description, Defect Analysis, "
                            "Object Analysis), shown the image and the mask, through the OpenAI-compatible adapter "
                            "(the key comes from OPENAI_API_KEY or -W api_key_env=NAME)")
        p.add_argument("-W", "--writer-arg", action="append", metavar="KEY=VALUE", default=[],
                       help="an option of the writer's model family, e.g. -W base_url=http://localhost:8000/v1 "
                            "(repeatable; 'mmeval models show openai' lists them)")
        p.add_argument("--writer-attempts", type=flags.count, default=3, metavar="N",
                       help="how often a rejected question is asked again, with the reason (default: 3)")
        p.add_argument("--concurrency", type=flags.concurrency, metavar="N",
                       help="writer requests in flight at once, 1 to 1024 (default: 8)")
        if layout == "visa":
            p.add_argument("--split-csv", metavar="FILE", help="the split file (default: ROOT/split_csv/1cls.csv)")
        if layout == "folders":
            p.add_argument("--template-share", type=flags.fraction, default=1 / 3, metavar="F",
                           help="share of each product's good images used as templates when it has no templates/ "
                                "folder (default: 1/3; the rest are asked about)")
        p.set_defaults(func=cmd_build, layout=layout)


def cmd_synthetic(args: argparse.Namespace) -> int:
    from mmeval.data.synthetic.generator import build_synthetic
    from mmeval.run.rundir import ensure_writable

    ensure_writable(Path(args.out))
    path = build_synthetic(Path(args.out), seed=args.seed, scale=args.scale, progress=True)
    print(path)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from mmeval.builders import BuildOptions, build, scan
    from mmeval.builders.readme import add_check
    from mmeval.errors import InputError
    from mmeval.report import data_check

    if args.writer_arg and not args.writer:
        raise InputError("--writer-arg needs --writer")
    share = getattr(args, "template_share", 1 / 3)
    source = scan(args.layout, Path(args.root), dataset=args.name, seed=args.seed, template_share=share,
                  split_csv=Path(args.split_csv) if getattr(args, "split_csv", None) else None)
    options = BuildOptions(seed=args.seed, template_count=args.template_count, link=not args.copy,
                           knowledge=Path(args.knowledge) if args.knowledge else None, writer=args.writer,
                           writer_args=list(args.writer_arg), writer_attempts=args.writer_attempts,
                           writer_concurrency=args.concurrency)
    result = build(source, Path(args.out), options, progress=True)
    say = sys.stderr
    counts = ", ".join(f"{t} {n:,}" for t, n in result.counts.items() if n)
    print(f"built {result.questions:,} questions on {result.images:,} images into {result.out}: {counts}", file=say)
    if result.skipped:
        tally = Counter((s.what, s.reason) for s in result.skipped)
        print(f"left out {len(result.skipped)} item(s) (all listed in {result.out / 'build_report.json'}):", file=say)
        for (what, why), n in sorted(tally.items(), key=lambda x: (-x[1], x[0]))[:10]:
            print(f"  {n:>5} x {what}: {why}", file=say)
    if result.writer:
        w = result.writer
        print(f"writer {w.get('model')}: {w.get('requests', 0)} request(s), {w.get('cache_hits', 0)} answered from the "
              f"cache; rejected replies: {w.get('rejected_replies') or 'none'}", file=say)
    check = data_check.check([result.json_path], seed=args.seed)
    data_check.write_data_check(check, result.out)
    summary = data_check.summary(check)
    print("\n" + summary, file=say)
    add_check(result.out / "README.md", summary)
    print(result.json_path)
    return 0
