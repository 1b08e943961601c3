"""``mmeval watch CKPT_DIR``: evaluate a training's checkpoints as they appear and draw accuracy against step."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mmeval import optionspec
from mmeval.cli import args as flags
from mmeval.errors import InputError

#: seconds between two looks at the folder
SECONDS = flags.number("a number of seconds of at least 0", lambda v: v >= 0)

EPILOG = """\
Each step is an ordinary run directory (OUT/steps/step-NNNNNNN): a rerun of the same command resumes a
step cut short and gives the same curve. Full checkpoints (config.json) load as hf:; PEFT adapters
(adapter_config.json) load on the base, which is loaded once (adapters are swapped). Through
--backend openai (a vLLM server with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), adapters
are loaded into the server at run time.

examples:
  mmeval data subset mmad --per-type 20 --seed 0 --out subset.json
  mmeval watch runs/lora --data mmad --subset subset.json --until-final --out reports/curve
  mmeval watch runs/lora --base Qwen/Qwen2-VL-2B-Instruct --log-to tensorboard:runs/lora/tb --out reports/curve
  mmeval watch runs/lora --backend openai -M base_url=http://localhost:8000/v1 --base Qwen/Qwen2-VL-2B-Instruct \\
      --out reports/curve
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("watch", help="evaluate a training's checkpoints as they appear; draw accuracy against step",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
                       description="Follow a training's output folder: evaluate the base (step 0), then every "
                                   "checkpoint-STEP folder once the trainer has finished writing it "
                                   "(trainer_state.json present, sizes unchanged over two polls; tmp-checkpoint-* "
                                   "never), in step order. "
                                   "Writes curve.csv, curve.json, curve.svg and curve.html into --out.")
    p.add_argument("ckpt_dir", metavar="CKPT_DIR", help="the trainer's output folder (holding checkpoint-STEP/)")
    p.add_argument("--data", default="synthetic", help="the benchmark, as for mmeval run (default: synthetic)")
    p.add_argument("--subset", metavar="SUBSET_JSON", help="ask only the questions of this sample (mmeval data subset)")
    p.add_argument("--base", help="the base model the training started from (path or hub id; with --backend openai "
                                  "its served name); default: the base the first adapter names")
    p.add_argument("--backend", choices=["hf", "openai"], default="hf",
                   help="hf: transformers in this process (default); openai: a vLLM server (-M base_url=...) that "
                        "loads the adapters at run time")
    p.add_argument("--poll", type=SECONDS, default=30.0, metavar="SECONDS",
                   help="seconds between looks at the folder (default: 30)")
    p.add_argument("--until-final", action="store_true",
                   help="stop after the training's last checkpoint (its trainer_state.json says global_step = "
                        "max_steps); without it (or --once) the watch goes on until Ctrl-C")
    p.add_argument("--once", action="store_true", help="evaluate the checkpoints finished now (two polls) and stop")
    p.add_argument("--log-to", action="append", default=[], metavar="KIND:TARGET",
                   help="also log mmad/<task> and mmad/average per step to tensorboard:DIR, wandb:PROJECT or "
                        "mlflow:URI (repeatable; needs the library: pip install 'mmeval[train]', [wandb], [mlflow])")
    p.add_argument("--with", dest="references", default="gpt-4o", metavar="NAMES",
                   help="published MMAD models drawn as lines beside the human expert on MMAD data, comma-separated "
                        "(default: gpt-4o; 'none' for none)")
    p.add_argument("--out", required=True, help="folder of the curve and the steps' run directories")
    p.add_argument("--shots", type=flags.count_or_zero, default=1,
                   help="normal template images before the query (default: 1)")
    p.add_argument("--seed", type=flags.seed, default=0, help="seed of every random choice (default: 0)")
    p.add_argument("--answer-mode", choices=["generate", "likelihood"], default="likelihood",
                   help="default: likelihood (the option scores also give the mean probability of the correct "
                        "option, which moves before accuracy does)")
    p.add_argument("-M", "--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the backend's model family (mmeval models show hf|openai)")
    p.add_argument("--batch-size", type=flags.count, metavar="N", help="questions handed to the model at once")
    p.add_argument("--concurrency", type=flags.concurrency, metavar="N",
                   help="API requests in flight at once (--backend openai)")
    p.add_argument("--templates", choices=["random", "similar"], default="random",
                   help="which template list of each record the shots come from (default: random)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_watch)


def template_config(args: argparse.Namespace) -> Any:
    """The run config every step shares (the model and weights are filled in per step)."""
    from mmeval.cli.run import DEFAULTS, build_config

    s = {**DEFAULTS, "model": f"{args.backend}:{args.base or args.ckpt_dir}", "data": args.data,
         "subset": args.subset, "shots": args.shots, "seed": args.seed, "answer_mode": args.answer_mode,
         "batch_size": args.batch_size, "concurrency": args.concurrency, "templates": args.templates,
         "model_args": optionspec.parse_pairs(args.model_arg, "--model-arg"), "boost_args": {}}
    for key in ("adapter", "processor"):
        if key in s["model_args"]:
            raise InputError(f"--model-arg {key}=...: mmeval watch sets it per checkpoint; leave it out")
    return build_config(s)


def cmd_watch(args: argparse.Namespace) -> int:
    from mmeval.report import references
    from mmeval.watch.follow import Watch, WatchSettings
    from mmeval.watch.sinks import open_sink

    ckpt_dir = Path(args.ckpt_dir).expanduser().resolve()  # absolute: the paths enter the steps' identities
    if args.base and Path(args.base).expanduser().exists():
        args.base = str(Path(args.base).expanduser().resolve())
    if not ckpt_dir.is_dir():
        raise InputError(f"CKPT_DIR {ckpt_dir}: no such folder (give the trainer's output_dir)")
    refs = tuple(references.resolve(n) for n in args.references.split(",") if n.strip() and n.strip() != "none")
    template = template_config(args)
    sinks = [open_sink(spec) for spec in args.log_to]
    settings = WatchSettings(ckpt_dir=ckpt_dir, out=Path(args.out), base=args.base, backend=args.backend,
                             poll=args.poll, until_final=args.until_final, once=args.once, references=refs,
                             sinks=sinks, progress=not args.no_progress)
    incomplete = Watch(template, settings).follow()
    print(f"curve: {(Path(args.out) / 'curve.html').resolve()}")
    if incomplete:
        from mmeval.cli import EXIT_INCOMPLETE

        print(f"mmeval: error: {incomplete} (exit code {EXIT_INCOMPLETE})", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0
