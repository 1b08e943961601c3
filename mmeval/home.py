"""mmeval's home folder: where it keeps what it builds or caches for the user (benchmarks, API answers)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2


def mmeval_home() -> Path:
    """$MMEVAL_HOME, else ~/.cache/mmeval."""
    return Path(os.environ.get("MMEVAL_HOME") or Path.home() / ".cache" / "mmeval")


def template_cache() -> jinja2.BytecodeCache | None:
    """A cache of compiled jinja2 templates in the home folder (keyed by each template's text, so an edited
    template compiles afresh): compiling the report's templates costs more than rendering a small run's
    report. None when the folder cannot be written (then templates compile each time)."""
    import jinja2

    folder = mmeval_home() / "templates-compiled"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return None

    class QuietCache(jinja2.FileSystemBytecodeCache):
        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            try:
                super().dump_bytecode(bucket)
            except OSError:  # a full or read-only disk: the template was compiled, it is just not kept
                pass

    return QuietCache(str(folder))


@contextmanager
def staged(final: Path, label: str = "") -> Iterator[Path]:
    """A fresh folder beside ``final`` to build in. When the block ends normally it replaces ``final`` in one
    rename (a reader never sees half a build); when it raises, it is removed and ``final`` stays as it was."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{label}", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_write(path: Path) -> Iterator[IO[bytes]]:
    """A binary file to write ``path``'s new content to. It is a fresh temporary file beside ``path`` with a
    name no other writer uses; when the block ends normally it replaces ``path`` in one rename, when it
    raises it is removed. So several processes may write one cache entry at once: each writes its own
    file, the last rename wins, and a reader only ever sees a whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
