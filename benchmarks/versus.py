"""Two versions of mmeval timed side by side: the MMAD-sized run and its report, interleaved.

On a shared or virtual machine the same code runs up to a third slower from one spell to the next, so a
speed-up smaller than that shows only when both versions are timed in the same minutes. This script
installs two versions (git revisions or folders, as ``tests/equivalence.py`` does) and byte-compiles both,
builds the MMAD-sized benchmark of ``scale.py`` once, then times ``mmeval run --model random`` and
``mmeval report`` on it with each version in turn, ``--repeat`` rounds, the version that goes first
alternating from round to round. It prints each round and the medians, and the ratio before / after.
Nothing is written to ``results/``: a comparison serves the author of a change; README quotes the three
benchmark scripts.

    .venv/bin/python benchmarks/versus.py --before REV [--after REV] [--repeat 3] [--questions 39700]
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from scale import replicate, timed_subprocess

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from equivalence import install, materialise  # noqa: E402

FIGURES = ("run_s", "report_s")


def _check_imports(site: Path, env: dict[str, str], cwd: Path) -> None:
    """The processes of a side import that side's mmeval (run outside the source tree: ``python -m`` puts the
    current folder first on the path)."""
    found = subprocess.run([sys.executable, "-c", "import mmeval; print(mmeval.__file__)"], env=env, cwd=cwd,
                           capture_output=True, text=True, check=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(site.resolve()):
        raise SystemExit(f"{site}: its processes import mmeval from {found}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision or directory of the version before")
    ap.add_argument("--after", default=str(ROOT), help="git revision or directory (default: the working tree)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each round times both versions")
    ap.add_argument("--questions", type=int, default=39_700)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mmeval-versus-"))
    try:
        envs = {}
        for side, spec in (("before", args.before), ("after", args.after)):
            print(f"installing {side}: {spec}", file=sys.stderr, flush=True)
            site = work / f"site-{side}"
            install(materialise(spec, work, side), site)
            if not compileall.compile_dir(site, quiet=1):  # as pip install . leaves it: no compiling while timed
                raise SystemExit(f"could not byte-compile {site}")
            envs[side] = {**os.environ, "PYTHONPATH": str(site), "MMEVAL_HOME": str(work / f"home-{side}"),
                          "HF_HUB_OFFLINE": "1"}
            _check_imports(site, envs[side], work)
        os.environ["MMEVAL_HOME"] = str(work / "home")
        from mmeval.data.synthetic.cache import ensure_synthetic

        big = work / "mmad-sized"
        n_q, n_img = replicate(ensure_synthetic().parent, big, args.questions)
        print(f"benchmark: {n_q} questions on {n_img} images; {os.cpu_count()} CPUs", file=sys.stderr)
        times: dict[str, dict[str, list[float]]] = {side: {f: [] for f in FIGURES} for side in envs}
        for rnd in range(max(1, args.repeat)):
            for side in ("before", "after") if rnd % 2 == 0 else ("after", "before"):
                out = work / f"run-{side}"
                shutil.rmtree(out, ignore_errors=True)
                times[side]["run_s"].append(timed_subprocess(
                    ["run", "--model", "random", "--data", str(big), "--shots", "1", "--out", str(out),
                     "--no-progress"], envs[side], cwd=work)[0])
                times[side]["report_s"].append(timed_subprocess(["report", str(out)], envs[side], cwd=work)[0])
                print(f"  round {rnd + 1} {side:<6} run {times[side]['run_s'][-1]:6.2f} s   "
                      f"report {times[side]['report_s'][-1]:5.2f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for figure in FIGURES:
        before, after = (statistics.median(times[side][figure]) for side in ("before", "after"))
        print(f"{figure:<9} before {before:6.2f} s   after {after:6.2f} s   before/after {before / after:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
