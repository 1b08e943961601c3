"""The run directory: its file names, the guard against mixing two configs, and run.json."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from mmeval.config import RunConfig, RunRecord
from mmeval.errors import InputError

PREDICTIONS = "predictions.jsonl"
RUN_FILE = "run.json"
SKIPPED = "skipped.json"
TIMINGS = "timings.jsonl"
USAGE = "usage.jsonl"  # one line per process and session: adapter.run_info() (tokens, cost ...)


def check_run_dir(out: Path, config: RunConfig, overwrite: bool) -> None:
    """Refuse to mix predictions of two different configs in one directory."""
    run_file = out / RUN_FILE
    if run_file.exists():
        try:
            old_digest = json.loads(run_file.read_text(encoding="utf-8")).get("digest")
        except ValueError:
            old_digest = None
        if old_digest != config.digest():
            if not overwrite:
                raise InputError(
                    f"--out {out} holds a run with a different config (digest {old_digest} vs "
                    f"{config.digest()}); choose another --out, or pass --overwrite to discard it")
            for name in os.listdir(out):
                path = out / name
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def write_run_record(out: Path, record: RunRecord) -> None:
    record.write(out / RUN_FILE)


def write_skipped(out: Path, skipped: list[dict[str, str]]) -> None:
    (out / SKIPPED).write_text(json.dumps(skipped, indent=1), encoding="utf-8")
