"""Benchmarks given as Hugging Face ``datasets`` tables: one row per question.

``--data`` accepts, besides an mmad.json:

* a directory written by ``Dataset.save_to_disk`` (read with ``datasets.load_from_disk``; a
  ``DatasetDict`` directory takes its only split, ``test``, or ``DIR:SPLIT``);
* parquet files: one file, a directory of them, or a glob (read with ``datasets.load_dataset("parquet")``);
* a dataset on the hub, ``hf:OWNER/NAME[@REVISION][:SPLIT]`` (``datasets.load_dataset``).

Each row carries a question, its options, its answer, its type and its image; the normal templates
and the mask are optional. Columns are found by their usual names (:data:`CANDIDATES`) or named with
``--columns FIELD=COLUMN,...``; a table whose columns cannot be mapped is an error that lists the
columns it has. Images may be image columns (bytes) or paths relative to the image root (the table's
folder unless ``--image-root`` says otherwise).

A table becomes its mmad.json twin: rows are grouped by image into records, in the order the images
first appear, with the same keys and relative paths an mmad.json of the same questions has; image
bytes are written (and path-given images linked) under one folder in mmeval's cache, named by the
table's source, the mapping and the image root. So the same questions as a table or as an mmad.json
become the same questions, with the same ids, and give the same predictions; the twin is built once and
reused, and converted again in the same folder when the table changes (as an mmad.json edited in place:
a run on it resumes and asks the changed questions again).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from mmeval.data.confine import Confined, relative_parts
from mmeval.data.schema import LETTERS, ConversationItem, first_problem
from mmeval.errors import DataError, InputError
from mmeval.home import mmeval_home, staged
from mmeval.jsonsafe import parse_json
from mmeval.locks import folder_lock

HUB_PREFIX = "hf:"
READY = ".mmeval-ready.json"
SKIPPED = "conversion_skipped.json"
#: bump when the conversion changes what it writes (a new version builds a fresh twin)
CONVERTER_VERSION = "2"

#: field -> column names tried, in order, when --columns does not name one
CANDIDATES: dict[str, tuple[str, ...]] = {
    "key": ("image_path", "query_image", "image_key", "key", "file_name"),
    "image": ("image", "query_image", "img"),
    "question": ("question", "Question"),
    "options": ("options", "Options", "choices"),
    "answer": ("answer", "Answer"),
    "type": ("type", "question_type", "task"),
    "random_templates": ("random_templates",),
    "similar_templates": ("similar_templates",),
    "templates": ("templates", "template_images", "template_image"),
    "mask": ("mask", "mask_image"),
    "mask_path": ("mask_path",),
}
REQUIRED = ("question", "options", "answer", "type")
FIELDS = tuple(CANDIDATES)
_IMAGE_EXT = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"GIF8": ".gif", b"BM": ".bmp", b"RIFF": ".webp",
              b"II*\x00": ".tif", b"MM\x00*": ".tif"}
_OPTION_LINE = re.compile(r"^\s*([A-H])\s*[:.)]\s*(.*\S)\s*$")


@dataclass(frozen=True)
class TableSpec:
    """A --data value that names a table: how to load it and where its path-given images live."""

    kind: str  # "disk", "parquet" or "hub"
    target: str  # the directory, the parquet files (joined by newlines) or the hub id
    split: str | None = None
    revision: str | None = None

    @property
    def label(self) -> str:
        name = self.target.splitlines()[0] if self.kind != "hub" else self.target
        return re.sub(r"[^A-Za-z0-9._-]+", "-", PurePosixPath(name.rstrip("/")).name or "table").strip("-")[:40]


def table_spec(data: str) -> TableSpec | None:
    """The table a --data value names, or None when it names something else (an mmad.json, a keyword)."""
    if data.startswith(HUB_PREFIX):
        rest = data[len(HUB_PREFIX):]
        rest, _, hub_split = rest.partition(":")
        repo, _, revision = rest.partition("@")
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo):
            raise InputError(f"--data {data}: expected hf:OWNER/NAME[@REVISION][:SPLIT]")
        return TableSpec("hub", repo, hub_split or None, revision or None)
    path = Path(data).expanduser()
    split: str | None = None
    if not path.exists() and ":" in data:
        head, _, tail = data.rpartition(":")
        if Path(head).expanduser().is_dir() and re.fullmatch(r"[\w.-]+", tail):
            path, split = Path(head).expanduser(), tail
    if path.is_dir():
        if (path / "mmad.json").is_file():
            return None
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            return TableSpec("disk", str(path.resolve()), split)
        files = sorted(str(p.resolve()) for p in path.rglob("*.parquet"))
        return TableSpec("parquet", "\n".join(files)) if files else None
    if path.is_file() and path.suffix == ".parquet":
        return TableSpec("parquet", str(path.resolve()))
    if any(ch in data for ch in "*?[") and data.endswith(".parquet"):
        files = sorted(str(Path(p).resolve()) for p in glob.glob(os.path.expanduser(data), recursive=True))
        if not files:
            raise InputError(f"--data {data}: no parquet file matches")
        return TableSpec("parquet", "\n".join(files))
    return None


def parse_columns(text: str | dict[str, str] | None) -> dict[str, str]:
    """``--columns question=q,options=choices`` (or that mapping, from a config file) -> {field: column}."""
    if not text:
        return {}
    items = [f"{k}={v}" for k, v in text.items()] if isinstance(text, dict) else str(text).split(",")
    out: dict[str, str] = {}
    for item in items:
        if not item.strip():
            continue
        fld, sep, col = item.partition("=")
        fld, col = fld.strip(), col.strip()
        if not sep or not col:
            raise InputError(f"--columns: expected FIELD=COLUMN, got '{item}'")
        if fld not in CANDIDATES:
            raise InputError(f"--columns: unknown field '{fld}' (fields: {', '.join(FIELDS)})")
        out[fld] = col
    return out


# ------------------------------------------------------------------------------------------ loading


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise InputError("tables as --data need the datasets package: pip install 'mmeval[hub]'") from None
    return datasets


def load_table(spec: TableSpec) -> Any:
    """The ``datasets.Dataset`` a spec names (one split)."""
    ds_lib = _datasets()
    cache = str(mmeval_home() / "datasets")
    if spec.kind == "parquet":
        check_parquet(spec.target.splitlines())
    try:
        if spec.kind == "disk":
            loaded = ds_lib.load_from_disk(spec.target)
        elif spec.kind == "parquet":
            loaded = ds_lib.load_dataset("parquet", data_files=spec.target.splitlines(), split="train",
                                         cache_dir=cache)
        else:
            loaded = ds_lib.load_dataset(spec.target, revision=spec.revision, split=spec.split, cache_dir=cache)
    except (OSError, ValueError, ds_lib.exceptions.DatasetsError) as exc:
        cause = (exc.__cause__ or exc.__context__) if isinstance(exc, ds_lib.exceptions.DatasetsError) else exc
        culprit = _unreadable_shard(spec.target.splitlines()) if spec.kind == "parquet" else None
        raise InputError(f"{culprit or '--data ' + spec.target.splitlines()[0]}: cannot load the table "
                         f"({_first_line(cause or exc)})") from None
    if isinstance(loaded, ds_lib.DatasetDict):
        splits = list(loaded)
        if spec.split:
            if spec.split not in loaded:
                raise InputError(f"--data: no split '{spec.split}' (splits: {', '.join(splits)})")
            return loaded[spec.split]
        if len(splits) == 1:
            return loaded[splits[0]]
        if "test" in loaded:
            return loaded["test"]
        name = spec.target if spec.kind == "hub" else spec.target.splitlines()[0]
        raise InputError(f"--data {name}: the table has several splits ({', '.join(splits)}); name one: "
                         + (f"hf:{name}:SPLIT" if spec.kind == "hub" else f"{name}:SPLIT"))
    if spec.split and spec.kind == "disk":
        raise InputError(f"--data {spec.target}: holds one table, not splits; drop ':{spec.split}'")
    return loaded


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def check_parquet(files: list[str]) -> None:
    """Every shard of a parquet table readable, all with the same columns; else an InputError naming the shard.

    Read from each file's footer (its schema), before ``datasets`` reads the rows: its own errors name no file.
    A shard whose footer is missing is truncated; one whose columns differ from the first shard's would make
    ``datasets`` refuse the whole table.
    """
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    first: tuple[str, list[str]] | None = None
    for name in files:
        try:
            columns = list(pq.read_schema(name).names)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{name}: not a readable parquet file ({_first_line(exc)}); it is probably truncated or "
                             "damaged: write or download it again") from None
        if first is None:
            first = (name, columns)
        elif set(columns) != set(first[1]):
            missing = [c for c in first[1] if c not in columns]
            extra = [c for c in columns if c not in first[1]]
            raise InputError(f"{name}: its columns differ from those of {first[0]} (missing: "
                             f"{', '.join(missing) or 'none'}; extra: {', '.join(extra) or 'none'}); every shard of "
                             "a table needs the same columns")


def _unreadable_shard(files: list[str]) -> str | None:
    """The first parquet shard whose rows cannot be read (a damaged page behind an intact footer), if any."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name in files:
        try:
            pq.read_table(name)
        except (OSError, pa.ArrowException):
            return name
    return None


