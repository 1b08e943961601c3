"""mmeval at MMAD's size: does the harness vanish behind a model that costs nothing?

Builds an MMAD-sized benchmark from the bundled one (its categories replicated, images hard-linked, until
it holds about 39,700 questions on about 8,600 images, MMAD's 39,672 on 8,366), then, side by side in
one run:

* ``mmeval run --model random`` end to end in a fresh process: wall time and peak memory (RSS);
* ``mmeval report`` on that run in a fresh process: wall time (both ``--repeat`` times, the median counts);
* the same run in this process with each phase timed: load (records, image checks), prepare (shuffle,
  render), answer and write (the adapter and predictions.jsonl), merge, score, report (analyses, files,
  report.html).

Targets: run <= 10 s and <= 400 MB; report <= 3 s. Prints the figures and writes
``benchmarks/results/scale.json``.

The bundled images are 128 pixels wide; MMAD's are photographs of 0.5 to several megapixels. ``random``
never decodes an image, but the report embeds thumbnails of the images its wrong answers ask about (up to
400 answers). So the same benchmark is built again with every image enlarged to ``--photo-px`` pixels (with
a camera's faint noise, so that the files compress as photographs do), and its run and report are timed
too: what the report costs at MMAD's image sizes, beside the target's figure.

    .venv/bin/python benchmarks/scale.py [--questions 39700] [--repeat 3] [--photo-px 1024] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from warm import byte_compile

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"run_wall_s": 10.0, "run_peak_mb": 400.0, "report_wall_s": 3.0}
MMAD_QUESTIONS, MMAD_IMAGES = 39_672, 8_366


def replicate(src: Path, dst: Path, questions: int) -> tuple[int, int]:
    """Copies of every category of ``src`` (hard links) until about ``questions`` questions; (questions, images)."""
    records = json.loads((src / "mmad.json").read_text(encoding="utf-8"))
    per_copy = sum(len(r["conversation"]) for r in records.values())
    copies = max(1, round(questions / per_copy))
    out: dict[str, Any] = {}
    linked: set[Path] = set()

    def link(rel: str, copy: int) -> str:
        dataset, category, rest = rel.split("/", 2)
        new = f"{dataset}/{category}-{copy:03d}/{rest}"
        target = dst / new
        if target not in linked:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(src / rel, target)
            linked.add(target)
        return new

    for copy in range(copies):
        for key, rec in records.items():
            dataset, category, _ = key.split("/", 2)
            new = dict(rec)
            for field in ("random_templates", "similar_templates"):
                new[field] = [link(t, copy) for t in rec.get(field, [])]
            if rec.get("mask_path"):
                link(f"{dataset}/{category}/{rec['mask_path']}", copy)
            out[link(key, copy)] = new
    (dst / "mmad.json").write_text(json.dumps(out), encoding="utf-8")
    return copies * per_copy, copies * len(records)


def enlarge(src: Path, dst: Path, px: int, seed: int = 0) -> int:
    """A copy of the benchmark at ``src`` whose images are ``px`` pixels on their long side; how many.

    Masks (under ``ground_truth``) are scaled by nearest neighbour, photographs by bicubic with faint
    Gaussian noise (sigma 3 grey levels; one field per image shape, seeded by it), so their PNG files are
    about as large, and as slow to decode, as real ones. PIL encodes outside the GIL: one thread per CPU.
    """
    from concurrent.futures import ThreadPoolExecutor
    from functools import cache

    import numpy as np
    from PIL import Image

    @cache
    def noise(shape: tuple[int, ...]) -> Any:
        return np.rint(np.random.default_rng([seed, *shape]).normal(0.0, 3.0, shape)).astype(np.int16)

    def one(path: Path) -> None:
        target = dst / path.relative_to(src)
        with Image.open(path) as im:
            scale = px / max(im.size)
            size = (round(im.width * scale), round(im.height * scale))
            if "ground_truth" in path.parts:
                im.resize(size, Image.Resampling.NEAREST).save(target)
                return
            big = np.asarray(im.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
            Image.fromarray(np.clip(big + noise(big.shape), 0, 255).astype(np.uint8), im.mode).save(
                target, compress_level=1)

    images = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        (dst / path.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".png":
            images.append(path)
        else:
            shutil.copyfile(path, dst / path.relative_to(src))
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(one, images))
    return len(images)


#: started by :func:`measured`, starts a program and prints its wall time, CPU time and peak RSS. The kernel
#: counts, in the peak RSS (wait4) of a program started by a process, that process's own peak: a small starter
#: keeps the benchmark script's size (an in-process run, enlarged images ...) out of mmeval's figure
_STARTER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"wall_s": time.perf_counter() - start, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "peak_mb": usage.ru_maxrss / 1024, "code": os.waitstatus_to_exitcode(status)}))
"""


