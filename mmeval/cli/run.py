"""``mmeval run``: answer a benchmark with a model, then score it.

Settings come from three places, later ones winning: the defaults, a config file (``--config``,
YAML or TOML, keys named like the flags) and the command line. Family options are namespaced
(``--model-arg KEY=VALUE``, ``-M``), boost options likewise (``--boost-arg``); a few settings every run
has stay plain flags.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mmeval import boosts, heap, launch, optionspec
from mmeval.cli import EXIT_INCOMPLETE
from mmeval.cli import args as flags
from mmeval.cli.moved import RUN_FLAGS, add_moved
from mmeval.errors import InputError
from mmeval.layout import STATUS
from mmeval.model_adapters import FAMILIES, split_model
from mmeval.prompting.styles import STYLES

#: defaults of the settings a config file may also give (None: unset)
DEFAULTS: dict[str, Any] = {
    "data": "synthetic", "image_root": None, "shots": 1, "templates": "random", "seed": 0, "shuffle": True,
    "answer_mode": "generate", "boost": None, "limit": None, "strict": False, "allow_unknown_types": False,
    "circular": False, "probes": False, "batch_size": None, "concurrency": None, "out": None, "overwrite": False,
    "allow_other_files": False, "cycle_ms": None, "verify_images": "header", "prompt_style": "mmeval",
    "columns": None, "subset": None,
}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "run"


def add_parser(sub: Any) -> None:
    run = sub.add_parser(
        "run", help="answer a benchmark with a model, then score it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Answer every question of a benchmark with a model; predictions stream to OUT/predictions.jsonl "
                    "and a rerun of the same command resumes. Ends with the report (scores.csv, scores.json, "
                    "analysis.json, report.html, heatmap.svg) in OUT.",
        epilog="Model options: --model-arg KEY=VALUE (or -M), repeatable; 'mmeval models show FAMILY' lists a "
               "family's options with types and defaults.\nBoosts: --boost NAME[+NAME...] applies request "
               "transforms in order; --boost-arg KEY=VALUE (or NAME.KEY=VALUE) sets their options; "
               "'mmeval boosts' lists them.\nA run can also be described in a YAML or TOML file (--config): "
               "keys named like the flags (model, model_args, data, shots, boost, boost_args ...); flags given "
               "here override it.\nExit codes: 0 every question answered; 3 incomplete: some questions ended in an "
               "error or were never asked (a model that stopped answering ...), the report covers the answered ones "
               "and OUT/status.json says what is missing, rerun the same command to finish; 2 bad input (data, "
               "flags, files, a model that cannot be set up); 1 internal error; 130 interrupted.")
    run.add_argument("--model", help="model: " + "; ".join(f"'{n}{':…' if f.needs_target else ''}' {f.summary}"
                                                           for n, f in FAMILIES.items()))
    run.add_argument("-M", "--model-arg", action="append", metavar="KEY=VALUE", default=[],
                     help="an option of the model family (repeatable)")
    run.add_argument("--config", metavar="FILE", help="YAML or TOML file describing the run (flags override it)")
    run.add_argument("--data", help="an mmad.json file, a directory holding one, 'synthetic' for the bundled "
                                    "benchmark, built on first use ('synthetic:standard' for the larger one), "
                                    "'mmad' for the published MMAD (downloaded from the Hugging Face hub and verified "
                                    "on first use; 'mmad@REVISION' pins one), or a table of questions: a "
                                    "save_to_disk directory, parquet files, or hf:OWNER/NAME[:SPLIT] "
                                    "(default: synthetic)")
    run.add_argument("--columns", metavar="FIELD=COLUMN,...",
                     help="for tables: which column holds each field when the names differ from the usual ones "
                          "(fields: key, image, question, options, answer, type, random_templates, "
                          "similar_templates, templates, mask, mask_path)")
    run.add_argument("--image-root", help="directory the image paths are relative to (default: the mmad.json's "
                                          "directory)")
    run.add_argument("--shots", type=flags.count_or_zero, metavar="N",
                     help="normal template images shown before the query (default: 1, as MMAD)")
    run.add_argument("--templates", choices=["random", "similar"],
                     help="take templates from each record's random_templates or similar_templates (default: random)")
    run.add_argument("--seed", type=flags.seed, help="seed of every random choice: option shuffles, chance "
                                                     "baselines; a whole number of at least 0 (default: 0)")
    run.add_argument("--prompt-style", choices=list(STYLES),
                     help="how questions are worded: mmeval (the templates in prompts/) or mmad-anomalygpt (the "
                          "prompt of MMAD's AnomalyGPT script: fixed description, Anomaly Detection without "
                          "options, earlier questions repeated) (default: mmeval)")
    run.add_argument("--answer-mode", choices=["generate", "likelihood"],
                     help="generate: the model writes an answer that is parsed; likelihood: the option the model "
                          "finds most probable wins (families that can score options) (default: generate)")
    run.add_argument("--batch-size", type=flags.count, metavar="N",
                     help="questions handed to the model at once (default: the family's; never changes answers "
                          "of hf models, which compute each question alone unless -M batch_invariant=false)")
    run.add_argument("--concurrency", type=flags.concurrency, metavar="N",
                     help="API requests in flight at once, 1 to 1024 (default: 8)")
    run.add_argument("--boost", metavar="NAME[+NAME]", help="request transforms applied in order (default: none)")
    run.add_argument("--boost-arg", action="append", metavar="KEY=VALUE", default=[],
                     help="an option of a boost, or BOOST.KEY=VALUE (repeatable)")
    run.add_argument("--no-shuffle", dest="shuffle", action="store_const", const=False,
                     help="keep the options in the file's order (default: shuffle, seeded)")
    run.add_argument("--limit", type=flags.count, metavar="K",
                     help="answer only the first K questions (a later run without it continues)")
    run.add_argument("--subset", metavar="SUBSET_JSON",
                     help="answer only the questions of a fixed sample written by 'mmeval data subset' (its digest "
                          "is part of the run's identity); a sample naming questions the data lacks is an error")
    run.add_argument("--out", help="run directory (default: reports/<model>_<data>_<shots>shot_seed<seed>)")
    run.add_argument("--strict", action="store_const", const=True,
                     help="stop at the first bad record (default: skip and list them in the report)")
    run.add_argument("--allow-unknown-types", action="store_const", const=True,
                     help="keep questions whose type is no task of the registry (tasks/*.toml): they are reported "
                          "in extra columns, not averaged")
    run.add_argument("--circular", action="store_const", const=True,
                     help="CircularEval: also ask every rotation of each question's options; a question counts as "
                          "right only when all rotations are (reported beside plain accuracy)")
    run.add_argument("--probes", action="store_const", const=True,
                     help="also ask each normal image which defect it has (its category's defect types plus "
                          "'There is no defect.'): measures defect fabrication")
    run.add_argument("--overwrite", action="store_const", const=True,
                     help="discard a run with a different config in --out (only the files mmeval wrote there)")
    run.add_argument("--allow-other-files", action="store_const", const=True,
                     help="let --out be a directory that holds other files (mmeval never touches them); by default "
                          "such a directory, or one holding the benchmark, is refused")
    run.add_argument("--verify-images", choices=["header", "full", "none"],
                     help="check the images when the data loads: header (cheap: empty, unreadable or oversized "
                          "files), full (also decode them: finds truncated files), none (default: header)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--cycle-ms", type=flags.positive_ms, metavar="MS",
                     help="production line cycle time in milliseconds: the report says whether the model keeps up "
                          "(saved with the run)")
    add_moved(run, RUN_FLAGS)  # the family options that were flags: an error naming their -M spelling
    run.set_defaults(func=cmd_run)




#: the numeric settings and their flags' types, which check them in a config file too
NUMERIC: dict[str, Any] = {"shots": flags.count_or_zero, "seed": flags.seed, "batch_size": flags.count,
                           "concurrency": flags.concurrency, "limit": flags.count, "cycle_ms": flags.positive_ms}


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults < config file < flags; family and boost options merged key by key the same way."""
    from mmeval.config import read_config_file

    file = read_config_file(args.config) if args.config else {}
    for key, kind in NUMERIC.items():
        if file.get(key) is not None:
            file[key] = flags.check_setting(key, file[key], kind, f"--config {args.config}")
    merged = {**DEFAULTS, **{k: v for k, v in file.items() if k not in ("model_args", "boost_args")}}
    for key in [*DEFAULTS, "model"]:
        value = getattr(args, key, None)
        if value is not None:
            merged[key] = value
    if not merged.get("model"):
        raise InputError("--model is required (or 'model:' in the --config file)")
    merged["model_args"] = {**(file.get("model_args") or {}), **optionspec.parse_pairs(args.model_arg, "--model-arg")}
    file_boost_args = _flat_boost_args(file.get("boost_args") or {})
    merged["boost_args"] = {**file_boost_args, **optionspec.parse_pairs(args.boost_arg, "--boost-arg")}
    return merged


