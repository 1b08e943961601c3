"""A non-editable install carries the task definitions and prompt templates inside the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # build from a clean copy: setuptools leaves build/ behind, and stale files there would leak into wheels
    src = tmp_path_factory.mktemp("src") / "mmeval"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", "build", "dist", "*.egg-info", ".git", "reports",
                                                              "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    return next(out.glob("mmeval-*.whl"))


def test_wheel_contains_data_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for task in (ROOT / "tasks").glob("*.toml"):
        assert f"mmeval/tasks/{task.name}" in names
    for tpl in (ROOT / "prompts").glob("*.j2"):
        assert f"mmeval/prompts/{tpl.name}" in names
    assert "mmeval/model_adapters/base.py" in names
    assert not any(n.startswith("model_adapters/") for n in names), "model_adapters must install inside mmeval"
    assert "mmeval/py.typed" in names
    for room in ("report", "watch"):
        for template in (ROOT / "mmeval" / room / "templates").glob("*.j2"):
            assert f"mmeval/{room}/templates/{template.name}" in names
    human = ROOT / "mmeval" / "human"
    for asset in [*(human / "templates").glob("*.j2"), *(human / "static").iterdir()]:
        assert f"mmeval/human/{asset.parent.name}/{asset.name}" in names  # the annotation page


def test_every_package_of_the_tree_is_in_the_wheel(wheel: Path) -> None:
    """A new sub-package must be listed in pyproject.toml, or the installed tool misses its modules."""
    names = set(zipfile.ZipFile(wheel).namelist())
    mapped = {"tasks": "mmeval/tasks", "prompts": "mmeval/prompts", "model_adapters": "mmeval/model_adapters"}
    for init in ROOT.glob("**/__init__.py"):
        rel = init.relative_to(ROOT).as_posix()
        top = rel.split("/")[0]
        if top in ("tests", "benchmarks", ".venv", "build") or top.startswith("."):
            continue
        installed = mapped[top] + rel[len(top):] if top in mapped else rel
        assert installed in names, f"{rel} is not packaged (add its package to pyproject.toml)"


def test_installed_wheel_runs_outside_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import mmeval, mmeval.model_adapters; from mmeval import tasks; from mmeval.prompting import render; "
            f"assert mmeval.__file__.startswith({str(target)!r}), mmeval.__file__; "
            "print(len(tasks.all_tasks()), render.prompts_digest())")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    from mmeval import tasks
    from mmeval.prompting.render import prompts_digest

    assert done.stdout.split() == [str(len(tasks.all_tasks())), prompts_digest()]  # every task file installed
