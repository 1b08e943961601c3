"""Command line: ``mmeval run | report | compare | score-mmad | build synthetic | data check | models``.

Exit codes: 0 ok, 2 bad input (data, flags, files; the message names the culprit), 1 internal error,
130 interrupted (predictions so far are kept; rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import re
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mmeval import __version__
from mmeval.data.synthetic.cache import synthetic_scale
from mmeval.data.synthetic.scales import DEFAULT_SCALE, SCALES
from mmeval.errors import InputError
from mmeval.model_adapters import FAMILIES, AdapterError, split_model

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "run"


def _family_options() -> dict[str, type[BaseModel]]:
    """Each model family's option model; a family whose module cannot be imported contributes none."""
    out = {}
    for name, fam in FAMILIES.items():
        try:
            out[name] = fam.load().Options
        except (AdapterError, ImportError):
            continue
    return out


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _add_family_flags(parser: argparse.ArgumentParser) -> dict[str, tuple[str, str]]:
    """Add one flag per option field of every family; return dest -> (family, field)."""
    owners: dict[str, tuple[str, str]] = {}
    for family, model in _family_options().items():
        fields = model.model_fields
        if not fields:
            continue
        group = parser.add_argument_group(f"options of the '{family}' model family")
        for name, info in fields.items():
            dest = f"opt__{name}"
            if dest in owners:  # two families share a field name: one flag serves both
                owners[dest] = (owners[dest][0] + "," + family, name)
                continue
            owners[dest] = (family, name)
            ann = info.annotation
            args = typing.get_args(ann)
            choices = list(args) if typing.get_origin(ann) is typing.Literal else None
            default = info.get_default(call_default_factory=True)
            helptext = (info.description or "") + (f" (default: {default})" if default is not None else "")
            if ann is bool and default is False:  # a plain switch: --flag turns it on
                group.add_argument(_flag(name), dest=dest, action="store_const", const=True, default=None,
                                   help=helptext)
            elif ann is bool:
                group.add_argument(_flag(name), dest=dest, action=argparse.BooleanOptionalAction, default=None,
                                   help=helptext)
            else:
                group.add_argument(_flag(name), dest=dest, default=None, choices=choices, help=helptext,
                                   metavar=None if choices else name.upper())
    return owners


def _collect_options(args: argparse.Namespace, owners: dict[str, tuple[str, str]], family: str) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for dest, (fams, field) in owners.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if family not in fams.split(","):
            raise InputError(f"{_flag(field)} applies to the '{fams}' model family, not to '{family}'")
        opts[field] = value
    return opts


