"""Task registry: the question types, read from the declarative files in ``tasks/``.

A task file names a type, the labels the data uses for it, which images it is asked about and how it
is scored. The engine never branches on a task's name; it reads these fields.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

import tomllib
from pydantic import BaseModel, ConfigDict


class TaskDef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    aliases: tuple[str, ...]
    asked_about: Literal["all", "normal", "anomalous"]
    scoring: Literal["accuracy", "balanced"]
    yes_no: bool = False
    order: int
    description: str = ""


@lru_cache(maxsize=1)
def all_tasks() -> tuple[TaskDef, ...]:
    """Every task definition shipped in ``tasks/``, in report column order."""
    defs = []
    for entry in resources.files("mmeval.tasks").iterdir():
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text(encoding="utf-8"))
            try:
                defs.append(TaskDef.model_validate(data))
            except Exception as exc:  # a broken task file is a packaging bug: say which file
                raise RuntimeError(f"invalid task definition {entry.name}: {exc}") from exc
    return tuple(sorted(defs, key=lambda t: t.order))


def task_names() -> list[str]:
    return [t.name for t in all_tasks()]


def resolve(label: str) -> TaskDef | None:
    """The task a data label (e.g. ``Object Details``) reports under, or None if unknown."""
    for task in all_tasks():
        if label == task.name or label in task.aliases:
            return task
    return None


def get(name: str) -> TaskDef:
    task = resolve(name)
    if task is None:
        raise KeyError(f"unknown task '{name}'; known: {', '.join(task_names())}")
    return task
