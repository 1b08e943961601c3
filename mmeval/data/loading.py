"""Loading an MMAD-format benchmark into validated, addressable questions.

The official ``mmad.json`` loads unchanged. Every question gets a stable id (``image key#index``) so
predictions can be cached and joined across runs. A bad record is either fatal (``strict``) or skipped
and listed, with its reason, in the run report; it never silently disappears.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError
from pydantic_core import to_json

from mmeval import tasks as task_registry
from mmeval.data.confine import Confined, under
from mmeval.data.images import ImageChecker, VerifyLevel
from mmeval.data.schema import ConversationItem, ImageRecord, first_problem
from mmeval.errors import DataError, InputError
from mmeval.jsonsafe import decode_utf8, parse_json

TemplateKind = Literal["random", "similar"]
NORMAL_MARK = "good"  # MMAD: an image is normal when its path contains "good"


@dataclass(frozen=True, slots=True)
class Question:
    """One question, resolved against the data root and the task registry.

    A plain slotted dataclass, not a pydantic model: its fields come from a validated record, and at
    MMAD's size (40,000 questions) a model's per-instance dict and field set cost tens of megabytes.
    """

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
    #: digest of what the prediction depends on in the data (see :func:`question_digest`)
    digest: str = ""


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
        raise InputError(f"--data: no mmad.json at '{path}' (give the file, its directory, or 'synthetic[:SCALE]')")
    root = Path(image_root).expanduser() if image_root else path.parent
    if not root.is_dir():
        raise InputError(f"--image-root: '{root}' is not a directory")
    return path.resolve(), root.resolve()


def resolve(data: str, image_root: str | None = None, *, columns: dict[str, str] | None = None) -> tuple[Path, Path]:
    """``--data`` -> (mmad.json, image root): the one place a ``--data`` value is interpreted.

    * ``synthetic[:SCALE]``: the bundled benchmark, built on first use;
    * ``mmad[@REVISION]``: the published MMAD, fetched from the hub and verified on first use
      (:mod:`mmeval.data.hub`);
    * a table (a ``save_to_disk`` directory, parquet files, ``hf:OWNER/NAME``): its mmad.json twin,
      converted on first use (:mod:`mmeval.data.tables`; ``columns`` maps its columns);
    * otherwise an mmad.json file or a directory holding one.
    """
    from mmeval.data import hub, tables
    from mmeval.data.synthetic.cache import ensure_synthetic, synthetic_scale

    if scale := synthetic_scale(data):
        json_path = ensure_synthetic(scale)
        return json_path, Path(image_root).resolve() if image_root else json_path.parent
    if spec := hub.parse_spec(data):
        json_path = hub.fetch(spec.bench, revision=spec.revision)
        return json_path, Path(image_root).expanduser().resolve() if image_root else json_path.parent
    if table := tables.table_spec(data):
        json_path = tables.twin_of(data, columns=columns, image_root=image_root, spec=table)
        return json_path, json_path.parent
    if columns:
        raise InputError(f"--columns: --data {data} is not a table (columns apply to save_to_disk directories, "
                         "parquet files and hf:OWNER/NAME datasets)")
    return locate(data, image_root)


def stored_data(data: str, image_root: str | None = None, *,
                columns: dict[str, str] | None = None) -> tuple[str, str | None]:
    """What a run config records for ``--data`` and ``--image-root``: (data, image root or None).

    The keyword for the synthetic benchmark; the absolute path for a path; for the hub benchmark and
    tables, the mmad.json they became (fetched or converted now), so the run reads a plain file.
    """
    from mmeval.data import hub, tables
    from mmeval.data.synthetic.cache import synthetic_scale

    root = str(Path(image_root).expanduser().resolve()) if image_root else None
    if synthetic_scale(data):
        return data, root
    if hub.parse_spec(data) or tables.table_spec(data):
        json_path, _ = resolve(data, image_root, columns=columns)
        return str(json_path), root if hub.parse_spec(data) else None
    if columns:
        resolve(data, image_root, columns=columns)  # the error that says columns apply to tables only
    return str(Path(data).expanduser().resolve()), root


class _Pairs(dict):
    """A JSON object that remembers the keys it held more than once (the first value is kept)."""

    duplicates: list[str]
    #: set on the outermost object: whether any object in the file repeated a key (else no need to look)
    any_duplicates: bool = True
    #: set on the outermost object: whether the file escapes any UTF-16 surrogate (else no string holds one)
    maybe_surrogates: bool = True


class _KeepFirst:
    """``object_pairs_hook`` building :class:`_Pairs` and noting whether any object of the file repeated a key."""

    def __init__(self) -> None:
        self.seen_duplicates = False

    def __call__(self, pairs: list[tuple[str, object]]) -> dict:
        plain = dict(pairs)
        if len(plain) == len(pairs):  # the common case: a plain dict (cheap to build, nothing to remember)
            return plain
        self.seen_duplicates = True
        out = _Pairs()
        out.duplicates = []
        for key, value in pairs:
            if key in out:
                out.duplicates.append(key)
            else:
                out[key] = value
        return out


def duplicate_keys(value: object) -> list[str]:
    """Keys repeated inside ``value`` or any object nested in it (as read by :func:`read_json_any`)."""
    found = list(getattr(value, "duplicates", []))
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    for child in children:
        found.extend(duplicate_keys(child))
    return found


def read_json(path: Path) -> dict:
    """Parse an mmad.json: a JSON object keyed by image path (a repeated key keeps its first record)."""
    data = read_json_any(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object keyed by image path, got {type(data).__name__}")
    return data


def read_json_any(path: Path) -> object:
    """Parse a JSON file, turning decode errors into messages with a line and column."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    raw = path.read_bytes()
    hook = _KeepFirst()
    # no depth limit beyond the parser's: what reads these values afterwards needs no more stack than the parser
    # did, and a walk over every value of an MMAD-sized file would cost a tenth of a second
    text = decode_utf8(raw, str(path))
    data = parse_json(text, str(path), max_depth=None, object_pairs_hook=hook)
    if isinstance(data, dict):
        if not isinstance(data, _Pairs):
            data = _Pairs(data)
            data.duplicates = []
        data.any_duplicates = hook.seen_duplicates
        data.maybe_surrogates = _SURROGATE_ESCAPE.search(text) is not None
    return data


