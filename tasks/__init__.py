"""Task registry and the one owner of task semantics.

A task file (``tasks/*.toml``) names a question type, the labels the data uses for it, which images
it is asked about, its role and how it is scored. The engine never branches on a task's name; it
reads these fields, through the functions below:

- :func:`detection_task`: the Yes/No "is there a defect" question (its answers give overkill, miss,
  recall, precision; its options' Yes/No meaning is :func:`option_polarity`);
- :func:`defect_tasks`: the tasks that presuppose a defect (asked only about anomalous images);
- :func:`by_role`: the task playing a role (``defect-type``, ``defect-location`` ...).

Adding a question type is adding a file; nothing else needs to know its name.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["detection", "defect-type", "defect-location", "defect-appearance", "defect-effect", "object-type",
               "object-details", "other"]
Polarity = Literal["yes", "no"]


class TaskDef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    aliases: tuple[str, ...]
    asked_about: Literal["all", "normal", "anomalous"]
    role: Role = "other"
    scoring: Literal["accuracy", "balanced"]
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
    roles = [t.role for t in defs if t.role != "other"]
    if len(roles) != len(set(roles)):
        raise RuntimeError(f"two task definitions claim the same role: {sorted(roles)}")
    return tuple(sorted(defs, key=lambda t: t.order))


def task_names() -> list[str]:
    """Every registered task, in report column order (what may be asked, not what a run asked)."""
    return [t.name for t in all_tasks()]


def in_order(asked: Iterable[str]) -> list[str]:
    """The task names in ``asked`` (the types some data holds), in report column order: registered tasks by
    their ``order``, then names outside the registry in the order they come.

    Whatever lists tasks (score tables, the ablation, the data check, figures) lists these: the tasks the
    data asks, never every file in ``tasks/``, so a type that exists but is not asked changes nothing.
    """
    seen = dict.fromkeys(str(a) for a in asked)
    known = [t for t in task_names() if t in seen]
    return known + [t for t in seen if t not in known]


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


def by_role(role: Role) -> TaskDef | None:
    """The task that plays ``role``, if one is defined."""
    return next((t for t in all_tasks() if t.role == role), None)


def has_role(task: str, role: Role) -> bool:
    """Whether the task named (or labelled) ``task`` plays ``role``."""
    tdef = resolve(task)
    return tdef is not None and tdef.role == role


def detection_task() -> str | None:
    """The name of the Yes/No defect question (MMAD's Anomaly Detection), if defined."""
    tdef = by_role("detection")
    return tdef.name if tdef else None


def defect_tasks() -> list[str]:
    """Tasks asked only about anomalous images: their questions presuppose a defect."""
    return [t.name for t in all_tasks() if t.asked_about == "anomalous"]


# ------------------------------------------------------------------------------------ Yes / No options

_WORD = re.compile(r"[a-z]+")


@lru_cache(maxsize=4096)  # a benchmark repeats a handful of option texts tens of thousands of times
def option_polarity(text: str) -> Polarity | None:
    """'yes' or 'no' when an option's text means Yes / No: its first word (``Yes.``, ``no``, ``No, it is fine``)."""
    m = _WORD.search(text.strip().lower())
    if not m or m.group(0) not in ("yes", "no"):
        return None
    return "yes" if m.group(0) == "yes" else "no"


def yes_no_letters(options: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The letters of the first option meaning Yes and the first meaning No."""
    yes = no = None
    for letter, text in options.items():
        pol = option_polarity(text)
        if pol == "yes" and yes is None:
            yes = letter
        elif pol == "no" and no is None:
            no = letter
    return yes, no
