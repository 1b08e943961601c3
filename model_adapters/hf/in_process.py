"""The ``hf`` adapter around a model already in memory: a transformers Trainer's, evaluated between steps.

The family normally loads its checkpoint itself; here the caller owns the model, so the adapter only
describes it (preset, device, dtype, tokenisation: :func:`.loading.describe`) and never releases it.
Model calls run under ``torch.no_grad`` rather than inference mode, whose tensors could not take part in
the training that goes on afterwards. A PEFT-wrapped model is unwrapped: its adapter layers live inside
the base model, which then runs with them.
"""

from __future__ import annotations

from typing import Any

from mmeval.model_adapters.base import AdapterSettings
from mmeval.model_adapters.hf.adapter import HFAdapter
from mmeval.model_adapters.hf.loading import Checkpoint, describe, pick_preset
from mmeval.model_adapters.hf.options import HFOptions
from mmeval.model_adapters.hf.processor import prompt_format


class InProcessAdapter(HFAdapter):
    """An :class:`HFAdapter` over a model the caller owns (see the module docstring)."""

    def grad_off(self) -> Any:
        import torch

        return torch.no_grad()

    def close(self) -> None:
        """The model stays the caller's; only the decoded images are let go."""
        self.runtime.images.clear()


def adapter_for_model(model: Any, processor: Any, *, name: str = "in-process", options: dict[str, Any] | None = None,
                      settings: AdapterSettings | None = None) -> InProcessAdapter:
    """An adapter answering with ``model`` (a transformers image-text-to-text model, or a PEFT model around one)."""
    if hasattr(model, "get_base_model"):  # a PeftModel: its layers are injected into the base model
        model = model.get_base_model()
    opts = HFOptions.model_validate(options or {})
    preset = pick_preset(Checkpoint("hf", name, opts), model.config)
    param = next(model.parameters())
    prompt = prompt_format(processor, preset.chat_template, preset.name)
    loaded = describe(model, processor, preset, param.device, param.dtype, model.config, prompt)
    return InProcessAdapter(name, opts, settings, loaded=loaded)