def map_columns(columns: list[str], given: dict[str, str]) -> dict[str, str]:
    """field -> column: the columns --columns names, else the usual names; raises when a field is missing."""
    have = set(columns)
    bad = {f: c for f, c in given.items() if c not in have}
    if bad:
        raise InputError(f"--columns: no column {', '.join(repr(c) for c in bad.values())} in the table (columns: "
                         f"{', '.join(columns)})")
    mapping = dict(given)
    used = set(mapping.values())
    for fld, names in CANDIDATES.items():
        if fld in mapping:
            continue
        col = next((n for n in names if n in have and n not in used), None)
        if col is not None:
            mapping[fld] = col
            used.add(col)
    if "templates" in mapping and ({"random_templates", "similar_templates"} & set(mapping)):
        del mapping["templates"]  # explicit lists win over a shared one
    missing = [f for f in REQUIRED if f not in mapping]
    if "image" not in mapping and "key" not in mapping:
        missing.append("image")
    if missing:
        raise InputError(
            f"the table cannot be read as questions: no column for {', '.join(missing)} (columns found: "
            f"{', '.join(columns)}). Name them with --columns FIELD=COLUMN,... (fields: {', '.join(FIELDS)}; "
            "needed: question, options, answer, type, and image or key)")
    return mapping


