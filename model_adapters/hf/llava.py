"""The LLaVA family: ``--model llava:PATH_OR_HUB_ID`` (or ``--model hf:... -M preset=llava...``).

The ``hf`` adapter restricted to the LLaVA presets (see :mod:`mmeval.model_adapters.hf.presets`):
loading, prompting, batching, prefix reuse and scoring are the shared behaviour of the ``hf`` family.
"""

from __future__ import annotations

from typing import ClassVar

from mmeval.model_adapters.hf.adapter import HFAdapter
from mmeval.model_adapters.hf.presets import LLAVA_PRESETS


class LlavaAdapter(HFAdapter):
    """The hf adapter restricted to the LLaVA presets."""

    family: ClassVar[str] = "llava"
    preset_names: ClassVar[tuple[str, ...] | None] = tuple(p.name for p in LLAVA_PRESETS)
