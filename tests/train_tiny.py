"""A few steps of transformers' Trainer on a tiny checkpoint with ``MmevalCallback``: imported by the tests, and
run as a script under torchrun (``python -m torch.distributed.run --nproc-per-node 2 tests/train_tiny.py ...``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def rows(n: int = 16, length: int = 12) -> list[dict[str, Any]]:
    """Seeded text-only batches (the model is trained as a language model; images are not needed for that)."""
    import torch

    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        ids = torch.randint(10, 500, (length,), generator=g)
        out.append({"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones(length, dtype=torch.long)})
    return out


def train(base: Path, out: Path, *, lr: float, subset: Path | None, max_steps: int = 4, every: int = 2,
          report_to: tuple[str, ...] = ("tensorboard",), hooks: Any = None) -> Any:
    """Train ``max_steps`` steps with the callback every ``every`` steps; returns the trainer."""
    from transformers import AutoModelForImageTextToText, AutoProcessor, Trainer, TrainingArguments

    from mmeval.watch.callback import MmevalCallback

    model = AutoModelForImageTextToText.from_pretrained(base)
    if hooks is not None:
        hooks(model)
    args = TrainingArguments(output_dir=str(out / "trainer"), max_steps=max_steps, per_device_train_batch_size=2,
                             learning_rate=lr, report_to=list(report_to), logging_steps=1, save_strategy="no",
                             use_cpu=True, remove_unused_columns=False, seed=0, disable_tqdm=True)
    processor = AutoProcessor.from_pretrained(base)
    trainer = Trainer(model=model, args=args, train_dataset=rows(), processing_class=processor)
    MmevalCallback(data="synthetic", subset=subset, every=every, out=out / "curve",
                   model_args={"dtype": "fp32"}).attach(trainer)
    trainer.train()
    return trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--lr", type=float, default=0.0)
    ap.add_argument("--subset", type=Path)
    a = ap.parse_args()
    train(a.base, a.out, lr=a.lr, subset=a.subset, report_to=())


if __name__ == "__main__":
    main()