# ------------------------------------------------------------------------------------------ converting


@dataclass
class _Twin:
    root: Path
    source_root: Path
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    written: set[str] = field(default_factory=set)
    sources: Confined = field(init=False)  # path-given images are read only from under source_root

    def __post_init__(self) -> None:
        self.sources = Confined(self.source_root)


def _ext(data: bytes) -> str:
    return next((ext for magic, ext in _IMAGE_EXT.items() if data.startswith(magic)), ".png")


def _safe_rel(text: object) -> str | None:
    """``text`` as a relative path that stays inside a root (the rule of :mod:`mmeval.data.confine`), or None."""
    try:
        parts = relative_parts(text, "", "")
    except DataError:
        return None
    return "/".join(parts) or None


def _image_value(value: Any) -> tuple[bytes | None, str | None]:
    """(bytes, path) of an image cell: a struct {bytes, path}, raw bytes, or a path string."""
    if isinstance(value, dict):
        data = value.get("bytes")
        return (bytes(data) if data else None), value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value), None
    if isinstance(value, str):
        return None, value
    return None, None


class _RowError(Exception):
    pass


def _place(twin: _Twin, value: Any, rel: str | None, fallback_dir: str, what: str) -> str:
    """Put an image cell into the twin folder; return its path relative to the twin root.

    Bytes go to ``rel`` when given, else to the path the cell carries when it is a relative path with a
    folder, else to ``fallback_dir/<content digest>.<ext>``. A path-given image is linked (or copied) from
    the table's image root to the same relative path.
    """
    data, path = _image_value(value)
    if data is not None:
        target = rel or (path if (p := _safe_rel(path)) and "/" in p else None)
        target = _safe_rel(target) if target else None
        if target is None:
            target = f"{fallback_dir}/{hashlib.sha256(data).hexdigest()[:16]}{_ext(data)}"
        if target not in twin.written:
            dest = twin.root / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            twin.written.add(target)
        return target
    src_rel = _safe_rel(path)
    if src_rel is None:
        raise _RowError(f"{what}: {path!r} is neither image bytes nor a relative path")
    dest_rel = _safe_rel(rel) or src_rel
    if dest_rel not in twin.written:
        try:  # the rule every data source meets: no link out of the image root is followed
            src = twin.sources.path(src_rel, src_rel, what)
        except DataError as exc:
            raise _RowError(f"{what}: {exc.reason}") from None
        if not src.is_file():
            raise _RowError(f"{what}: no file {src}")
        dest = twin.root / dest_rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src.resolve(), dest)
        except OSError:
            shutil.copyfile(src, dest)
        twin.written.add(dest_rel)
    return dest_rel


