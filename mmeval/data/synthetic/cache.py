"""Where the bundled synthetic benchmark lives once built (on first use): a folder in mmeval's home."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from mmeval.home import mmeval_home

SYNTHETIC_SEED = 0


def generator_version() -> str:
    """A digest of the generator's source: a changed generator builds a fresh benchmark, never reuses a stale one."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name != "cache.py":
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:10]


def synthetic_home() -> Path:
    return mmeval_home() / f"synthetic-{generator_version()}-seed{SYNTHETIC_SEED}"


def ensure_synthetic() -> Path:
    """Build the benchmark into the cache if it is not there; return its mmad.json.

    Built in a temporary sibling folder and renamed into place, so an interrupted build never leaves a
    half-written benchmark behind.
    """
    home = synthetic_home()
    json_path = home / "mmad.json"
    if json_path.is_file():
        return json_path
    from mmeval.data.synthetic.generator import build_synthetic

    home.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=home.name + ".", dir=home.parent))
    try:
        build_synthetic(tmp, seed=SYNTHETIC_SEED)
        try:
            os.replace(tmp, home)
        except OSError:  # another process built it first
            if not json_path.is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return json_path