def _flat_boost_args(args: dict[str, Any]) -> dict[str, Any]:
    """A config file may nest boost options per boost ({rag: {top_k: 3}}) or give them flat."""
    flat: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def build_config(s: dict[str, Any]) -> Any:
    """The validated RunConfig of merged settings; every problem is an InputError naming the setting."""
    from mmeval.config import RunConfig

    family, _ = split_model(str(s["model"]))
    adapter_class = family.load()
    hashed, runtime = adapter_class.split_options(s["model_args"])
    boost = s["boost"]
    names = boosts.parse_spec("+".join(boost) if isinstance(boost, list) else boost)
    others = tuple(b for v in s.get("variants", []) for b in boosts.parse_spec(v) if b not in names)
    boost_hashed, boost_runtime = boosts.split_args(names, s["boost_args"], others=others)
    from mmeval.data.loading import stored_data
    from mmeval.data.tables import parse_columns

    data, image_root = stored_data(str(s["data"]), s["image_root"], columns=parse_columns(s["columns"]))
    subset, subset_path = _subset(s.get("subset"))
    try:
        return RunConfig(
            model=s["model"], model_args=hashed, runtime_args=runtime, answer_mode=s["answer_mode"], boosts=names,
            boost_args=boost_hashed, boost_runtime_args=boost_runtime,
            data=data, image_root=image_root,
            shots=s["shots"], templates=s["templates"], seed=s["seed"], shuffle=s["shuffle"],
            allow_unknown_types=s["allow_unknown_types"], limit=s["limit"], subset=subset, subset_path=subset_path,
            strict=s["strict"],
            circular=s["circular"], probes=s["probes"], batch_size=s["batch_size"], concurrency=s["concurrency"],
            verify_images=s["verify_images"], prompt_style=s["prompt_style"], reading=adapter_class.reading)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "settings"
        raise InputError(f"{where}: {err['msg']}") from None


