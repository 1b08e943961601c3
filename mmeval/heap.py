"""The cyclic garbage collector while a run builds its records.

A run builds its records in bursts: the benchmark's questions, then the prepared requests, later the
predictions the report reads. At MMAD's size that is over a million small objects, which live until the run
ends and hold no reference cycles. CPython's collector scans the objects it tracks again at every full
collection, and full collections come while such a burst grows the heap: at MMAD's size they took over a
second of a twelve-second run, and found nothing to free.

:func:`building` pauses the collector for a burst. Inside :func:`records_kept` it then freezes every object
alive (``gc.freeze``), so that later collections skip the records instead of scanning them once more;
everything made afterwards (a model's objects, a server's replies) is collected as usual. ``records_kept``
gives the frozen objects back to the collector when it ends (``gc.unfreeze``), and does nothing in a process
that froze objects itself: it never takes over freezing it did not start.

:func:`freeze_for_exit` spares the interpreter's full collections at exit, for the command-line entry point.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_keeping = False


@contextmanager
def records_kept() -> Iterator[None]:
    """Let :func:`building` freeze what it built, until the block ends (nested uses are the outer one's)."""
    global _keeping
    if _keeping or gc.get_freeze_count():
        yield
        return
    _keeping = True
    try:
        yield
    finally:
        _keeping = False
        gc.unfreeze()


@contextmanager
def building() -> Iterator[None]:
    """No collection while the block builds records; inside :func:`records_kept`, freeze them after it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if _keeping:
            gc.freeze()
        gc.enable()


def freeze_for_exit() -> None:
    """The process is ending: freeze every object, so that the interpreter's collections at exit skip them.

    At exit CPython runs full collections over every object still alive (openai's hundreds of pydantic
    models, pandas, a run's records) to free memory the operating system takes back anyway: 0.2 s after an
    MMAD-sized run or report and 0.4 s after a one-question API run, on 2 cores. Frozen objects in
    reference cycles are then not finalized; mmeval closes its own files, clients and locks before this,
    and ``atexit`` handlers (logging, thread pools, temporary directories) still run. Only the command-line
    entry point calls this: a process that calls ``main`` itself keeps its collector.
    """
    gc.freeze()