def parse_options(value: Any) -> dict[str, str]:
    """Options as a letter -> text dict, from a struct/dict, a list, JSON text, or "A: text" lines."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("{", "[")):
            try:
                return parse_options(parse_json(text, "options"))
            except InputError:
                pass
        lines = [m for line in text.splitlines() if (m := _OPTION_LINE.match(line))]
        if lines and len(lines) == len([ln for ln in text.splitlines() if ln.strip()]):
            return {m.group(1): m.group(2) for m in lines}
        raise _RowError(f"options: cannot read {text[:60]!r} (give a dict, a list, JSON or 'A: text' lines)")
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if v is not None and str(v).strip()}
    if isinstance(value, (list, tuple)):
        if len(value) > len(LETTERS):
            raise _RowError(f"options: {len(value)} options, at most {len(LETTERS)}")
        return {LETTERS[i]: str(v) for i, v in enumerate(value)}
    raise _RowError(f"options: cannot read a {type(value).__name__}")


def _answer(value: Any, options: dict[str, str]) -> str:
    text = str(value).strip() if value is not None else ""
    if text in options:
        return text
    if len(text) == 2 and text[1] in ".)" and text[0] in options:
        return text[0]
    hits = [k for k, v in options.items() if v.strip() == text]
    if len(hits) == 1:
        return hits[0]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(options):
        return list(options)[value]
    raise _RowError(f"answer: {text[:40]!r} is neither an option letter ({', '.join(options)}) nor an option's text")


def _template_list(twin: _Twin, value: Any, key_dir: str, what: str) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [_place(twin, v, None, f"{key_dir}/templates", f"{what}[{i}]") for i, v in enumerate(items) if v]


def _add_row(twin: _Twin, row: dict[str, Any], mapping: dict[str, str]) -> None:
    """Add one row's question to its image's record (made on the image's first good row).

    The row is checked in full before anything is added, with the same rules an mmad.json record meets
    (:class:`~mmeval.data.schema.ConversationItem`), so a bad row (a null or unreadable cell) is left out on
    its own, not with its image's other questions. The image's own fields (mask, template lists) come from
    the first row that gives them: a null there on one row takes them from the next.
    """
    col = {f: row.get(c) for f, c in mapping.items()}
    key = _row_key(col)
    item = _row_item(col)
    parts = PurePosixPath(key).parts
    key_dir = "/".join(parts[:2]) if len(parts) > 2 else parts[0]
    record = twin.records.get(key)
    if record is None:
        image = col.get("image") if col.get("image") is not None else key  # no image column: the key is its path
        _place(twin, image, key, key_dir, "image")
        given_mask = col.get("mask_path")
        # an empty mask_path stays empty (not null), as in the mmad.json the table may come from
        record = {"conversation": [], "mask_path": "" if given_mask == "" else None, "similar_templates": [],
                  "random_templates": []}
        record.update(_image_fields(twin, record, col, key_dir, mapping))
        twin.records[key] = record
    else:
        record.update(_image_fields(twin, record, col, key_dir, mapping))
    record["conversation"].append(item)


def _row_key(col: dict[str, Any]) -> str:
    key_value = col.get("key")
    key = _safe_rel(key_value) if isinstance(key_value, str) else None
    if key is None:
        _, path = _image_value(col.get("image"))
        key = _safe_rel(path) if path and "/" in path else None
    if key is None:
        raise _RowError("no image key: the image carries no relative path with a folder; name a column holding "
                        "the image's path (DATASET/CATEGORY/...) with --columns key=COLUMN")
    return key


def _row_item(col: dict[str, Any]) -> dict[str, Any]:
    """The row's question as an mmad.json conversation item, checked as the loader checks one."""
    options = parse_options(col.get("options"))
    question = str(col.get("question") or "")
    if not question.strip():
        raise _RowError("question: empty")
    kind = str(col.get("type") or "")
    if not kind.strip():
        raise _RowError("type: empty")
    item = {"Question": question, "Answer": _answer(col.get("answer"), options), "Options": options, "type": kind}
    try:
        ConversationItem.model_validate(item)
    except ValidationError as exc:
        raise _RowError(": ".join(first_problem(exc))) from None
    return item


def _image_fields(twin: _Twin, record: dict[str, Any], col: dict[str, Any], key_dir: str,
                  mapping: dict[str, str]) -> dict[str, Any]:
    """The mask and template lists this row gives that ``record`` still lacks (placed in the twin)."""
    found: dict[str, Any] = {}
    given_mask = col.get("mask_path")
    if record["mask_path"] is None and "mask_path" in mapping and given_mask:
        mask_rel = _safe_rel(given_mask)
        if mask_rel is None:
            raise _RowError(f"mask_path: {given_mask!r} is not a relative path")
        found["mask_path"] = mask_rel
        if col.get("mask") is not None:
            _place(twin, col["mask"], f"{key_dir}/{mask_rel}", key_dir, "mask")
        elif not (twin.root / key_dir / mask_rel).is_file():
            _place(twin, f"{key_dir}/{mask_rel}", None, key_dir, "mask")
    elif record["mask_path"] is None and col.get("mask") is not None:
        placed = _place(twin, col["mask"], None, f"{key_dir}/masks", "mask")
        if not placed.startswith(key_dir + "/"):
            raise _RowError(f"mask: {placed} lies outside the record's {key_dir}/ folder")
        found["mask_path"] = placed[len(key_dir) + 1:]
    if not (record["random_templates"] and record["similar_templates"]):
        shared = _template_list(twin, col.get("templates"), key_dir, "templates")
        for name in ("random_templates", "similar_templates"):
            if not record[name]:
                found[name] = _template_list(twin, col.get(name), key_dir, name) or shared
    return {k: v for k, v in found.items() if v}


def _rows(table: Any, batch: int = 256) -> Iterator[dict[str, Any]]:
    """The table's rows as plain values, images undecoded ({bytes, path})."""
    arrow = table.with_format("arrow")
    for start in range(0, len(table), batch):
        yield from arrow[start:start + batch].to_pylist()


def twin_home(spec: TableSpec, mapping: dict[str, str], image_root: Path) -> Path:
    """Where a table's twin lives: a folder named by which table it is (its source, split and revision), the
    column mapping and the image root, not by the table's contents. An edited table is converted again into
    the same place, so a run on it keeps its config (which names the twin's path) and resumes: its questions'
    digests say which to ask again, exactly as when an mmad.json is edited in place."""
    blob = json.dumps([spec.kind, spec.target, spec.split, spec.revision, mapping, str(image_root)], sort_keys=True)
    return mmeval_home() / "tables" / f"{spec.label}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def made_from(table: Any) -> str:
    """What a twin was converted from: the converter version and the table's own fingerprint (which
    ``datasets`` derives from the data), kept in the twin's marker; another value converts again."""
    own = getattr(table, "_fingerprint", None) or hashlib.sha256(repr(table.data).encode()).hexdigest()
    return f"{CONVERTER_VERSION}:{own}"


def _current(home: Path, source: str) -> bool:
    """Whether ``home`` holds a complete twin converted from ``source`` (see :func:`made_from`)."""
    try:
        marker = json.loads((home / READY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("made_from") == source and (home / "mmad.json").is_file()


def twin_of(data: str, *, columns: dict[str, str] | None = None, image_root: str | None = None,
            spec: TableSpec | None = None) -> Path:
    """The mmad.json twin of the table ``data`` names (converted into mmeval's cache on first use, and again
    when the table changed). One process converts at a time: another waits (it says for whom) and then
    uses the twin."""
    spec = spec or table_spec(data)
    if spec is None:
        raise InputError(f"--data {data}: not a table")
    table = load_table(spec)
    mapping = map_columns(list(table.column_names), columns or {})
    if image_root:
        source_root = Path(image_root).expanduser().resolve()
    elif spec.kind == "hub":
        source_root = Path.cwd()
    else:
        first = Path(spec.target.splitlines()[0])
        source_root = first if first.is_dir() else first.parent
    home = twin_home(spec, mapping, source_root)
    source = made_from(table)
    if _current(home, source):
        return home / "mmad.json"

    def waiting(holder: str) -> None:
        print(f"mmeval: {data} is being converted into {home} by another process; waiting for {holder}",
              file=sys.stderr, flush=True)

    lock = folder_lock(home).acquire(on_wait=waiting)
    try:
        if _current(home, source):
            return home / "mmad.json"
        again = (home / "mmad.json").is_file()
        twin = _convert(data, table, mapping, source_root, home, source)
    finally:
        lock.release()
    if again:
        print(f"mmeval: {data} changed since it was converted; converted again into {home} (a run on it asks its "
              "changed questions again)", file=sys.stderr)
    if twin.skipped:
        print(f"mmeval: {len(twin.skipped)} row(s) of {data} could not be read as questions and were left out "
              f"(first: row {twin.skipped[0]['row']}: {twin.skipped[0]['reason']}); all of them are listed in "
              f"{home / SKIPPED}", file=sys.stderr)
    return home / "mmad.json"


def _convert(data: str, table: Any, mapping: dict[str, str], source_root: Path, home: Path, source: str) -> _Twin:
    """Write the twin of ``table`` into ``home`` (built beside it, then put in place whole)."""
    with staged(home) as tmp:
        twin = _Twin(tmp, source_root)
        for n, row in enumerate(_rows(table)):
            try:
                _add_row(twin, row, mapping)
            except _RowError as exc:
                twin.skipped.append({"row": str(n), "reason": str(exc)})
        if not twin.records:
            why = twin.skipped[0]["reason"] if twin.skipped else "the table is empty"
            raise InputError(f"--data {data}: no row could be read as a question (row 0: {why})")
        (tmp / "mmad.json").write_text(json.dumps(twin.records, indent=1, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
        (tmp / SKIPPED).write_text(json.dumps(twin.skipped, indent=1) + "\n", encoding="utf-8")
        (tmp / READY).write_text(json.dumps({"source": data, "mapping": mapping, "made_from": source,
                                             "rows": len(table), "records": len(twin.records),
                                             "skipped_rows": len(twin.skipped)}, indent=1) + "\n", encoding="utf-8")
    return twin