def _first_error(key: str, exc: ValidationError) -> DataError:
    return DataError(key, *first_problem(exc))


def _image(paths: Confined, rel: object, key: str, field_name: str, what: str, checker: ImageChecker) -> str:
    """A usable image file under the root, or a DataError naming the record and field."""
    if isinstance(rel, str) and rel in paths.usable:
        return paths.usable[rel]
    path = under(paths.root_str, rel, key, field_name)
    try:  # one lstat answers "a link?", "a file?" and "how big?" for the usual plain file
        st: os.stat_result | None = os.lstat(path)
    except OSError:
        st = None
    link = st is not None and stat.S_ISLNK(st.st_mode)
    paths.confine(path, rel, key, field_name, link)
    if link:
        try:
            st = os.stat(path)
        except OSError:
            st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise DataError(key, field_name, f"{what} not found: {path}")
    problem = checker.problem(path, st.st_size)
    if problem:
        raise DataError(key, field_name, f"{what} {path}: {problem}")
    if isinstance(rel, str):
        paths.usable[rel] = path
    return path


def question_digest(key: str, item: ConversationItem, templates: list[str], mask: str | None) -> str:
    """What a prediction depends on in the data: the question, its options and answer, its type, the
    template and mask paths. A changed record changes this; the images' bytes do not (see README).

    Hashed as compact JSON with sorted keys and unescaped text (``json.dumps(..., sort_keys=True,
    ensure_ascii=False, separators=(",", ":"))``), written by pydantic's serialiser, several times faster
    for the same bytes; the options are the only mapping, sorted here.
    """
    blob = to_json([key, item.question, dict(sorted(item.options.items())), item.answer, item.type, templates, mask])
    return hashlib.sha256(blob).hexdigest()[:16]


#: ``\uD800``-``\uDFFF``: half of a UTF-16 pair, which JSON escapes allow but which is no text on its own
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(key: str, value: object) -> DataError | None:
    """A record holding half of a UTF-16 pair (no prompt or predictions line could hold it), else None."""
    try:
        json.dumps([key, value], ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        half = ascii(exc.object[exc.start:exc.end])
        return DataError(key, "record", f"holds {half}, half of a UTF-16 surrogate pair: not valid text")
    return None


def _record_questions(key: str, value: object, paths: Confined, shots: int, templates: TemplateKind,
                      allow_unknown_types: bool, checker: ImageChecker, any_duplicates: bool = True,
                      maybe_surrogates: bool = True) -> list[Question]:
    dupes = duplicate_keys(value) if any_duplicates else []
    if dupes:
        raise DataError(key, dupes[0], "the field appears twice in this record")
    surrogate = _lone_surrogate(key, value) if maybe_surrogates else None
    if surrogate is not None:
        raise surrogate
    try:
        record = ImageRecord.model_validate(value)
    except ValidationError as exc:
        raise _first_error(key, exc) from None
    query = _image(paths, key, key, "key", "image file", checker)
    pool = record.similar_templates if templates == "similar" else record.random_templates
    list_name = f"{templates}_templates"
    if len(pool) < shots:
        raise DataError(key, list_name, f"{shots} shot(s) asked but only {len(pool)} template(s) listed")
    tpl_paths = [_image(paths, rel, key, f"{list_name}[{i}]", "template image", checker)
                 for i, rel in enumerate(pool[:shots])]
    parts = tuple(part for part in key.split("/") if part not in ("", "."))  # as PurePosixPath(key).parts
    mask = None
    if record.mask_path:
        under(paths.root_str, record.mask_path, key, "mask_path")  # as written: no URL, absolute path or ..
        mask = paths.file("/".join(parts[:2] + (record.mask_path,)), key, "mask_path")
    out = []
    written = [str(r) for r in pool[:shots]]
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
            is_normal=NORMAL_MARK in key, query_path=query, template_paths=tuple(tpl_paths), mask_path=mask,
            digest=question_digest(key, item, written, record.mask_path),
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
    verify_images: VerifyLevel = "header",
) -> Benchmark:
    """Validate every record and the images it names; bad ones raise (strict) or are listed in ``skipped``.

    A key that appears twice keeps its first record; the later copies are listed as skipped.
    """
    data = read_json(json_path)
    bench = Benchmark(source=str(json_path), root=root, questions=[])
    checker = ImageChecker(verify_images)
    paths = Confined(root)
    problems = [DataError(key, "key", "the same key appears again later in the file; only its first record "
                               "is used") for key in getattr(data, "duplicates", [])]
    for key, value in data.items():
        try:
            bench.questions.extend(_record_questions(key, value, paths, shots, templates, allow_unknown_types,
                                                     checker, getattr(data, "any_duplicates", True),
                                                     getattr(data, "maybe_surrogates", True)))
        except DataError as exc:
            problems.append(exc)
    for problem in problems:
        if strict:
            raise problem
        bench.skipped.append(Skipped(problem.key, problem.field, problem.reason))
    return bench
