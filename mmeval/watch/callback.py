"""``MmevalCallback``: the benchmark evaluated inside a transformers ``Trainer``, at the start of training,
every ``every`` steps and at the end.

    from mmeval.watch.callback import MmevalCallback

    trainer = Trainer(model=model, args=args, train_dataset=ds, processing_class=processor)
    MmevalCallback(data="mmad", subset="subset.json", every=200, out="reports/curve").attach(trainer)
    trainer.train()

The model is evaluated where it is (no copy, no reload): switched to eval mode, asked under
``torch.no_grad`` and switched back to train mode. Each evaluation is an ordinary run directory
(``OUT/steps/step-NNNNNNN``) whose identity holds the step and a digest of the trainable weights, and the
curve files (curve.csv, curve.json, curve.svg, curve.html) are rewritten after each, as ``mmeval watch``
writes them. The numbers go through ``trainer.log()``, so every ``report_to`` backend (TensorBoard,
W&B, MLflow ...) receives ``mmad/<task>``, ``mmad/average`` and ``mmad/p_correct`` (TensorBoard and
W&B show them under ``train/``, as they show every logged number that is not an evaluation loss).

Under DDP (torchrun, accelerate) every process answers its share of the images and rank 0 merges them,
as a multi-process ``mmeval run`` does; every rank then logs the same numbers. Under FSDP or DeepSpeed
ZeRO-3 no process holds the whole model, so the callback refuses at the start of training: evaluate the
saved checkpoints with ``mmeval watch`` instead.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from mmeval import launch
from mmeval.config import RunConfig, Weights
from mmeval.errors import InputError
from mmeval.report.run_report import write_run_report
from mmeval.run.runner import adapter_settings, run
from mmeval.watch.book import CurveBook, step_dir
from mmeval.watch.curve import setup_digest
from mmeval.watch.plots import DEFAULT_REFERENCES
from mmeval.watch.sinks import metrics

REFUSAL = ("MmevalCallback needs the whole model in every process, which {what} does not give; save checkpoints "
           "(save_strategy='steps') and evaluate them as they appear with `mmeval watch OUTPUT_DIR --out DIR`")


def refuse_sharded(args: Any) -> None:
    """An InputError under FSDP or DeepSpeed ZeRO-3 (the model is split across processes)."""
    if getattr(args, "fsdp", None):
        raise InputError(REFUSAL.format(what="FSDP"))
    try:
        from transformers.integrations import is_deepspeed_zero3_enabled
    except ImportError:  # pragma: no cover - every transformers 5 release has it
        return
    if is_deepspeed_zero3_enabled():
        raise InputError(REFUSAL.format(what="DeepSpeed ZeRO-3"))


def parameters_digest(model: Any) -> str:
    """SHA-256 of the trainable parameters (all of them when none is trainable), names and bytes, in order."""
    import torch

    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad] or list(model.named_parameters())
    h = hashlib.sha256()
    for name, p in params:
        h.update(name.encode() + b"\0")
        h.update(p.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class MmevalCallback(TrainerCallback):
    """The benchmark during training (module docstring)."""

    def __init__(self, data: str = "synthetic", *, subset: str | Path | None = None, every: int = 500,
                 out: str | Path = "reports/curve", shots: int = 1, seed: int = 0, answer_mode: str = "likelihood",
                 processor: Any = None, model_args: dict[str, Any] | None = None, batch_size: int | None = None,
                 references: tuple[str, ...] = DEFAULT_REFERENCES) -> None:
        """``processor``: a processor (or the path to load one from) when the trainer's ``processing_class``
        is none or only a tokenizer; ``model_args``: options of the hf family (``mmeval models show hf``)."""
        if every < 1:
            raise InputError(f"MmevalCallback(every={every}): give a number of steps >= 1")
        self.data, self.subset, self.every, self.out = data, subset, every, Path(out)
        self.shots, self.seed, self.answer_mode, self.batch_size = shots, seed, answer_mode, batch_size
        self.processor, self.model_args, self.references = processor, dict(model_args or {}), references
        self.trainer: Any = None
        self.evaluated: set[int] = set()
        self._adapter: Any = None
        self._template: RunConfig | None = None
        self._book: CurveBook | None = None

    def attach(self, trainer: Any) -> MmevalCallback:
        """Give the callback its trainer (it logs through ``trainer.log``) and add it, unless already added."""
        self.trainer = trainer
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)
        return self

    # ------------------------------------------------------------------------------------------ events

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, processing_class: Any = None,
                       **kwargs: Any) -> None:
        refuse_sharded(args)
        if self.trainer is None:
            raise InputError("MmevalCallback logs through the trainer: add it with "
                             "MmevalCallback(...).attach(trainer) (after building the Trainer)")
        self.evaluate(model, processing_class, state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, processing_class: Any = None,
                    **kwargs: Any) -> None:
        last = state.max_steps > 0 and state.global_step >= state.max_steps
        if state.global_step % self.every == 0 or last:
            self.evaluate(model, processing_class, state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, processing_class: Any = None,
                     **kwargs: Any) -> None:
        """A training stopped early (``should_training_stop``) still gets its last step evaluated."""
        self.evaluate(model, processing_class, state.global_step)

    # ------------------------------------------------------------------------------------------ one evaluation

    def evaluate(self, model: Any, processing_class: Any, step: int) -> dict[str, float]:
        """Answer the benchmark with ``model`` as it is now; log and return the numbers (empty when done before)."""
        if step in self.evaluated or model is None:
            return {}
        self.evaluated.add(step)
        was_training = model.training
        model.eval()
        try:
            values = self._answer(model, processing_class, step)
        finally:
            model.train(was_training)
        values = _shared(values)
        if self.trainer is not None and values:
            self.trainer.log(dict(values))
        return values

    def _answer(self, model: Any, processing_class: Any, step: int) -> dict[str, float]:
        rank, _ = launch.rank_and_world()
        started = time.perf_counter()
        adapter = self._adapter_for(model, processing_class)
        digest = parameters_digest(model)
        config = self.template(model).model_copy(update={"weights": Weights(step=step, digest=digest)})
        out = step_dir(self.out, step)
        # a step directory left by an earlier training (other weights at the same step) is replaced
        result = run(config, out, progress=False, adapter=adapter, overwrite=True)
        if rank != 0:
            return {}
        if result.missing:
            raise RuntimeError(f"MmevalCallback: step {step}: {result.missing} question(s) got no answer "
                               f"(see {out / 'predictions.jsonl'})")
        write_run_report(out, preds=result.written)
        if not result.status.complete:  # a question the model could not be asked (an unreadable image ...)
            print(f"MmevalCallback: step {step}: {result.status.summary}; they count as wrong (see {out})",
                  file=sys.stderr)
        return metrics(self.book(model).done(step, f"step {step}", "in-process", digest, time.perf_counter() - started))

    def book(self, model: Any) -> CurveBook:
        if self._book is None:
            self._book = CurveBook(self.out, f"mmeval during training: {self.out.name}",
                                   setup_digest(self.template(model)), self.references)
        return self._book

    def template(self, model: Any) -> RunConfig:
        """The run config of every evaluation (the weights are filled in per step)."""
        if self._template is None:
            from mmeval.data.loading import stored_data
            from mmeval.data.subset import read_subset
            from mmeval.model_adapters import FAMILIES

            name = str(getattr(model.config, "_name_or_path", "") or type(model).__name__)
            hashed, runtime = FAMILIES["hf"].load().split_options(self.model_args)
            data, image_root = stored_data(str(self.data), None)
            sample = Path(self.subset).expanduser().resolve() if self.subset else None
            self._template = RunConfig(
                model=f"hf:{name}", model_args=hashed, runtime_args=runtime, answer_mode=self.answer_mode,
                data=data, image_root=image_root, shots=self.shots, seed=self.seed, batch_size=self.batch_size,
                subset=read_subset(sample).digest if sample else None, subset_path=str(sample) if sample else None)
        return self._template

    def _adapter_for(self, model: Any, processing_class: Any) -> Any:
        if self._adapter is None:
            from mmeval.model_adapters.hf.in_process import adapter_for_model

            self._adapter = adapter_for_model(model, self._processor(model, processing_class),
                                              name=f"in-process:{type(model).__name__}",
                                              options={**self.model_args},
                                              settings=adapter_settings(self.template(model)))
        return self._adapter

    def _processor(self, model: Any, processing_class: Any) -> Any:
        """The processor: given, the trainer's when it handles images, else loaded from the model's name."""
        given = self.processor
        if given is not None and not isinstance(given, (str, Path)):
            return given
        if given is None and processing_class is not None and hasattr(processing_class, "image_processor"):
            return processing_class
        from transformers import AutoProcessor

        where = str(given or getattr(model.config, "_name_or_path", ""))
        if not where:
            raise InputError("MmevalCallback: the trainer has no processor that handles images; pass "
                             "MmevalCallback(processor=PROCESSOR_OR_PATH)")
        proc = AutoProcessor.from_pretrained(where)
        if not getattr(proc, "chat_template", None):
            raise InputError(f"MmevalCallback: the processor from {where} has no chat template; pass a processor "
                             "that has one (processor=...)")
        return proc


def _shared(values: dict[str, float]) -> dict[str, float]:
    """Rank 0's numbers on every rank of a torch.distributed group (as they are, without one)."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch comes with transformers' Trainer
        return values
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    box = [values]
    dist.broadcast_object_list(box, src=0)
    return box[0]