def _subset(value: Any) -> tuple[str | None, str | None]:
    """(digest, absolute path) of ``--subset``, read and checked now; (None, None) without one."""
    if not value:
        return None, None
    from mmeval.data.subset import read_subset

    path = Path(str(value)).expanduser().resolve()
    return read_subset(path).digest, str(path)


def default_out(config: Any) -> Path:
    """``reports/<model>_<data>_<shots>shot_seed<seed>[_<style>][_subset-<digest>][_<boosts and their options>]``:
    runs that would answer differently get different folders (the sample and boosts parts are never cut off)."""
    from mmeval.data.synthetic.cache import synthetic_scale

    data_name = config.data.replace(":", "-") if synthetic_scale(config.data) else Path(config.data).stem
    style = f"_{config.prompt_style}" if config.prompt_style != "mmeval" else ""
    name = _slug(f"{config.model}_{data_name}_{config.shots}shot_seed{config.seed}{style}")
    tail = (f"_subset-{config.subset[:8]}" if config.subset else "") + _boost_label(config.boosts, config.boost_args)
    if tail:
        name = name[: max(1, 80 - len(tail))].rstrip("-") + tail
    return Path("reports") / name


def _boost_label(names: tuple[str, ...], args: dict[str, dict[str, Any]]) -> str:
    """``_rag-agent-expert-oracle-view-text``: each boost with the options that change its answers, readable
    when short and plain, else as a digest of them (a path, a long list)."""
    parts = []
    for name in names:
        given = args.get(name, {})
        text = "-".join(f"{k}-{v}" for k, v in sorted(given.items()))
        if len(text) > 40 or not re.fullmatch(r"[A-Za-z0-9._-]*", text):
            text = hashlib.sha256(json.dumps(given, sort_keys=True, default=str).encode()).hexdigest()[:10]
        parts.append(f"{name}-{text}" if given else name)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_" + "+".join(parts)) if parts else ""


