"""Rows of the reports' answer tables (wrong answers, regressions, fixes), with their image thumbnails."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from mmeval.home import mmeval_home
from mmeval.predictions import Prediction
from mmeval.report.analysis import PROBE
from mmeval.report.figures import thumbnail_b64

MAX_WRONG = 400
MAX_RESPONSE_CHARS = 2000
#: threads reading a page's thumbnails (at most one per CPU)
MAX_THUMBNAIL_THREADS = 8


@dataclass
class Thumbnails:
    """The images of every answer table of a page, each embedded once: image -> (css class, base64 or None)."""

    by_image: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def css_class(self, image: str, root: Path | None) -> str | None:
        """The css class showing the image (read once), None when it cannot be read."""
        if image not in self.by_image:
            self.fetch([(image, root)])
        cls, b64 = self.by_image[image]
        return cls if b64 else None

    def fetch(self, wanted: Sequence[tuple[str, Path | None]]) -> None:
        """Read the images not read yet, several at once (PIL decodes and scales without holding the GIL, and
        real inspection images take tens of milliseconds each); css classes follow the order of ``wanted``."""
        new = list(dict.fromkeys(image for image, _ in wanted if image not in self.by_image))
        where = {image: root for image, root in reversed(wanted)}  # an image's first root, as one by one
        paths = [image_path(where[image], image) for image in new]
        readable = [path for path in paths if path is not None]
        workers = min(len(readable), os.cpu_count() or 1, MAX_THUMBNAIL_THREADS)
        if workers > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="mmeval-thumb") as pool:
                made = dict(zip(readable, pool.map(thumbnail_b64, readable), strict=True))
        else:
            made = {path: thumbnail_b64(path) for path in readable}
        for image, path in zip(new, paths, strict=True):
            self.by_image[image] = (f"im{len(self.by_image)}", made[path] if path else None)

    def css(self) -> list[tuple[str, str]]:
        """(css class, base64 JPEG) of every image that could be read."""
        return [(cls, b64) for cls, b64 in self.by_image.values() if b64]


@dataclass(frozen=True)
class AnswerRow:
    """One answer as an answer table shows it."""

    id: str
    image: str
    thumb: str | None  # css class of the thumbnail
    dataset: str
    category: str
    task: str
    normal: bool
    question: str
    options: list[tuple[str, str]]
    answer: str
    answer_text: str
    choice: str | None
    choice_text: str
    response: str  # cut at MAX_RESPONSE_CHARS
    error: str | None
    variant: str
    extra: str = ""  # a label of the table's own (e.g. "regression")
    overlay: str | None = None  # css class of the expert's marked-up image the model saw (--boost agent)
    overlay_notation: str = ""


def image_path(root: Path | None, image: str) -> Path | None:
    """The file of ``image`` (a path relative to ``root``); None for anything that would leave ``root``.

    Predictions files are plain text a user can edit: an absolute path, ``..`` or a symbolic link out of the
    root never gets a file's content embedded in a report.
    """
    if root is None:
        return None
    path = Path(image)
    if path.is_absolute() or ".." in path.parts:
        return None
    real = (root / path).resolve()
    return real if real.is_relative_to(root.resolve()) else None


@dataclass(frozen=True)
class _Overlay:
    """The expert overlay a question showed the model (``--boost agent``): its image in the cache, its notation."""

    name: str
    folder: Path
    view: str


def _overlay(p: Prediction) -> _Overlay | None:
    note = (p.boost_notes or {}).get("agent")
    if not isinstance(note, dict) or not isinstance(note.get("overlay"), str):
        return None
    return _Overlay(Path(note["overlay"]).name, mmeval_home() / "boosts" / "overlays", str(note.get("view") or ""))


def answer_rows(preds: Iterable[Prediction], root: Path | None, thumbs: Thumbnails, limit: int,
                extra: str = "") -> list[AnswerRow]:
    """Rows of an answer table, at most ``limit``; ``thumbs`` collects the images across a page's tables."""
    shown = [(p, _overlay(p)) for p in islice(preds, max(0, limit))]
    wanted: list[tuple[str, Path | None]] = []
    for p, marked in shown:  # in the order the rows ask for them: css classes are numbered by first appearance
        wanted += [(marked.name, marked.folder), (p.image, root)] if marked else [(p.image, root)]
    thumbs.fetch(wanted)
    rows: list[AnswerRow] = []
    for p, marked in shown:
        response = p.response or ""
        overlay = thumbs.css_class(marked.name, marked.folder) if marked else None
        notation = marked.view if marked else ""
        rows.append(AnswerRow(
            id=p.id, image=p.image, thumb=thumbs.css_class(p.image, root), dataset=p.dataset, category=p.category,
            task=p.task, normal=p.is_normal, question=p.question, options=list(p.options.items()), answer=p.answer,
            answer_text=p.options.get(p.answer, ""), choice=p.choice,
            choice_text=p.options.get(p.choice, "") if p.choice else "",
            response=response[:MAX_RESPONSE_CHARS] + (" …" if len(response) > MAX_RESPONSE_CHARS else ""),
            error=p.error, variant=p.variant or "", extra=extra, overlay=overlay, overlay_notation=notation))
    return rows


def wrong_answers(preds: Iterable[Prediction], limit: int = MAX_WRONG) -> tuple[list[Prediction], int]:
    """The plain questions and probes answered wrong (or invalid), in file order; and how many in all."""
    wrong = [p for p in preds if (p.variant is None or p.variant == PROBE) and not p.correct]
    return wrong[:limit], len(wrong)


def row_tasks(rows: Iterable[AnswerRow]) -> list[str]:
    """The tasks of a table's rows, in order of first appearance (the table's task filter)."""
    return list(dict.fromkeys(r.task for r in rows))
