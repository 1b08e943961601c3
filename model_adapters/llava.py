"""LLaVA presets: ``--model llava:PATH_OR_HUB_ID`` (or ``--model hf:... --hf-preset llava...``).

Only what differs between the LLaVA generations lives here; loading, prompting, batching, prefix
reuse and scoring are the shared behaviour of :class:`model_adapters.hf.HFAdapter`.

- ``llava``: LLaVA-1.5 (LlavaForConditionalGeneration), Vicuna ``USER: ... ASSISTANT:`` turns;
- ``llava-next``: LLaVA-NeXT / 1.6 (LlavaNextForConditionalGeneration), anyres image tiles; its chat
  format depends on the language model (Mistral, Vicuna, Hermes), so it brings no fallback template;
- ``llava-onevision``: LLaVA-OneVision (LlavaOnevisionForConditionalGeneration), Qwen2 ChatML turns.

``auto`` picks the preset from the checkpoint's ``model_type``.
"""

from __future__ import annotations

from typing import ClassVar

from model_adapters.hf import HFAdapter, Preset

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


class LlavaAdapter(HFAdapter):
    """The hf adapter restricted to the LLaVA presets."""

    family: ClassVar[str] = "llava"
    preset_names: ClassVar[tuple[str, ...] | None] = tuple(p.name for p in LLAVA_PRESETS)
