"""Where a watch sends its numbers besides the curve files: ``--log-to tensorboard:DIR | wandb:PROJECT |
mlflow:URI``. Each library is imported only when asked for, with a message naming the extra to install.

The metric names are those the Trainer callback logs through ``trainer.log()``: ``mmad/<task>`` per task,
``mmad/average``, and ``mmad/p_correct`` (the mean probability of the correct option), so a watch and an
in-training evaluation land on the same charts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from mmeval.errors import InputError
from mmeval.watch.curve import AVERAGE, CurvePoint

PREFIX = "mmad/"


def metrics(points: Sequence[CurvePoint]) -> dict[str, float]:
    """The logged numbers of one step's points (NaN left out)."""
    out: dict[str, float] = {}
    for p in points:
        name = "average" if p.task == AVERAGE else p.task
        if not math.isnan(p.accuracy):
            out[PREFIX + name] = p.accuracy
        if p.task == AVERAGE and not math.isnan(p.p_correct):
            out[PREFIX + "p_correct"] = p.p_correct
    return out


class Sink(Protocol):
    def log(self, step: int, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def _need(module: str, extra: str, flag: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"--log-to {flag}: needs {module.split('.')[0]}: pip install 'mmeval[{extra}]'") from None


class TensorBoardSink:
    def __init__(self, target: str) -> None:
        self.writer = _need("torch.utils.tensorboard", "train", "tensorboard:DIR").SummaryWriter(log_dir=target)

    def log(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    def __init__(self, target: str) -> None:
        self.wandb = _need("wandb", "wandb", "wandb:PROJECT")
        self.run = self.wandb.init(project=target, job_type="mmeval-watch")

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowSink:
    def __init__(self, target: str) -> None:
        self.mlflow = _need("mlflow", "mlflow", "mlflow:URI")
        self.mlflow.set_tracking_uri(target)
        self.run = self.mlflow.start_run(run_name="mmeval-watch")

    def log(self, step: int, values: dict[str, float]) -> None:
        self.mlflow.log_metrics(values, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


KINDS: dict[str, type[TensorBoardSink] | type[WandbSink] | type[MlflowSink]] = {
    "tensorboard": TensorBoardSink, "wandb": WandbSink, "mlflow": MlflowSink}


def open_sink(spec: str) -> Sink:
    """The sink of one ``--log-to KIND:TARGET``."""
    kind, sep, target = spec.partition(":")
    if kind not in KINDS or not sep or not target:
        raise InputError(f"--log-to {spec}: give tensorboard:DIR, wandb:PROJECT or mlflow:URI")
    return KINDS[kind](target)
