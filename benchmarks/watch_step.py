"""One step of ``mmeval watch`` against a plain ``mmeval run`` of the same checkpoint on the same subset.

A watch loads the base once and swaps each new PEFT adapter onto it; evaluating checkpoints by hand means a
fresh ``mmeval run --model hf:BASE -M adapter=CHECKPOINT`` per checkpoint: a new interpreter, its imports, the
base loaded again. Both answer the same subset (``mmeval data subset``) of the bundled synthetic benchmark in
likelihood mode and write the same run directory and report; the watch also redraws its curve after each step.

The model is the tests' tiny random LLaVA-1.5 (tests/tiny_models.py) with LoRA adapters made by peft, so that
the figure is the harness's: with a real model its answering time comes on top of both sides, and the saving
per step is the base's loading time, which grows with its size. ``--size bench`` takes the larger model of
benchmarks/local_throughput.py (7.2 M parameters, 144 image tokens per image).

What is timed, side by side in ``--repeat`` rounds (the two in reverse order every other round):

* a watch step: ``mmeval watch`` runs over the base and ``--adapters`` checkpoints in a fresh process; the
  time from the line announcing one adapter step to the line announcing the next is that step's whole cost
  (adapter swap, answering, the step's report, the curve's update). Steps from the second adapter on are taken
  (the first one also wraps the base with peft); their median is the round's figure;
* a plain run: ``mmeval run`` of one of those checkpoints into a new folder, wall time of the process.

The speed-up is the median over the rounds of each round's ratio (run / watch step). Prints the figures and
writes benchmarks/results/watch_step.json. Run by hand (2 to 4 minutes on 2 shared cores):

    .venv/bin/python benchmarks/watch_step.py [--repeat 3] [--adapters 4] [--per-type 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
#: the tests' tiny model, and local_throughput.py's larger one
SIZES = {"tiny": {}, "bench": {"hidden": 320, "layers": 6, "heads": 4, "vision_hidden": 128, "vision_layers": 4,
                               "image_size": 96, "patch": 8}}


def build(work: Path, adapters: int, per_type: int, size: str) -> dict[str, Path]:
    import tiny_models

    base = tiny_models.build_tiny("llava", work / "base", **SIZES[size])  # type: ignore[arg-type]
    ckpts = work / "training"
    for step in range(1, adapters + 1):
        tiny_models.make_lora(base, ckpts / f"checkpoint-{step}", seed=step)
        tiny_models.trainer_state(ckpts / f"checkpoint-{step}", step, adapters)
    subset = work / "subset.json"
    mmeval(["data", "subset", "synthetic", "--per-type", str(per_type), "--seed", "0", "--out", str(subset)])
    return {"base": base, "ckpts": ckpts, "subset": subset}


def mmeval(args: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "mmeval", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise SystemExit(f"mmeval {' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")
    return done


def watch_steps(made: dict[str, Path], out: Path) -> tuple[dict[int, float], float]:
    """Seconds of every step but the last (from its announcing line to the next one), and the process's wall."""
    cmd = [sys.executable, "-m", "mmeval", "watch", str(made["ckpts"]), "--subset", str(made["subset"]),
           "--base", str(made["base"]), "--out", str(out), "--poll", "0", "--until-final", "--no-progress",
           "-M", "dtype=fp32"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    starts: list[tuple[int, float]] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("mmeval watch: step ") and "->" in line:
            starts.append((int(line.split()[3]), time.perf_counter()))
    if proc.wait() != 0:
        raise SystemExit("mmeval watch failed")
    wall = time.perf_counter() - start
    return {step: later - t for (step, t), (_, later) in zip(starts, starts[1:], strict=False)}, wall


def plain_run(made: dict[str, Path], checkpoint: Path, out: Path) -> float:
    start = time.perf_counter()
    mmeval(["run", "--model", f"hf:{made['base']}", "-M", f"adapter={checkpoint}", "-M", "dtype=fp32",
            "--subset", str(made["subset"]), "--answer-mode", "likelihood", "--out", str(out), "--no-progress"])
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--adapters", type=int, default=4, help="checkpoints in the watched folder (at least 3)")
    ap.add_argument("--per-type", type=int, default=2, help="questions per dataset x type in the subset")
    ap.add_argument("--size", choices=list(SIZES), default="tiny", help="the model (default: the tests' tiny one)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "watch_step.json")
    args = ap.parse_args()
    if args.adapters < 3:
        raise SystemExit("--adapters: give at least 3 (steps from the second adapter on are timed)")
    with tempfile.TemporaryDirectory(prefix="mmeval-watch-bench-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("MMEVAL_HOME", str(work / "home"))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        made = build(work, args.adapters, args.per_type, args.size)
        questions = len(json.loads(made["subset"].read_text())["ids"])
        mmeval(["run", "--model", "random", "--subset", str(made["subset"]), "--out", str(work / "warm")])  # caches
        rounds = []
        for r in range(args.repeat):
            def do_watch(r: int = r) -> tuple[dict[int, float], float]:
                return watch_steps(made, work / f"watch{r}")

            def do_run(r: int = r) -> float:
                return plain_run(made, made["ckpts"] / "checkpoint-2", work / f"run{r}")

            if r % 2 == 0:
                steps, watch_wall = do_watch()
                run_wall = do_run()
            else:
                run_wall = do_run()
                steps, watch_wall = do_watch()
            swaps = [s for step, s in steps.items() if step >= 2]
            step = statistics.median(swaps)
            rounds.append({"watch_step_s": round(step, 3), "watch_steps_s": {k: round(v, 3) for k, v in steps.items()},
                           "watch_process_s": round(watch_wall, 3), "run_s": round(run_wall, 3),
                           "ratio": round(run_wall / step, 3)})
            each = ", ".join(f"{k}: {v:.2f}" for k, v in steps.items())
            print(f"round {r + 1}: watch step {step:.2f} s (steps {each}; the whole watch {watch_wall:.1f} s) | "
                  f"plain mmeval run {run_wall:.2f} s | {run_wall / step:.2f}x", flush=True)
    ratio = statistics.median(r["ratio"] for r in rounds)
    result = {"benchmark": "watch_step", "questions": questions, "adapters": args.adapters, "model_size": args.size,
              "rounds": rounds, "speedup_median": round(ratio, 3),
              "watch_step_median_s": round(statistics.median(r["watch_step_s"] for r in rounds), 3),
              "run_median_s": round(statistics.median(r["run_s"] for r in rounds), 3),
              "machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": os.cpu_count()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"one watch step (adapter swapped on the loaded base) vs a plain mmeval run of the same checkpoint on the "
          f"same {questions} questions: {result['watch_step_median_s']:.2f} s against {result['run_median_s']:.2f} s, "
          f"{ratio:.2f}x (median of {len(rounds)} rounds' ratios); written to {args.out}")


if __name__ == "__main__":
    main()
