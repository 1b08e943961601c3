"""The extension promise, kept: a question type is one file; a boost or an expert is one file (plus, for a text
boost, its template) and one registry line.

A contributor's change is made as README's "Where a change goes" says, in a copy of the package laid out as
``pip install`` lays it out, from the files in ``tests/extensions/`` (the same paths as in the source tree):
``tasks/surface_finish.toml``; ``mmeval/boosts/checklist.py`` with ``prompts/checklist.j2`` and a line in
``BOOSTS``; ``mmeval/experts/brightness.py`` and a line in ``EXPERTS``. Nothing else is touched (the test checks
the difference). That copy then runs, as ``python -m mmeval``, everything a user does with them: the data check,
a run and its report, the boost ablation (the agent boost consulting the new expert), the ``expert`` family
with it; and a run that does not ask the new type scores exactly as without its file.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mmeval.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONTRIBUTION = ROOT / "tests" / "extensions"
#: source folders and where an installed package holds them (pyproject's package-dir)
INSTALLED = {"mmeval": "mmeval", "tasks": "mmeval/tasks", "prompts": "mmeval/prompts",
             "model_adapters": "mmeval/model_adapters"}
#: the registry line each extension adds, under the line that opens its registry
REGISTRY_LINES = {
    "mmeval/boosts/__init__.py": ("BOOSTS: dict[str, str] = {",
                                  '    "checklist": "mmeval.boosts.checklist:ChecklistBoost",'),
    "mmeval/experts/__init__.py": ("EXPERTS: dict[str, str] = {",
                                   '    "brightness": "mmeval.experts.brightness:Brightness",'),
}
NEW_TYPE = "Surface Finish"
CHECKLIST = "Before you answer, check the edges, the surface, the print."


def installed(source: Path, site: Path) -> Path:
    """The source tree ``source`` laid out as installed, in ``site``."""
    for folder, target in INSTALLED.items():
        shutil.copytree(source / folder, site / target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                        dirs_exist_ok=True)
    return site


def contribute(tree: Path) -> None:
    """The contributor's change, made in a source tree: the new files and one line per registry."""
    for path in CONTRIBUTION.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            target = tree / path.relative_to(CONTRIBUTION)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    for rel, (anchor, line) in REGISTRY_LINES.items():
        text = (tree / rel).read_text(encoding="utf-8")
        assert text.count(anchor + "\n") == 1, rel
        (tree / rel).write_text(text.replace(anchor + "\n", f"{anchor}\n{line}\n"), encoding="utf-8")


def changed_files(before: Path, after: Path) -> dict[str, list[str]]:
    """Relative path -> the lines added or removed, for every file that differs between two trees."""
    def files(root: Path) -> dict[str, Path]:
        return {p.relative_to(root).as_posix(): p for p in root.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}

    a, b = files(before), files(after)
    out = {}
    for rel in sorted(a.keys() | b.keys()):
        old = a[rel].read_text(encoding="utf-8").splitlines() if rel in a else []
        new = b[rel].read_text(encoding="utf-8").splitlines() if rel in b else []
        if old != new:
            out[rel] = [d for d in difflib.unified_diff(old, new, lineterm="", n=0)
                        if d[:1] in "+-" and not d.startswith(("+++", "---"))]
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mmeval with the three extensions, installed-like, and proof that they are one file and one line each."""
    root = tmp_path_factory.mktemp("extended")
    source = root / "source"
    for folder in INSTALLED:
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    tree = root / "tree"
    shutil.copytree(source, tree)
    contribute(tree)
    changes = changed_files(source, tree)
    assert set(changes) == {"tasks/surface_finish.toml", "prompts/checklist.j2", "mmeval/boosts/checklist.py",
                            "mmeval/experts/brightness.py", *REGISTRY_LINES}
    for rel, (_, line) in REGISTRY_LINES.items():
        assert changes[rel] == ["+" + line]  # one line added, nothing else changed
    return installed(tree, root / "site")


def records(synthetic_demo: Path, every: int = 8) -> dict:
    """A slice of the bundled benchmark (several datasets, normal and defective images)."""
    data = json.loads((synthetic_demo / "mmad.json").read_text(encoding="utf-8"))
    return {k: v for i, (k, v) in enumerate(data.items()) if i % every == 0}


def with_new_type(recs: dict) -> dict:
    """Every normal image also asked the new type's question."""
    out = json.loads(json.dumps(recs))
    for i, (key, rec) in enumerate(out.items()):
        if "/good/" in key:
            options = ["Matte.", "Glossy.", "Brushed.", "Textured."]
            rec["conversation"].append({"Question": "How is the product's surface finished?", "Answer": "ABCD"[i % 4],
                                        "Options": dict(zip("ABCD", options, strict=True)), "type": NEW_TYPE,
                                        "annotation": True})
    return out


