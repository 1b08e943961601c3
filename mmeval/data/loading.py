"""Loading an MMAD-format benchmark into validated, addressable questions.

The official ``mmad.json`` loads unchanged. Every question gets a stable id (``image key#index``) so
predictions can be cached and joined across runs. A bad record is either fatal (``strict``) or skipped
and listed, with its reason, in the run report; it never silently disappears.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from mmeval import tasks as task_registry
from mmeval.data.schema import ImageRecord
from mmeval.errors import DataError, InputError

TemplateKind = Literal["random", "similar"]
NORMAL_MARK = "good"  # MMAD: an image is normal when its path contains "good"


class Question(BaseModel):
    """One question, resolved against the data root and the task registry."""

    model_config = ConfigDict(frozen=True)

    id: str
    image: str  # the record key, relative to the data root
    index: int
    dataset: str
    category: str
    type_label: str  # the label as written in the data
    task: str  # the task it reports under
    question: str
    options: dict[str, str]
    answer: str
    is_normal: bool
    query_path: str
    template_paths: tuple[str, ...]
    mask_path: str | None


@dataclass
class Skipped:
    key: str
    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "field": self.field, "reason": self.reason}


@dataclass
class Benchmark:
    source: str
    root: Path
    questions: list[Question]
    skipped: list[Skipped] = field(default_factory=list)


def question_id(image_key: str, index: int) -> str:
    return f"{image_key}#{index}"


def locate(data: str, image_root: str | None = None) -> tuple[Path, Path]:
    """Turn ``--data`` (an mmad.json, a directory holding one) into (json file, image root)."""
    path = Path(data).expanduser()
    if path.is_dir():
        path = path / "mmad.json"
    if not path.is_file():
        raise InputError(f"--data: no mmad.json at '{path}' (give the file, its directory, or 'synthetic')")
    root = Path(image_root).expanduser() if image_root else path.parent
    if not root.is_dir():
        raise InputError(f"--image-root: '{root}' is not a directory")
    return path.resolve(), root.resolve()


def resolve(data: str, image_root: str | None = None) -> tuple[Path, Path]:
    """``--data`` -> (mmad.json, image root). ``synthetic`` builds (once) and uses the bundled benchmark."""
    if data == "synthetic":
        from mmeval.data.synthetic.cache import ensure_synthetic

        json_path = ensure_synthetic()
        return json_path, Path(image_root).resolve() if image_root else json_path.parent
    return locate(data, image_root)


def read_json(path: Path) -> dict:
    """Parse an mmad.json: a JSON object keyed by image path."""
    data = read_json_any(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object keyed by image path, got {type(data).__name__}")
    return data


def read_json_any(path: Path) -> object:
    """Parse a JSON file, turning decode errors into messages with a line and column."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(f"{path}: not UTF-8 at line {line}, column {col} (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    return data


def safe_path(root: Path, rel: object, key: str, field_name: str) -> Path:
    """Resolve a data-relative path, refusing absolute paths and ``..`` (they escape the data root)."""
    if not isinstance(rel, str) or not rel:
        raise DataError(key, field_name, f"expected a relative path, got {rel!r}")
    pure = PurePosixPath(rel.replace("\\", "/"))
    if pure.is_absolute() or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        raise DataError(key, field_name, f"absolute path '{rel}' is not allowed (paths are relative to the data root)")
    if ".." in pure.parts:
        raise DataError(key, field_name, f"path '{rel}' escapes the data root")
    return root.joinpath(*pure.parts)


def _first_error(key: str, exc: ValidationError) -> DataError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "record"
    msg = err["msg"].removeprefix("Value error, ")
    return DataError(key, loc, msg)


def _record_questions(
    key: str, value: object, root: Path, shots: int, templates: TemplateKind, allow_unknown_types: bool
) -> list[Question]:
    try:
        record = ImageRecord.model_validate(value)
    except ValidationError as exc:
        raise _first_error(key, exc) from None
    query = safe_path(root, key, key, "key")
    if not query.is_file():
        raise DataError(key, "key", f"image file not found: {query}")
    pool = record.similar_templates if templates == "similar" else record.random_templates
    list_name = f"{templates}_templates"
    if len(pool) < shots:
        raise DataError(key, list_name, f"{shots} shot(s) asked but only {len(pool)} template(s) listed")
    tpl_paths = []
    for i, rel in enumerate(pool[:shots]):
        p = safe_path(root, rel, key, f"{list_name}[{i}]")
        if not p.is_file():
            raise DataError(key, f"{list_name}[{i}]", f"template image not found: {p}")
        tpl_paths.append(str(p))
    mask = None
    if record.mask_path:
        parts = PurePosixPath(key).parts
        mask = str(safe_path(root, "/".join(parts[:2] + (record.mask_path,)), key, "mask_path"))
    parts = PurePosixPath(key).parts
    out = []
    for i, item in enumerate(record.conversation):
        task = task_registry.resolve(item.type)
        if task is None:
            if not allow_unknown_types:
                raise DataError(key, f"conversation.{i}.type", f"unknown question type '{item.type}' "
                                f"(known: {', '.join(task_registry.task_names())}; --allow-unknown-types keeps it)")
            task_name = item.type
        else:
            task_name = task.name
        out.append(Question(
            id=question_id(key, i), image=key, index=i, dataset=parts[0],
            category=parts[1] if len(parts) > 2 else "", type_label=item.type, task=task_name,
            question=item.question, options=dict(item.options), answer=item.answer,
            is_normal=NORMAL_MARK in key, query_path=str(query), template_paths=tuple(tpl_paths), mask_path=mask,
        ))
    return out


def load_benchmark(
    json_path: Path,
    root: Path,
    *,
    shots: int = 0,
    templates: TemplateKind = "random",
    strict: bool = False,
    allow_unknown_types: bool = False,
) -> Benchmark:
    """Validate every record; bad ones raise (strict) or are listed in ``skipped``."""
    data = read_json(json_path)
    bench = Benchmark(source=str(json_path), root=root, questions=[])
    for key, value in data.items():
        try:
            bench.questions.extend(_record_questions(key, value, root, shots, templates, allow_unknown_types))
        except DataError as exc:
            if strict:
                raise
            bench.skipped.append(Skipped(exc.key, exc.field, exc.reason))
    return bench