def cmd_run(args: argparse.Namespace) -> int:
    s = settings(args)
    boost = s["boost"]
    variants = boosts.parse_variants(boost) if isinstance(boost, str) or boost is None else ["+".join(boost)]
    if len(variants) > 1:
        return _ablation(s, variants, progress=not args.no_progress)
    config = build_config(s)
    out = Path(s["out"]) if s["out"] else default_out(config)
    return _run_one(s, config, out, progress=not args.no_progress)


def _run_one(s: dict[str, Any], config: Any, out: Path, *, progress: bool) -> int:
    """One run and its report, the directory locked across both."""
    from mmeval.report.run_report import write_run_report
    from mmeval.run.rundir import RunDirLock, ensure_writable
    from mmeval.run.runner import run

    if launch.rank_and_world()[0] != 0:  # the other processes of a launch answer their share; rank 0 reports
        run(config, out, progress=False, lock=False)
        return 0
    ensure_writable(out)
    with RunDirLock(out), heap.records_kept():  # the run's records stay out of the collector through the report
        result = run(config, out, overwrite=bool(s["overwrite"]), allow_other_files=bool(s["allow_other_files"]),
                     progress=progress, lock=False, cycle_ms=s["cycle_ms"])
        table = write_run_report(out, cycle_ms=s["cycle_ms"], preds=result.written)
    print(table.round(2).to_string(), file=sys.stderr)
    _summary(result, out)
    print(f"report: {out.resolve()}")
    status = result.status
    if not status.complete:
        print(f"mmeval: error: {status.summary}. The report covers the questions answered so far; rerun the same "
              f"command to finish the run (exit code {EXIT_INCOMPLETE}; {out / STATUS} says the same)",
              file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


def _ablation(s: dict[str, Any], variants: list[str], *, progress: bool) -> int:
    """Every variant into OUT/VARIANT (caches shared), then their comparison into OUT/ablation."""
    from mmeval.report import ablation
    from mmeval.report.analysis import load_run

    configs = variant_configs(s, variants)
    base_out = Path(s["out"]) if s["out"] else ablation_out(s, variants, configs)
    status = 0
    for variant, config in configs.items():
        print(f"--- variant {variant} ---", file=sys.stderr)
        status = max(status, _run_one(s, config, base_out / _slug(variant), progress=progress))
    runs = {v: load_run(base_out / _slug(v)) for v in variants}
    result = ablation.ablation(runs, "none" if "none" in runs else variants[0])
    files = ablation.write_ablation(result, base_out / "ablation")
    print(ablation.text_summary(result), file=sys.stderr)
    print(f"ablation: {files['html'].resolve()}")
    return status


def variant_configs(s: dict[str, Any], variants: list[str]) -> dict[str, Any]:
    """The RunConfig of each variant of an ablation."""
    return {v: build_config({**s, "boost": v, "variants": variants}) for v in variants}


def ablation_out(s: dict[str, Any], variants: list[str], configs: dict[str, Any]) -> Path:
    """An ablation's default folder: the plain run's name, then the boosts' answer-changing options when any are
    given, so that two ablations with another expert or view never share their variants' folders."""
    plain = default_out(build_config({**s, "boost": None, "variants": variants}))
    given = {b: a for c in configs.values() for b, a in c.boost_args.items() if a}
    return plain.with_name(plain.name + _boost_label(tuple(given), given)) if given else plain


def _summary(result: Any, out: Path) -> None:
    hits = result.adapter_info.get("cache_hits")
    if hits:
        print(f"{hits} of the answers asked this time came from the response cache (keyed by the exact request, "
              "the model the server reports and -M revision); -M no_cache=true asks the server again",
              file=sys.stderr)
    if result.skipped:
        print(f"skipped {result.skipped} bad record(s); see {out / 'scores.json'}", file=sys.stderr)
    if result.changed or result.removed:
        print(f"the data changed since the last session: {result.changed} question(s) asked again, "
              f"{result.removed} prediction(s) dropped (see {out / 'changes.jsonl'})", file=sys.stderr)
    if result.errors:
        lasting = result.errors - result.retryable_errors
        print(f"{result.errors} question(s) got no answer (recorded as errors): {result.retryable_errors} may succeed "
              f"if you rerun, {lasting} failed for a reason a rerun cannot fix (see 'error' in predictions.jsonl)",
              file=sys.stderr)

