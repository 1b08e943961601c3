"""The ``anomaly-ov`` family: Anomaly-OV (Xu et al., CVPR 2025), a LLaVA-OneVision with an anomaly expert.

``--model anomaly-ov:PATH_TO_CHECKPOINT -M repo=PATH_TO_CHECKOUT -M python=PATH_TO_ITS_ENV/bin/python``.
The model needs the authors' fork of LLaVA-NeXT (its package is called ``llava``) with its own pinned
transformers, so it runs in a worker (:mod:`mmeval.model_adapters.worker`) with the backend
:mod:`mmeval.model_adapters.worker.backends.anomaly_ov`. No fine-tuned checkpoint has been published: the
checkpoint is one trained with the authors' recipe (``model_type`` ``llava_qwen``); the expert's weights
(``pretrained_expert_7b.pth`` / ``pretrained_expert_05b.pth``) come with the checkout.

The whole message goes in, in order: normal templates, the query (and any reference image), each as one
``<image>`` of the ``qwen_1_5`` conversation. Both answer modes: generate (greedy) and likelihood (the
option letters' log-probabilities at the answer position). The expert's image score and the query's
27x27 map (crop 0: the whole image) are captured and kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from mmeval.errors import InputError
from mmeval.jsonsafe import parse_json
from mmeval.model_adapters.base import OPERATIONAL, AdapterError, AdapterSettings
from mmeval.model_adapters.worker.adapter import WorkerAdapter, WorkerOptions
from mmeval.model_adapters.worker.backends import BACKENDS
from mmeval.model_adapters.worker.client import WorkerSpec

REPO = "https://github.com/honda-research-institute/Anomaly-OneVision"
EXPERTS = {"7b": "pretrained_expert_7b.pth", "0.5b": "pretrained_expert_05b.pth"}


class AnomalyOVOptions(WorkerOptions):
    """Where Anomaly-OV's code and expert are, its size, and how it answers."""

    repo: str | None = Field(None, description="the Anomaly-OV checkout (honda-research-institute/Anomaly-OneVision): "
                                               "its llava package and expert weights; without it, the worker's Python "
                                               "must import llava and -M expert must be given")
    size: Literal["7b", "0.5b"] = Field("7b", description="the model size: picks the expert weights and, for 0.5b, "
                                                          "ties the output head to the embeddings (as the authors)")
    expert: str | None = Field(None, description="the expert's weights (default: REPO/pretrained_expert_7b.pth or "
                                                 "REPO/pretrained_expert_05b.pth by size)")
    max_new_tokens: int = Field(32, ge=1, description="generate mode: at most this many new tokens")
    max_side: int = Field(1024, ge=64, description="images are shrunk so their longest side is at most this "
                                                   "(the authors: 1024)")
    attn_implementation: Literal["sdpa", "flash_attention_2", "eager"] = Field(
        "sdpa", json_schema_extra=OPERATIONAL,
        description="attention kernel (the authors' default flash_attention_2 needs the flash-attn package)")
    device_map: str = Field("auto", json_schema_extra=OPERATIONAL,
                            description="where the weights go (load_pretrained_model's device_map)")


class AnomalyOVAdapter(WorkerAdapter):
    family: ClassVar[str] = "anomaly-ov"
    Options: ClassVar[type[BaseModel]] = AnomalyOVOptions
    answer_modes = ("generate", "likelihood")
    display_name = "Anomaly-OV"
    default_batch_size = 8

    def __init__(self, name: str, options: BaseModel | None = None, settings: AdapterSettings | None = None) -> None:
        super().__init__(name, options, settings)
        o: AnomalyOVOptions = self.options  # type: ignore[assignment]
        self.o = o
        self.checkpoint = Path(name).expanduser().resolve()
        self.repo = Path(o.repo).expanduser().resolve() if o.repo else None
        self.expert = self._check()

    def _check(self) -> Path:
        """Every file Anomaly-OV needs; all missing ones named at once, each with where it comes from."""
        o, problems = self.o, []
        config = self.checkpoint / "config.json"
        if not config.is_file():
            problems.append(f"the checkpoint: {self.checkpoint} has no config.json. No fine-tuned Anomaly-OV has been "
                            "published; train one with the authors' scripts/train/finetune_anomalyov_*.sh and give "
                            "its folder: --model anomaly-ov:PATH")
        else:
            try:
                read = parse_json(config.read_bytes(), str(config))
                model_type = read.get("model_type") if isinstance(read, dict) else "(unreadable config.json)"
            except InputError:
                model_type = "(unreadable config.json)"
            if model_type != "llava_qwen":
                problems.append(f"the checkpoint: {self.checkpoint} is a '{model_type}' model; an Anomaly-OV "
                                "checkpoint is 'llava_qwen' (the authors' LLaVA-NeXT layout). transformers' own "
                                "LLaVA-OneVision checkpoints cannot carry the anomaly expert: use hf: for those")
        if self.repo is not None and not (self.repo / "llava" / "model" / "anomaly_expert.py").is_file():
            problems.append(f"the Anomaly-OV checkout: {self.repo} has no llava/model/anomaly_expert.py "
                            f"(git clone {REPO} and give its folder: -M repo=PATH)")
        if o.expert:
            expert = Path(o.expert).expanduser().resolve()
        elif self.repo is not None:
            expert = self.repo / EXPERTS[o.size]
        else:
            expert = Path(EXPERTS[o.size])
            problems.append(f"the expert's weights: give the checkout with -M repo=PATH (it holds {EXPERTS[o.size]}) "
                            "or the file with -M expert=PATH")
        if (o.expert or self.repo is not None) and not expert.is_file():
            problems.append(f"the expert's weights for size {o.size}: {expert} not found ({EXPERTS[o.size]} ships in "
                            f"the root of {REPO}; -M expert=PATH)")
        if not self.opts.python:
            problems.append("the environment: give Anomaly-OV's Python with -M python=PATH_TO_ENV/bin/python (an "
                            "environment where the checkout is installed: pip install -e \".[train]\", Python 3.10)")
        if problems:
            raise AdapterError("Anomaly-OV cannot start; missing:\n  - " + "\n  - ".join(problems)
                               + "\nSteps: the README's 'Anomaly-OV' section.")
        return expert

    def worker_spec(self) -> WorkerSpec:
        o = self.o
        options: dict[str, Any] = {"checkpoint": str(self.checkpoint), "expert": str(self.expert), "size": o.size,
                                   "repo": str(self.repo) if self.repo else None, "max_side": o.max_side,
                                   "attn_implementation": o.attn_implementation, "device_map": o.device_map}
        return WorkerSpec(python=self.require_python(), backend=str(BACKENDS / "anomaly_ov.py"), options=options,
                          cwd=str(self.repo) if self.repo else None, name=self.display_name,
                          log_path=self.log_path(), load_timeout=o.load_timeout,
                          setup_hint="\nSteps: the README's 'Anomaly-OV' section.")

    def settings_for_worker(self) -> dict[str, Any]:
        return {"max_new_tokens": self.o.max_new_tokens}
