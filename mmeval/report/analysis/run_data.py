"""A run directory's contents, read back: predictions, run.json, usage, skipped questions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval.errors import InputError
from mmeval.predictions import Prediction, read_predictions


@dataclass
class RunData:
    """A run directory's contents."""

    path: Path
    preds: list[Prediction]
    run: dict[str, Any] = field(default_factory=dict)
    usage: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Any] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        return self.run.get("config", {}) or {}

    @property
    def model(self) -> str:
        return str(self.config.get("model") or (self.preds[0].model if self.preds else "?"))

    @property
    def label(self) -> str:
        shots = self.config.get("shots")
        return f"{self.model} ({shots}-shot)" if shots is not None else self.model

    @property
    def title(self) -> str:
        cfg = self.config
        return f"{self.model} · {cfg.get('shots', '?')}-shot · seed {cfg.get('seed', '?')}"

    def image_root(self) -> Path | None:
        cfg = self.config
        if cfg.get("image_root"):
            return Path(cfg["image_root"])
        src = self.run.get("source")
        return Path(src).parent if src else None


def load_run(run_dir: Path) -> RunData:
    run_dir = Path(run_dir)
    pred_path = run_dir / "predictions.jsonl"
    if not pred_path.is_file():
        raise InputError(f"{run_dir}: no predictions.jsonl (is this a run directory?)")
    preds = read_predictions(pred_path)
    if not preds:
        raise InputError(f"{pred_path}: no predictions yet")

    def _json(name: str, default: Any) -> Any:
        path = run_dir / name
        if not path.is_file():
            return default
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise InputError(f"{path}: not valid JSON") from None

    usage = []
    if (run_dir / "usage.jsonl").is_file():
        for line in (run_dir / "usage.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                usage.append(json.loads(line))
            except ValueError:
                continue
    return RunData(run_dir, preds, _json("run.json", {}), usage, _json("skipped.json", []))
