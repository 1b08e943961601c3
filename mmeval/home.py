"""mmeval's home folder: where it keeps what it builds or caches for the user (benchmarks, API answers)."""

from __future__ import annotations

import os
from pathlib import Path


def mmeval_home() -> Path:
    """$MMEVAL_HOME, else ~/.cache/mmeval."""
    return Path(os.environ.get("MMEVAL_HOME") or Path.home() / ".cache" / "mmeval")
