"""Exclusive locks on files, so that one process at a time writes a folder (a run directory, a fetched
benchmark, a converted table).

A lock is ``fcntl.flock`` on a file beside (or in) what it guards, held until released or until its
process ends, so a crash never leaves it stuck. The file holds a line naming the holder (pid, host,
start time, command), so that whoever is refused, or waits, can say who is in the way.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO


class FileLock:
    """An exclusive lock on ``path`` (created when missing): taken at once or refused, or waited for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def try_acquire(self) -> str | None:
        """Take the lock if it is free: None when taken, else the holder's line ("another process" if unsaid)."""
        return self._take(wait=None)

    def acquire(self, on_wait: Callable[[str], None] | None = None) -> FileLock:
        """Take the lock, waiting as long as another process holds it; ``on_wait`` hears the holder's line once,
        before the wait begins (say why nothing seems to happen)."""
        self._take(wait=on_wait or (lambda _holder: None))
        return self

    def _take(self, wait: Callable[[str], None] | None) -> str | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fh = open(self.path, "a+", encoding="utf-8")
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                if wait is None:
                    fh.close()
                    return holder
                wait(holder)
                wait = _silent  # said once
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            if _same_file(fh, self.path):
                break
            fh.close()  # the holder removed the file as it let go: lock the one there now
        fh.seek(0)
        fh.truncate()
        fh.write(f"mmeval pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                 f"{' '.join(sys.argv)[:300]}")
        fh.flush()
        self._fh = fh
        return None

    def release(self, *, remove: bool = False) -> None:
        """Let go; ``remove`` deletes the file first (while still held, so nobody locks a file about to vanish)."""
        fh = self._fh
        if fh is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()
        self._fh = None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _silent(_holder: str) -> None:
    return None


def _same_file(fh: IO[str], path: Path) -> bool:
    """Whether the open file is still the one at ``path`` (not removed, or replaced, meanwhile)."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fh.fileno())
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def folder_lock(folder: Path) -> FileLock:
    """The lock guarding ``folder`` while it is built and put in place: ``.NAME.lock`` beside it (not inside:
    the folder is replaced whole)."""
    return FileLock(folder.parent / f".{folder.name}.lock")