def split_options(options_cls: type[BaseModel], raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate the given family options, then split them into (affects predictions, operational).

    Values are normalised through the family's pydantic model ("8" -> 8), so the config hash does not
    depend on how a flag was spelled. Fields marked ``json_schema_extra={"affects_predictions": False}``
    (concurrency, retries, caches ...) stay out of the hash: changing them must not block a resume.
    """
    validated = options_cls.model_validate(raw).model_dump(mode="json")
    hashed, runtime = {}, {}
    for name in raw:
        extra = options_cls.model_fields[name].json_schema_extra
        operational = isinstance(extra, dict) and extra.get("affects_predictions") is False
        (runtime if operational else hashed)[name] = validated[name]
    return hashed, runtime


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, tuple[str, str]]]:
    parser = argparse.ArgumentParser(
        prog="mmeval",
        description="Evaluate multimodal LLMs as industrial quality inspectors on MMAD-format benchmarks.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'mmeval COMMAND --help' for each command's flags.")
    parser.add_argument("--version", action="version", version=f"mmeval {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="answer a benchmark with a model, then score it",
                         description="Answer every question of a benchmark with a model; predictions stream to "
                                     "OUT/predictions.jsonl and a rerun of the same command resumes. Ends with "
                                     "the report (scores.csv, scores.json, heatmap.png) in OUT.")
    run.add_argument("--model", required=True,
                     help="model: " + "; ".join(f"'{n}{':…' if f.needs_target else ''}' {f.summary}"
                                                for n, f in FAMILIES.items()))
    run.add_argument("--data", default="synthetic",
                     help="an mmad.json file, a directory holding one, or 'synthetic' for the bundled benchmark "
                          "(built on first use) (default: synthetic)")
    run.add_argument("--image-root", help="directory the image paths are relative to (default: the mmad.json's directory)")
    run.add_argument("--shots", type=int, default=1, help="normal template images shown before the query (default: 1, as MMAD)")
    run.add_argument("--templates", choices=["random", "similar"], default="random",
                     help="take templates from each record's random_templates or similar_templates (default: random)")
    run.add_argument("--seed", type=int, default=0, help="seed of every random choice: option shuffles, chance baselines (default: 0)")
    run.add_argument("--no-shuffle", action="store_true", help="keep the options in the file's order (default: shuffle, seeded)")
    run.add_argument("--limit", type=int, help="answer only the first K questions (a later run without it continues)")
    run.add_argument("--out", help="run directory (default: reports/<model>_<data>_<shots>shot_seed<seed>)")
    run.add_argument("--strict", action="store_true", help="stop at the first bad record (default: skip and list them in the report)")
    run.add_argument("--allow-unknown-types", action="store_true",
                     help="keep questions whose type is not one of the seven tasks (reported in extra columns)")
    run.add_argument("--circular", action="store_true",
                     help="CircularEval: also ask every rotation of each question's options; a question counts as "
                          "right only when all rotations are (reported beside plain accuracy)")
    run.add_argument("--probes", action="store_true",
                     help="also ask each normal image which defect it has (its category's defect types plus "
                          "'There is no defect.'): measures defect fabrication")
    run.add_argument("--overwrite", action="store_true", help="discard a run with a different config in --out")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--cycle-ms", type=float, metavar="MS",
                     help="production line cycle time in milliseconds: the report says whether the model keeps up")
    owners = _add_family_flags(run)

    rep = sub.add_parser("report", help="(re)write the report of a run directory",
                         description="Score RUN_DIR/predictions.jsonl into scores.csv, scores.json and heatmap.png.")
    rep.add_argument("run_dir", help="a directory written by 'mmeval run'")
    rep.add_argument("--cycle-ms", type=float, metavar="MS",
                     help="production line cycle time in milliseconds: the report says whether the model keeps up")

    cmp = sub.add_parser(
        "compare", help="compare runs with each other, the human baseline and published MMAD results",
        description="Put runs side by side (their Average-over-datasets accuracy per task), beside the human expert "
                    "baseline and published MMAD rows; test each run against the first with a paired McNemar test "
                    "per task. With --out: compare.html, compare.csv, compare.json and heatmap.png in OUT.")
    cmp.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories; the first is the baseline (A)")
    cmp.add_argument("--with", dest="with_refs", action="append", metavar="NAMES",
                     help="comma-separated references, matched case-insensitively: 'human' (expert, approximate), "
                          "'human-ordinary', or a published model such as 'gpt-4o', 'claude-3-5-sonnet-20241022'")
    cmp.add_argument("--out", help="directory for compare.html, compare.csv, compare.json, heatmap.png")
    cmp.add_argument("--cycle-ms", type=float, metavar="MS", help="production line cycle time in milliseconds")
    cmp.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                     help="bootstrap resamples for the confidence intervals (default: 1000)")
    cmp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")

    sm = sub.add_parser("score-mmad", help="score an answers file written by the official MMAD scripts",
                        description="Re-score an official MMAD answers JSON (a list of {image, question, "
                                    "question_type, correct_answer, gpt_answer}) into the same tables.")
    sm.add_argument("answers", help="answers_*.json from the MMAD evaluation scripts")
    sm.add_argument("--out", required=True, help="directory for scores.csv, scores.json, heatmap.png")
    sm.add_argument("--drop-invalid", action="store_true",
                    help="leave answers that are not a letter out of the denominators, as the MMAD summary does "
                         "(default: count them wrong)")

    build = sub.add_parser("build", help="generate a bundled benchmark",
                           description="Generate benchmark data that needs no download.")
    build.add_argument("what", choices=["synthetic"], help="which benchmark")
    build.add_argument("--out", required=True, help="directory to write mmad.json, images, masks and domain_knowledge.json")
    build.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    build.add_argument("--scale", choices=list(SCALES), default=DEFAULT_SCALE,
                       help="how many images: " + "; ".join(f"'{s.name}' {s.purpose}" for s in SCALES.values())
                            + f" (default: {DEFAULT_SCALE})")
    _add_data_parser(sub)

    sub.add_parser("models", help="list model families", description="List the model families --model accepts.")
    sub.add_parser("tasks", help="list the question types", description="List the task definitions in tasks/.")
    return parser, owners


def _add_data_parser(sub: argparse._SubParsersAction) -> None:
    """``mmeval data check``: is a benchmark answerable without its images?"""
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


def cmd_data(args: argparse.Namespace) -> int:
    from mmeval.data.synthetic.cache import ensure_synthetic
    from mmeval.report import data_check

    paths = []
    for spec in args.data:
        scale = synthetic_scale(spec)
        paths.append(ensure_synthetic(scale) if scale else data_check.mmad_json(spec))
    if args.out is None and len(paths) > 1:
        raise InputError("--out is required when several benchmarks are pooled")
    result = data_check.check(paths, seed=args.seed)
    print(data_check.summary(result), file=sys.stderr)
    files = data_check.write_data_check(result, Path(args.out) if args.out else paths[0].parent)
    print(files["csv"].resolve())
    return EXIT_OK


def cmd_run(args: argparse.Namespace, owners: dict[str, tuple[str, str]]) -> int:
    from mmeval.config import RunConfig
    from mmeval.report.run_report import write_run_report
    from mmeval.run.runner import run

    family, _ = split_model(args.model)
    try:
        hashed, runtime = split_options(family.load().Options, _collect_options(args, owners, family.name))
        config = RunConfig(model=args.model, model_options=hashed, runtime_options=runtime,
                           data=args.data if synthetic_scale(args.data) else str(Path(args.data).resolve()),
                           image_root=str(Path(args.image_root).resolve()) if args.image_root else None,
                           shots=args.shots, templates=args.templates, seed=args.seed, shuffle=not args.no_shuffle,
                           allow_unknown_types=args.allow_unknown_types, limit=args.limit, strict=args.strict,
                           circular=args.circular, probes=args.probes)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"{_flag(str(err['loc'][-1])) if err['loc'] else 'flags'}: {err['msg']}") from None
    data_name = "synthetic" if args.data == "synthetic" else Path(args.data).stem
    out = Path(args.out) if args.out else Path("reports") / _slug(f"{args.model}_{data_name}_{args.shots}shot_seed{args.seed}")
    result = run(config, out, overwrite=args.overwrite, progress=not args.no_progress)
    table = write_run_report(out, cycle_ms=args.cycle_ms)
    print(table.round(2).to_string(), file=sys.stderr)
    if result.skipped:
        print(f"skipped {result.skipped} bad record(s); see {out / 'scores.json'}", file=sys.stderr)
    if result.errors:
        print(f"{result.errors} question(s) got no answer (recorded as errors); rerun to retry them", file=sys.stderr)
    print(f"report: {out.resolve()}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from mmeval.report.run_report import write_run_report

    table = write_run_report(Path(args.run_dir), cycle_ms=args.cycle_ms)
    print(table.round(2).to_string(), file=sys.stderr)
    print(f"report: {Path(args.run_dir).resolve()}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from mmeval.report import compare

    if args.bootstrap < 1:
        raise InputError("--bootstrap must be at least 1")
    comp = compare.compare([Path(r) for r in args.runs], args.with_refs or [], cycle_ms=args.cycle_ms,
                           n_boot=args.bootstrap, seed=args.seed)
    print(compare.text_summary(comp), file=sys.stderr)
    if args.out:
        files = compare.write(comp, Path(args.out), cycle_ms=args.cycle_ms)
        print(f"report: {files['html'].resolve()}")
    return EXIT_OK


def cmd_score_mmad(args: argparse.Namespace) -> int:
    from mmeval.report.official import answers_frame, read_answers
    from mmeval.report.run_report import write_tables

    path = Path(args.answers)
    df = answers_frame(read_answers(path))
    if args.drop_invalid:
        df = df[df["valid"]]
    if df.empty:
        raise InputError(f"{path}: no answers to score")
    table = write_tables(df, Path(args.out), path.stem, {"source": str(path.resolve()), "drop_invalid": args.drop_invalid})
    print(table.round(2).to_string(), file=sys.stderr)
    print(f"report: {Path(args.out).resolve()}")
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    from mmeval.data.synthetic.generator import build_synthetic

    path = build_synthetic(Path(args.out), seed=args.seed, scale=args.scale, progress=True)
    print(path)
    return EXIT_OK


def cmd_models() -> int:
    for name, fam in FAMILIES.items():
        print(f"{name + (':TARGET' if fam.needs_target else ''):<20} {fam.summary}")
    return EXIT_OK


def cmd_tasks() -> int:
    from mmeval import tasks as task_registry

    for t in task_registry.all_tasks():
        print(f"{t.name:<24} asked about {t.asked_about:<9} scored by {t.scoring:<8} labels: {', '.join(t.aliases)}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser, owners = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args, owners)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "compare":
            return cmd_compare(args)
        if args.command == "score-mmad":
            return cmd_score_mmad(args)
        if args.command == "build":
            return cmd_build(args)
        if args.command == "data":
            return cmd_data(args)
        if args.command == "models":
            return cmd_models()
        return cmd_tasks()
    except (InputError, AdapterError) as exc:
        print(f"mmeval: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("mmeval: interrupted; predictions so far are saved, rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
