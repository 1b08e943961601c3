"""Where the bundled synthetic benchmark lives once built (on first use): a folder in mmeval's home.

``--data synthetic`` is the demo scale; ``--data synthetic:SCALE`` picks another (``synthetic:standard``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from mmeval.data.synthetic.scales import DEFAULT_SCALE, SCALES
from mmeval.errors import InputError
from mmeval.home import mmeval_home

SYNTHETIC_SEED = 0
SPEC = "synthetic"


def synthetic_scale(spec: str) -> str | None:
    """The scale a ``--data`` value asks for (``synthetic`` -> the default), or None when it names a path."""
    if spec == SPEC:
        return DEFAULT_SCALE
    if not spec.startswith(SPEC + ":"):
        return None
    scale = spec.split(":", 1)[1]
    if scale not in SCALES:
        raise InputError(f"--data {spec}: unknown scale '{scale}' (known: {', '.join(SCALES)})")
    return scale


def generator_version() -> str:
    """A digest of the generator's source: a changed generator builds a fresh benchmark, never reuses a stale one."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name != "cache.py":
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:10]


def synthetic_home(scale: str = DEFAULT_SCALE) -> Path:
    return mmeval_home() / f"synthetic-{generator_version()}-{scale}-seed{SYNTHETIC_SEED}"


def ensure_synthetic(scale: str = DEFAULT_SCALE) -> Path:
    """Build the benchmark into the cache if it is not there; return its mmad.json.

    Built in a temporary sibling folder and renamed into place, so an interrupted build never leaves a
    half-written benchmark behind.
    """
    home = synthetic_home(scale)
    json_path = home / "mmad.json"
    if json_path.is_file():
        return json_path
    from mmeval.data.synthetic.generator import build_synthetic

    home.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=home.name + ".", dir=home.parent))
    try:
        build_synthetic(tmp, seed=SYNTHETIC_SEED, scale=scale)
        try:
            os.replace(tmp, home)
        except OSError:  # another process built it first
            if not json_path.is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return json_path
