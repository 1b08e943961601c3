"""Every preset table of the ``hf`` family: what differs between model families, and nothing else.

A preset pins the transformers class that loads the weights, a fallback chat template (used only when
the checkpoint ships none) and how an answer letter follows the generation prompt. Loading,
prompting, batching, prefix reuse and scoring are shared behaviour (the rest of this package).

- ``generic``: AutoModelForImageTextToText with the checkpoint's own processor and chat template;
- ``llava``: LLaVA-1.5 (LlavaForConditionalGeneration), Vicuna ``USER: ... ASSISTANT:`` turns;
- ``llava-next``: LLaVA-NeXT / 1.6 (LlavaNextForConditionalGeneration), anyres image tiles; its chat
  format depends on the language model (Mistral, Vicuna, Hermes), so it brings no fallback template;
- ``llava-onevision``: LLaVA-OneVision (LlavaOnevisionForConditionalGeneration), Qwen2 ChatML turns.

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
    #: text between the generation prompt and the answer letter; None: a space unless the prompt
    #: already ends with whitespace
    answer_prefix: str | None = None


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
           chat_template=LLAVA15_CHAT_TEMPLATE, answer_prefix=" "),
    Preset("llava-next", "LLaVA-NeXT / LLaVA-1.6", model_types=("llava_next",),
           model_class="LlavaNextForConditionalGeneration"),
    Preset("llava-onevision", "LLaVA-OneVision", model_types=("llava_onevision",),
           model_class="LlavaOnevisionForConditionalGeneration", chat_template=ONEVISION_CHAT_TEMPLATE,
           answer_prefix=""),
)


PRESETS: dict[str, Preset] = {p.name: p for p in (GENERIC, *LLAVA_PRESETS)}

PresetName = Literal["auto", "generic", "llava", "llava-next", "llava-onevision"]


def all_presets() -> dict[str, Preset]:
    return dict(PRESETS)
