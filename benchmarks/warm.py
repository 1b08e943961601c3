"""What every benchmark does first: byte-compile the package, as ``pip install .`` does.

An editable install (``make install``) compiles each module on its first import and keeps the bytecode
in ``__pycache__``, unless bytecode writing is off (``PYTHONDONTWRITEBYTECODE``, set on some machines),
in which case every process compiles all of mmeval again, a few hundred milliseconds a start. The figures
are for an installed tool, so the bytecode is written before anything is timed.
"""

from __future__ import annotations

import compileall
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("mmeval", "model_adapters", "tasks", "prompts")


def byte_compile() -> None:
    for name in PACKAGE_DIRS:
        if not compileall.compile_dir(ROOT / name, quiet=1):
            raise SystemExit(f"could not byte-compile {name}/")
