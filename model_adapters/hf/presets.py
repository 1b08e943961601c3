"""Every preset table of the ``hf`` family: what differs between model families, and nothing else.

A preset pins the transformers class that loads the weights, a fallback chat template (used only when
the checkpoint ships none) and whether a prompt may be split for prefix reuse. Loading, prompting,
batching, prefix reuse and scoring are shared behaviour (the rest of this package); how an answer
follows the generation prompt is read from each checkpoint's own template (see ``prompts``).

- ``generic``: AutoModelForImageTextToText with the checkpoint's own processor and chat template;
- ``llava``: LLaVA-1.5 (LlavaForConditionalGeneration), Vicuna ``USER: ... ASSISTANT:`` turns;
- ``llava-next``: LLaVA-NeXT / 1.6 (LlavaNextForConditionalGeneration), anyres image tiles; its chat
  format depends on the language model (Mistral, Vicuna, Hermes), so it brings no fallback template;
- ``llava-onevision``: LLaVA-OneVision (LlavaOnevisionForConditionalGeneration), Qwen2 ChatML turns;
- ``paligemma``: PaliGemma, whose prompt attends to itself both ways (its processor marks the whole
  prompt as a prefix), so the part shared by an image's questions cannot be run apart from them: no
  prefix reuse. It ships no chat template: the processor's plain prompt format is used.

``auto`` picks the preset from the checkpoint's ``model_type``. Adding a family is a row here (and a
name in :data:`PresetName`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Preset:
    """What differs between model families; everything else is shared behaviour."""

    name: str
    summary: str = ""
    #: config.model_type values this preset applies to (``auto`` matches on them)
    model_types: tuple[str, ...] = ()
    #: transformers class that loads the weights; None: AutoModelForImageTextToText
    model_class: str | None = None
    #: used only when the checkpoint ships no chat template
    chat_template: str | None = None
    #: why the prompt cannot be split into a shared prefix and each question's own tokens (None: it can)
    no_prefix_reuse: str | None = None


GENERIC = Preset("generic", "AutoModelForImageTextToText with the checkpoint's own processor and chat template")

#: LLaVA-1.5 as the llava-hf checkpoints render it: every image first, then the texts
LLAVA15_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for item in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for item in message['content'] | selectattr('type', 'equalto', 'text') %}{{ item['text'] + ' ' }}{% endfor %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

#: LLaVA-OneVision (Qwen2 ChatML), images where they appear in the message
ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<image>\n' }}{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

LLAVA_PRESETS = (
    Preset("llava", "LLaVA-1.5", model_types=("llava",), model_class="LlavaForConditionalGeneration",
           chat_template=LLAVA15_CHAT_TEMPLATE),
    Preset("llava-next", "LLaVA-NeXT / LLaVA-1.6", model_types=("llava_next",),
           model_class="LlavaNextForConditionalGeneration"),
    Preset("llava-onevision", "LLaVA-OneVision", model_types=("llava_onevision",),
           model_class="LlavaOnevisionForConditionalGeneration", chat_template=ONEVISION_CHAT_TEMPLATE),
)

PALIGEMMA = Preset("paligemma", "PaliGemma (prompt attends both ways: no prefix reuse)", model_types=("paligemma",),
                   no_prefix_reuse="its prompt attends to itself both ways, so the shared part cannot run apart "
                                   "from the question")


PRESETS: dict[str, Preset] = {p.name: p for p in (GENERIC, *LLAVA_PRESETS, PALIGEMMA)}

PresetName = Literal["auto", "generic", "llava", "llava-next", "llava-onevision", "paligemma"]


def all_presets() -> dict[str, Preset]:
    return dict(PRESETS)
