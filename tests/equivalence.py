"""Behaviour equivalence of two versions of mmeval: same predictions, same scores.

A refactor or a speed-up must not move a single answer or number. This script installs two versions
side by side (each into its own folder, with ``pip install --no-deps --target``; the dependencies
come from the running interpreter), runs both on one benchmark folder with the same models, and
compares, per question, every field of ``predictions.jsonl`` except the config hash (paths into each
side's own mmeval home aside), and every number of ``scores.csv`` and ``scores.json`` (the run's config,
timings and schema versions aside). The config hash is compared on its own: a run without boosts must keep
it (or it would not resume); a boosted run's change is reported, not counted as a difference.

Models: ``random``, ``always-normal``, ``expert --shots 2``, a tiny random LLaVA in generate and in
likelihood mode (and in likelihood mode with the ``rag`` boost, and with the ``agent`` boost's drawing), and
the ``openai`` adapter against the local fake server of the tests.

    python tests/equivalence.py --before REV [--after REV] [--work DIR] [--only NAME ...]

``--before``/``--after`` take a git revision or a directory; ``--after`` defaults to the working
tree. Exit status 0 when everything matches, 1 otherwise (the differences are listed).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: run name -> (flags common to both command-line styles, flags of the old style, flags of the new style)
RUNS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "random": (["--model", "random", "--shots", "1"], [], []),
    "always-normal": (["--model", "always-normal", "--shots", "1"], [], []),
    "expert": (["--model", "expert", "--shots", "2"], [], []),
    "llava-generate": (["--model", "llava:{llava}", "--shots", "1"], [], []),
    "llava-likelihood": (["--model", "llava:{llava}", "--shots", "1", "--answer-mode", "likelihood"], [], []),
    # boosted: likelihood mode, whose option scores follow every token of the prompt
    "llava-rag": (["--model", "llava:{llava}", "--shots", "1", "--answer-mode", "likelihood", "--boost", "rag"], [],
                  []),
    "llava-agent": (["--model", "llava:{llava}", "--shots", "1", "--answer-mode", "likelihood", "--boost", "agent"],
                    [], []),
    "openai": (["--model", "openai:fake-vlm", "--shots", "1"],
               ["--base-url", "{base_url}", "--no-api-cache"],
               ["--model-arg", "base_url={base_url}", "--model-arg", "no_cache=true"]),
}

#: prediction fields that may differ (the config hash changes with any new config field)
IGNORED_PREDICTION_FIELDS = {"config", "question_digest"}
#: fields compared by their first word only: a note names its kind ("truncated", "refusal", "empty") and
#: may quote the flag that set a limit, whose spelling a version may change
KIND_FIELDS = {"note"}
#: scores.json keys that describe the run rather than its results
IGNORED_SCORE_KEYS = {"run", "version", "schema_version", "mmeval_version"}
#: usage fields that are measurements of time, not results
TIMING_KEYS = {"model_seconds"}


def sh(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def materialise(spec: str, work: Path, side: str) -> Path:
    """A source tree for a git revision (exported with git archive) or a directory as given."""
    path = Path(spec)
    if path.is_dir():
        return path.resolve()
    src = work / f"src-{side}"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", spec], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    return src


def install(src: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    build = Path(tempfile.mkdtemp(prefix="mmeval-equiv-build-"))
    try:  # build from a copy, so nothing (build/, *.egg-info) is written into the source tree
        shutil.copytree(src, build / "src", ignore=shutil.ignore_patterns(".git", ".venv", "reports", "build",
                                                                           "*.egg-info", "__pycache__"))
        sh([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
            str(build / "src")], stdout=subprocess.DEVNULL)
    finally:
        shutil.rmtree(build, ignore_errors=True)


class Side:
    """One installed version of mmeval."""

    def __init__(self, name: str, site: Path, work: Path) -> None:
        self.name, self.site, self.work = name, site, work
        self.home = work / f"home-{name}"
        self.env = {**os.environ, "PYTHONPATH": str(site), "MMEVAL_HOME": str(self.home),
                    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OPENAI_API_KEY": ""}
        helptext = self.mmeval(["run", "--help"], capture_output=True).stdout
        self.new_style = "--model-arg" in helptext

    def mmeval(self, args: list[str], **kw: Any) -> subprocess.CompletedProcess:
        return sh([sys.executable, "-m", "mmeval", *args], env=self.env, cwd=self.work, **kw)

    def run(self, name: str, data: Path, values: dict[str, str]) -> Path:
        common, old, new = RUNS[name]
        flags = [f.format(**values) for f in common + (new if self.new_style else old)]
        out = self.work / "runs" / self.name / name
        if out.exists():
            shutil.rmtree(out)
        self.mmeval(["run", *flags, "--data", str(data), "--out", str(out), "--no-progress"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return out


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai_server.py"), "--latency", "0"],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    return proc, f"http://127.0.0.1:{port}/v1"


# ------------------------------------------------------------------------------------------ comparison


def read_jsonl(path: Path) -> dict[str, dict[str, Any]]:
    return read_jsonl_text(path.read_text(encoding="utf-8"))


def read_predictions(run: Path, home: Path) -> dict[str, dict[str, Any]]:
    """A run's predictions, with paths into its side's mmeval home (boost caches) written as ``$MMEVAL_HOME``."""
    text = (run / "predictions.jsonl").read_text(encoding="utf-8")
    return read_jsonl_text(text.replace(json.dumps(str(home))[1:-1], "$MMEVAL_HOME"))


def read_jsonl_text(text: str) -> dict[str, dict[str, Any]]:
    out = {}
    for line in text.splitlines():
        if line.strip():
            rec = json.loads(line)
            out[rec["id"]] = rec
    return out


def diff_hashes(a: Path, b: Path, boosted: bool) -> tuple[list[str], str]:
    """(problems, note): the config hash of run.json and of every prediction, before against after."""
    hashes = []
    for run in (a, b):
        digest = json.loads((run / "run.json").read_text(encoding="utf-8"))["digest"]
        in_lines = {rec["config"] for rec in read_jsonl(run / "predictions.jsonl").values()}
        if in_lines != {digest}:
            return [f"{run}: predictions carry config hashes {sorted(in_lines)}, run.json {digest}"], ""
        hashes.append(digest)
    if hashes[0] == hashes[1]:
        return [], f"config hash {hashes[0]} unchanged"
    if boosted:
        return [], f"config hash {hashes[0]} -> {hashes[1]} (a boosted run: its boosts' identity changed)"
    return [f"config hash {hashes[0]} -> {hashes[1]}: a run without boosts would not resume"], ""


def diff_predictions(a: Path, b: Path, homes: tuple[Path, Path]) -> list[str]:
    pa, pb = read_predictions(a, homes[0]), read_predictions(b, homes[1])
    problems = []
    if list(pa) != list(pb):
        problems.append(f"question ids differ: {len(pa)} vs {len(pb)} "
                        f"(only before: {sorted(set(pa) - set(pb))[:3]}, only after: {sorted(set(pb) - set(pa))[:3]})")
    def comparable(rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if k not in IGNORED_PREDICTION_FIELDS}
        for k in KIND_FIELDS:
            if isinstance(out.get(k), str):
                out[k] = out[k].split(" ", 1)[0]
        return out

    for qid in pa.keys() & pb.keys():
        ra, rb = comparable(pa[qid]), comparable(pb[qid])
        for key in sorted(ra.keys() | rb.keys()):
            if (key in ra) != (key in rb) and (ra.get(key) or rb.get(key)) in (None, False):
                continue  # a field one version does not have, at its empty default in the other
            if ra.get(key) != rb.get(key):
                problems.append(f"{qid}: {key}: {ra.get(key)!r} != {rb.get(key)!r}")
    return problems


def diff_values(a: Any, b: Any, where: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(a.keys() | b.keys(), key=str):
            if key in TIMING_KEYS:
                continue
            out.extend(diff_values(a.get(key), b.get(key), f"{where}.{key}"))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff_values(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def diff_scores(a: Path, b: Path) -> list[str]:
    problems = []
    with open(a / "scores.csv", encoding="utf-8") as fa, open(b / "scores.csv", encoding="utf-8") as fb:
        ca, cb = list(csv.reader(fa)), list(csv.reader(fb))
    if ca != cb:
        problems.append(f"scores.csv differs:\n  {ca}\n  {cb}")
    ja = json.loads((a / "scores.json").read_text(encoding="utf-8"))
    jb = json.loads((b / "scores.json").read_text(encoding="utf-8"))
    for key in sorted((ja.keys() | jb.keys()) - IGNORED_SCORE_KEYS):
        problems.extend(diff_values(ja.get(key), jb.get(key), f"scores.json:{key}"))
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision or directory of the version before")
    ap.add_argument("--after", default=str(ROOT), help="git revision or directory (default: the working tree)")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "mmeval-equivalence"))
    ap.add_argument("--data", help="benchmark folder to use (default: build the bundled one with --before)")
    ap.add_argument("--only", nargs="*", choices=sorted(RUNS), help="run only these models")
    args = ap.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)

    sides = []
    for name, spec in (("before", args.before), ("after", args.after)):
        print(f"installing {name}: {spec}", flush=True)
        install(materialise(spec, work, name), work / f"site-{name}")
        sides.append(Side(name, work / f"site-{name}", work))
    before, after = sides

    data = Path(args.data).resolve() if args.data else work / "data"
    if not args.data:
        if data.exists():
            shutil.rmtree(data)
        before.mmeval(["build", "synthetic", "--out", str(data)], stdout=subprocess.DEVNULL)
    names = args.only or list(RUNS)
    values = {"llava": str(work / "tiny-llava"), "base_url": ""}
    if any(n.startswith("llava") for n in names):
        sh([sys.executable, str(ROOT / "tests" / "tiny_models.py"), "llava", values["llava"]],
           env={**after.env, "PYTHONPATH": f"{after.site}{os.pathsep}{ROOT / 'tests'}"}, stdout=subprocess.DEVNULL)
    server = None
    if "openai" in names:
        server, values["base_url"] = start_server(after.env)
    failures = 0
    try:
        for name in names:
            outs = [side.run(name, data, values) for side in sides]
            hash_problems, hash_note = diff_hashes(*outs, boosted="--boost" in RUNS[name][0])
            problems = diff_predictions(*outs, (before.home, after.home)) + diff_scores(*outs) + hash_problems
            n = len(read_jsonl(outs[0] / "predictions.jsonl"))
            status = "identical" if not problems else f"{len(problems)} difference(s)"
            print(f"{name:<18} {n} predictions: {status}; {hash_note or 'config hash: see below'}", flush=True)
            for p in problems[:20]:
                print("   ", p)
            failures += bool(problems)
    finally:
        if server is not None:
            server.terminate()
    print("all identical" if not failures else f"{failures} model(s) differ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