def measured(args: list[str], env: dict[str, str], cwd: Path | None = None) -> dict[str, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of a fresh ``python -m mmeval`` process,
    its own; exits with its error output when it fails."""
    return started([sys.executable, "-m", "mmeval", *args], env, cwd)


def started(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of the program ``argv``, started through the starter."""
    with tempfile.TemporaryFile() as err:
        done = subprocess.run([sys.executable, "-c", _STARTER, *argv], env=env,
                              stdout=subprocess.PIPE, stderr=err, cwd=cwd, check=False)
        figures = json.loads(done.stdout) if done.returncode == 0 else {"code": done.returncode}
        if figures["code"] != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join([Path(argv[0]).name, *argv[1:]])} failed ({figures['code']}):\n"
                             f"{err.read().decode(errors='replace')[-2000:]}")
    return {k: v for k, v in figures.items() if k != "code"}


def timed_subprocess(args: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of a fresh ``python -m mmeval`` process (see :func:`measured`)."""
    figures = measured(args, env, cwd)
    return figures["wall_s"], figures["peak_mb"]


class Phases:
    """Seconds spent in each named phase (wrapping the functions that do the work)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def wrap(self, owner: Any, attr: str, phase: str) -> Iterator[None]:
        original: Callable[..., Any] = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start

        setattr(owner, attr, timed)
        try:
            yield
        finally:
            setattr(owner, attr, original)


def phase_breakdown(data: Path, out: Path) -> dict[str, float]:
    from contextlib import ExitStack

    from mmeval.config import RunConfig
    from mmeval.report import run_report
    from mmeval.run import runner

    phases = Phases()
    shutil.rmtree(out, ignore_errors=True)
    config = RunConfig(model="random", data=str(data / "mmad.json"), shots=1)
    with ExitStack() as stack:
        stack.enter_context(phases.wrap(runner, "load", "load"))
        stack.enter_context(phases.wrap(runner, "prepare", "prepare"))
        stack.enter_context(phases.wrap(runner, "_answer", "answer+write"))
        stack.enter_context(phases.wrap(runner, "_merge", "merge"))
        start = time.perf_counter()
        runner.run(config, out, progress=False)
        run_s = time.perf_counter() - start
        start = time.perf_counter()
        run_report.write_run_report(out)
        phases.seconds["report"] = time.perf_counter() - start
    phases.seconds["run (all phases)"] = run_s
    return dict(phases.seconds)


def photo_sized(small: Path, work: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """The run once and its report ``--repeat`` times on the benchmark with its images at ``--photo-px``."""
    enlarged, big = work / f"bundled-{args.photo_px}px", work / f"mmad-sized-{args.photo_px}px"
    for folder in (enlarged, big):
        shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    images = enlarge(small, enlarged, args.photo_px)
    replicate(enlarged, big, args.questions)
    built = time.perf_counter() - start
    out = work / f"run-{args.photo_px}px"
    shutil.rmtree(out, ignore_errors=True)
    run_wall, run_peak = timed_subprocess(["run", "--model", "random", "--data", str(big), "--shots", "1",
                                           "--out", str(out), "--no-progress"], env)
    reports = [timed_subprocess(["report", str(out)], env)[0] for _ in range(max(1, args.repeat))]
    thumbnails = (out / "report.html").read_text(encoding="utf-8").count("data:image/jpeg;base64,")
    print(f"  images at {args.photo_px} px ({images} files enlarged in {built:.1f} s): run {run_wall:.2f} s, "
          f"{run_peak:.0f} MB; reports " + ", ".join(f"{r:.2f} s" for r in reports), file=sys.stderr)
    return {"image_px": args.photo_px, "run_wall_s": round(run_wall, 2), "run_peak_mb": round(run_peak, 1),
            "report_wall_s": round(statistics.median(reports), 2),
            "report_wall_s_each": [round(r, 2) for r in reports], "thumbnails": thumbnails}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=39_700)
    ap.add_argument("--keep", help="build the benchmark here and keep it (default: a temporary folder)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="fresh-process runs and reports; the median wall time counts, and the largest peak")
    ap.add_argument("--photo-px", type=int, default=1024,
                    help="also time the run and report with the images enlarged to this many pixels, as MMAD's "
                         "photographs are (MVTec AD's are up to 1024); 0 skips it")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale.json"))
    args = ap.parse_args(argv)
    byte_compile()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mmeval-scale-"))
    env = {**os.environ, "MMEVAL_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1"}
    os.environ["MMEVAL_HOME"] = env["MMEVAL_HOME"]
    try:
        from mmeval.data.synthetic.cache import ensure_synthetic

        small = ensure_synthetic().parent
        big = work / "mmad-sized"
        if big.exists():
            shutil.rmtree(big)
        n_q, n_img = replicate(small, big, args.questions)
        print(f"benchmark: {n_q} questions on {n_img} images (MMAD: {MMAD_QUESTIONS} on {MMAD_IMAGES}); "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
        runs, reports = [], []
        for rep in range(max(1, args.repeat)):  # a fresh run folder each time: every run answers everything
            out = work / f"run{rep}"
            shutil.rmtree(out, ignore_errors=True)  # a folder kept from an earlier call would resume, not run
            runs.append(timed_subprocess(["run", "--model", "random", "--data", str(big), "--shots", "1",
                                          "--out", str(out), "--no-progress"], env))
            reports.append(timed_subprocess(["report", str(out)], env)[0])
            print(f"  run {rep + 1}: {runs[-1][0]:.2f} s, {runs[-1][1]:.0f} MB; report {reports[-1]:.2f} s",
                  file=sys.stderr)
        run_wall, run_peak = statistics.median(r[0] for r in runs), max(r[1] for r in runs)
        report_wall = statistics.median(reports)
        phases = phase_breakdown(big, work / "phases")
        photos = photo_sized(small, work, args, env) if args.photo_px > 0 else None
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    figures = {"run_wall_s": round(run_wall, 2), "run_peak_mb": round(run_peak, 1),
               "report_wall_s": round(report_wall, 2)}
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "benchmark": {"questions": n_q, "images": n_img},
        "runs": {"run_wall_s_each": [round(r[0], 2) for r in runs], "run_peak_mb_each": [round(r[1], 1) for r in runs],
                 "report_wall_s_each": [round(r, 2) for r in reports]},
        "figures": figures, "targets": TARGETS,
        "met": {k: figures[k] <= TARGETS[k] for k in TARGETS},
        "phases_s": {k: round(v, 2) for k, v in phases.items()},
        "photo_sized": photos,
    }
    for key, value in figures.items():
        print(f"{key:<16} {value:>8}   target <= {TARGETS[key]:g}   {'met' if value <= TARGETS[key] else 'NOT met'}")
    print("phases (in-process run, seconds): " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    if photos:
        print(f"images at {photos['image_px']} px: run {photos['run_wall_s']:.2f} s, report "
              f"{photos['report_wall_s']:.2f} s ({photos['thumbnails']} thumbnails; not a target: the figure "
              "that image size adds)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