def write(recs: dict, folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "mmad.json").write_text(json.dumps(recs), encoding="utf-8")
    return folder / "mmad.json"


def mmeval(site: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m mmeval ARGS`` from the extended installed tree."""
    env = {**os.environ, "PYTHONPATH": str(site), "MMEVAL_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "OPENAI_API_KEY": ""}
    done = subprocess.run([sys.executable, "-m", "mmeval", *args], env=env, cwd=home.parent, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_three_extensions_end_to_end(site: Path, synthetic_demo: Path, tmp_path: Path) -> None:
    from fake_openai_server import FakeOpenAIServer

    images = synthetic_demo
    data = write(with_new_type(records(synthetic_demo)), tmp_path / "finish")
    home = tmp_path / "home"
    listed = {what: mmeval(site, home, what).stdout for what in ("tasks", "boosts", "experts")}
    assert NEW_TYPE in listed["tasks"] and "checklist" in listed["boosts"] and "brightness" in listed["experts"]

    # the data check: the new type gets its verdict
    mmeval(site, home, "data", "check", str(data))
    check = json.loads((data.parent / "data_check.json").read_text(encoding="utf-8"))
    assert NEW_TYPE in [v["task"] for v in check["verdicts"]]

    # the ablation: a plain run, the agent boost consulting the new expert, the new text boost (last: the fake
    # server keeps the last requests' bodies)
    with FakeOpenAIServer() as srv:
        out = tmp_path / "abl"
        mmeval(site, home, "run", "--model", "openai:fake-vlm", "-M", f"base_url={srv.base_url}", "-M",
               "no_cache=true", "--data", str(data), "--image-root", str(images), "--shots", "1", "--boost",
               "none,agent,checklist", "--boost-arg", "agent.expert=brightness", "--out", str(out), "--no-progress")
        bodies = [json.dumps(b) for b in srv.bodies]
    assert bodies and all(CHECKLIST in b for b in bodies)  # the boost's text reached the model
    scores = pd.read_csv(out / "none" / "scores.csv", index_col=0)
    cols = list(scores.columns)
    assert NEW_TYPE in cols and cols.index(NEW_TYPE) < cols.index("Average")  # a task like the others, averaged
    ablation = json.loads((out / "ablation" / "ablation.json").read_text(encoding="utf-8"))
    assert {(c["variant"], c["task"]) for c in ablation["cells"] if c["dataset"] == "Average"} >= {
        ("agent", NEW_TYPE), ("checklist", NEW_TYPE), ("checklist", "Average")}
    notes = [json.loads(line).get("boost_notes") or {} for line in
             (out / "agent" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert notes and all(n["agent"]["expert"] == "brightness" for n in notes)
    run = json.loads((out / "checklist" / "run.json").read_text(encoding="utf-8"))
    assert run["config"]["boosts"] == ["checklist"]

    # the report, rewritten from the predictions
    mmeval(site, home, "report", str(out / "checklist"))
    assert NEW_TYPE in (out / "checklist" / "report.html").read_text(encoding="utf-8")

    # the expert family with the new expert
    mmeval(site, home, "run", "--model", "expert", "-M", "expert=brightness", "--data", str(data), "--image-root",
           str(images), "--shots", "1", "--out", str(tmp_path / "expert"), "--no-progress")
    usage = json.loads((tmp_path / "expert" / "usage.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert usage["expert"] == "brightness" and usage["answered_by_detector"] > 0


def test_a_task_file_not_asked_changes_no_number(site: Path, synthetic_demo: Path, tmp_path: Path) -> None:
    """The same run, by mmeval with and without the new task file, on data that does not ask it: the same bytes."""
    data = write(records(synthetic_demo, every=3), tmp_path / "plain")
    flags = ["run", "--model", "random", "--data", str(data), "--image-root", str(synthetic_demo),
             "--shots", "1", "--no-progress"]
    assert main([*flags, "--out", str(tmp_path / "without")]) == 0
    mmeval(site, tmp_path / "home", *flags, "--out", str(tmp_path / "with"))
    for name in ("scores.csv", "predictions.jsonl"):
        assert (tmp_path / "with" / name).read_bytes() == (tmp_path / "without" / name).read_bytes(), name
