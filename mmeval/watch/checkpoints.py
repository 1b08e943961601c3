"""A training run's checkpoint folder, read while the trainer writes it: which checkpoints there are, which are
finished, what each holds, and the digest of its weights.

The transformers Trainer writes ``OUTPUT_DIR/checkpoint-STEP/`` (newer releases first into
``tmp-checkpoint-STEP/``, renamed when complete), ending with ``trainer_state.json``; with
``save_total_limit`` it deletes old ones. A checkpoint is *ready* when ``trainer_state.json`` is there and
every file's size and modification time are the same at two polls in a row: a folder still being
written (or copied in by hand) is never read. ``tmp-checkpoint-*`` folders are never looked at.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mmeval.errors import InputError

TRAINER_STATE = "trainer_state.json"
ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
#: files whose bytes decide the answers: configs, adapter and model weights, LLaVA's projector file
_WEIGHT_FILES = ("adapter_config.json", "config.json", "adapter_model*.safetensors", "adapter_model*.bin",
                 "non_lora_trainables.bin", "model*.safetensors", "pytorch_model*.bin")
#: files a processor brings (any of them means the checkpoint carries its own)
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")

Kind = Literal["base", "adapter", "full"]


@dataclass(frozen=True)
class Checkpoint:
    """One saved step: where it is and what it holds."""

    step: int
    path: Path
    kind: Kind

    @property
    def name(self) -> str:
        return self.path.name if self.kind != "base" else "base"


def listing(ckpt_dir: Path) -> dict[int, Path]:
    """step -> folder of every ``checkpoint-STEP`` folder now in ``ckpt_dir`` (never ``tmp-checkpoint-*``)."""
    found: dict[int, Path] = {}
    try:
        entries = list(ckpt_dir.iterdir())
    except FileNotFoundError:
        return found
    for entry in entries:
        m = _CHECKPOINT.match(entry.name)
        if m and entry.is_dir():
            found[int(m.group(1))] = entry
    return dict(sorted(found.items()))


def kind_of(path: Path) -> Kind | None:
    """adapter (``adapter_config.json``), full (``config.json``), or None: neither (no model in it)."""
    if (path / ADAPTER_CONFIG).is_file():
        return "adapter"
    if (path / MODEL_CONFIG).is_file():
        return "full"
    return None


def _snapshot(path: Path) -> tuple[tuple[str, int, int], ...] | None:
    """(file, size, mtime) of every file under ``path``; None when the folder vanished meanwhile."""
    try:
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return tuple((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    except FileNotFoundError:
        return None


class Readiness:
    """Tells finished checkpoints from those being written, one poll at a time (module docstring)."""

    def __init__(self) -> None:
        self._last: dict[Path, tuple[tuple[str, int, int], ...]] = {}

    def ready(self, path: Path) -> bool:
        """Whether ``path`` holds its trainer state and has not changed since the previous poll."""
        if not (path / TRAINER_STATE).is_file():
            self._last.pop(path, None)
            return False
        snap = _snapshot(path)
        if snap is None:
            self._last.pop(path, None)
            return False
        previous = self._last.get(path)
        self._last[path] = snap
        return previous == snap


def is_final(path: Path) -> bool:
    """Whether the trainer state says this is the last step of the training (global_step = max_steps)."""
    try:
        state = json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(state, dict):
        return False
    step, last = state.get("global_step"), state.get("max_steps")
    return isinstance(step, int) and isinstance(last, int) and last > 0 and step >= last


def has_processor(path: Path) -> bool:
    """Whether the checkpoint carries its own processor (else it is taken from the base)."""
    return any((path / name).is_file() for name in _PROCESSOR_FILES)


def chat_template(path: Path) -> str | None:
    """The chat template a checkpoint folder carries (its own file, or its tokenizer's), None when it has none."""
    try:
        if (path / "chat_template.jinja").is_file():
            return (path / "chat_template.jinja").read_text(encoding="utf-8")
        for name in ("chat_template.json", "processor_config.json", "tokenizer_config.json"):
            if (path / name).is_file():
                found = json.loads((path / name).read_text(encoding="utf-8")).get("chat_template")
                if isinstance(found, str):
                    return found
    except (OSError, ValueError, AttributeError):
        return None
    return None


def weights_digest(path: Path) -> str:
    """SHA-256 over the names and bytes of the files that decide the answers (configs and weights, not the
    optimizer state), or over the hub id when ``path`` is not a local folder."""
    h = hashlib.sha256()
    if not path.is_dir():
        h.update(f"hub:{path}".encode())
        return h.hexdigest()
    files = sorted({p for pattern in _WEIGHT_FILES for p in path.glob(pattern) if p.is_file()})
    if not files:
        raise InputError(f"{path}: no weights found (looked for {', '.join(_WEIGHT_FILES)})")
    for file in files:
        h.update(file.name.encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def same_model(a: str, b: str) -> bool:
    """Whether two names of a base model (hub ids or paths) name the same one."""
    if a.rstrip("/") == b.rstrip("/"):
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()
