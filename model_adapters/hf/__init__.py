"""Local image-text-to-text models through transformers (the ``hf`` and ``llava`` families).

The modules, in the order a question meets them: ``options`` (the family's ``--model-arg``s),
``presets`` (what differs between model families), ``loading`` (the checkpoint), ``processor`` (its
processor: prompt format, special tokens, image-only without torchvision), ``images``,
``template_clock`` (the fixed day chat templates see), ``prompts`` (chat template, shared prefix, option
tokens), ``prefix`` (prefix reuse), ``runtime`` (model calls), ``likelihood`` and ``generation`` (the two
answer modes), ``adapter`` (the family class composing them) and ``llava`` (the LLaVA family).
"""

from mmeval.model_adapters.hf.adapter import HFAdapter
from mmeval.model_adapters.hf.llava import LlavaAdapter
from mmeval.model_adapters.hf.options import HFOptions
from mmeval.model_adapters.hf.processor import image_only_processor_class

__all__ = ["HFAdapter", "HFOptions", "LlavaAdapter", "image_only_processor_class"]
