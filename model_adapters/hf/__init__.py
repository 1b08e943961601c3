"""Local image-text-to-text models through transformers (the ``hf`` and ``llava`` families)."""

from mmeval.model_adapters.hf.adapter import HFAdapter, HFOptions, image_only_processor_class
from mmeval.model_adapters.hf.llava import LlavaAdapter

__all__ = ["HFAdapter", "HFOptions", "LlavaAdapter", "image_only_processor_class"]
