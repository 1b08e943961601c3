"""Model registry: the one place where a model family is added.

``--model`` takes either a plain name (``random``, ``expert`` ...) or ``family:target``
(``hf:PATH_OR_HUB_ID``, ``openai:gpt-4o``). Families are imported lazily, so listing models or
running a baseline never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmeval.model_adapters.base import AdapterError, AdapterSettings, ModelAdapter
from mmeval.registry import did_you_mean, load_class


@dataclass(frozen=True)
class Family:
    name: str
    target: str  # "module:Class"
    summary: str
    needs_target: bool  # True when --model must be "family:something"

    def load(self) -> type[ModelAdapter]:
        try:
            return load_class(self.target, ModelAdapter)
        except ImportError as exc:  # an optional dependency is missing
            raise AdapterError(
                f"model family '{self.name}' needs a package that is not installed ({exc.name or exc}); "
                "install mmeval with its extras: pip install 'mmeval[all]'"
            ) from exc


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("random", "mmeval.model_adapters.baselines:RandomAdapter", "seeded chance answers", False),
        Family("always-normal", "mmeval.model_adapters.baselines:AlwaysNormalAdapter",
               "answers 'no defect' to Anomaly Detection, the first option otherwise", False),
        Family("expert", "mmeval.model_adapters.expert:ExpertAdapter",
               "training-free few-shot patch-comparison anomaly detector (needs --shots >= 1)", False),
        Family("hf", "mmeval.model_adapters.hf.adapter:HFAdapter",
               "transformers image-text-to-text model: hf:PATH_OR_HUB_ID", True),
        Family("llava", "mmeval.model_adapters.hf.llava:LlavaAdapter",
               "LLaVA-1.5 / NeXT / OneVision via transformers: llava:PATH_OR_HUB_ID", True),
        Family("openai", "mmeval.model_adapters.openai_api:OpenAIAdapter",
               "OpenAI-compatible chat API (OpenAI, vLLM, SGLang ...): openai:MODEL_NAME", True),
        Family("worker", "mmeval.model_adapters.worker.adapter:GenericWorkerAdapter",
               "a model in its own Python environment, through a worker: worker:BACKEND_FILE_OR_MODULE", True),
        Family("anomalygpt", "mmeval.model_adapters.anomalygpt:AnomalyGPTAdapter",
               "AnomalyGPT from its checkout, in its own environment (-M python=...): anomalygpt:CHECKOUT", True),
        Family("anomaly-ov", "mmeval.model_adapters.anomaly_ov:AnomalyOVAdapter",
               "Anomaly-OV checkpoint with the authors' code, in its own environment: anomaly-ov:CHECKPOINT", True),
    ]
}


def get_family(name: str, spec: str | None = None) -> Family:
    """The family registered as ``name``; an unknown name is an AdapterError with a suggestion."""
    family = FAMILIES.get(name)
    if family is None:
        raise AdapterError(f"unknown model '{spec or name}'.{did_you_mean(name, FAMILIES)}")
    return family


def split_model(spec: str) -> tuple[Family, str]:
    """Resolve ``--model`` into its family and the family-specific target."""
    name, sep, target = spec.partition(":")
    family = get_family(name, spec)
    if family.needs_target and not target:
        raise AdapterError(f"model family '{name}' needs a target: --model {name}:NAME_OR_PATH")
    if not family.needs_target and sep:
        raise AdapterError(f"model '{name}' takes no ':target' (got '{spec}')")
    return family, target


def implied_options(spec: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options ``--model spec`` implies without their being given (see ``ModelAdapter.implied_options``)."""
    family, target = split_model(spec)
    return family.load().implied_options(target or spec, options)


def build_adapter(spec: str, options: dict[str, object] | None = None,
                  settings: AdapterSettings | None = None) -> ModelAdapter:
    """Build the adapter for ``--model spec`` with its family options (validated by pydantic)."""
    family, target = split_model(spec)
    cls = family.load()
    opts = cls.Options.model_validate(options or {})
    return cls(target or spec, opts, settings)
