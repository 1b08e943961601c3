"""Tiny randomly initialised image-text-to-text checkpoints of every architecture the ``hf`` family supports,
built offline and saved like hub checkpoints.

Used by tests/test_hf_adapter.py, tests/test_hf_architectures.py (session fixtures) and
benchmarks/local_throughput.py (a larger LLaVA). Every piece a real checkpoint ships is here: a byte-level
BPE tokenizer trained with the ``tokenizers`` library that carries the family's real special tokens (and
adds a BOS where the real one does), an image processor and a processor built from parameters, the chat
template in the family's published format, and random weights; the adapter loads them through
``from_pretrained`` exactly like a hub checkpoint.

The chat templates are written here from the formats the model cards publish (the turn markers, the
default system prompt, where the BOS sits, how an image is written and what the generation prompt and an
answer look like). Each handles an assistant turn, because the adapter reads the separator between the
generation prompt and an answer from the template.

Processors of video-capable models want a video processor, which transformers builds only with
torchvision; the builders use :func:`mmeval.model_adapters.hf.image_only_processor_class` instead. Mistral 3
and Llama 4 have no way round it (their image processing itself needs torchvision): they are built only
where torchvision is installed (``TORCHVISION_KINDS``).

Built checkpoints are cached on disk (:func:`cached`) under a key made of this file's source, the
transformers and torch versions, so a test session builds each architecture at most once and later
sessions not at all.

Run as a script to build one: ``python tests/tiny_models.py llava OUT_DIR [--hidden 256 --layers 4]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval.model_adapters.hf.presets import LLAVA15_CHAT_TEMPLATE, ONEVISION_CHAT_TEMPLATE

# enough text that the BPE learns the words of the MMAD prompts (merges make the tokenisation realistic)
_CORPUS = [
    "You are inspecting manufactured products for quality control. Look at the query image and decide whether "
    "the product in it has any defect, then answer the question about it.",
    "Reply with the letter of the correct option only.",
    "The first image is a defect-free sample of this product; compare the query image with it.",
    "The first 2 images are defect-free samples of this product; compare the query image with them.",
    "The last image is the query image. This is the query image.",
    "Question: Is there any defect in the object? What is the type of the defect? Where is the defect?",
    "A. Yes. B. No. C. Scratch. D. Crack. E. Contamination. Answer: A B C D E",
    "Top left. Top right. Center. Bottom left. Bottom right. Broken large. Color fading.",
    "What kind of product is in the image? Bottle. Cable. Capsule. Hazelnut. Zipper. Screw. Metal nut.",
    "USER: ASSISTANT: User: Assistant: user assistant system model",
]


@dataclass(frozen=True)
class TokenizerSpec:
    """The special tokens of a family's tokenizer and whether it adds a BOS (as the real one does)."""

    specials: tuple[str, ...]
    bos: str | None
    eos: str
    pad: str
    add_bos: bool
    #: named special tokens the processor reads off the tokenizer (``image_token`` ...)
    named: dict[str, str] = field(default_factory=dict)
    #: tokens added as plain (not special) tokens, as Qwen3's ``<think>``
    plain: tuple[str, ...] = ()
    #: the regex that splits text into words before the byte-level BPE (None: GPT-2's); tiktoken-style
    #: tokenizers (Mistral's Tekken, Llama 4's) split with their own, one digit or letter run at a time
    split: str | None = None


def build_tokenizer(spec: TokenizerSpec | None = None, vocab_size: int = 600) -> Any:
    """A byte-level BPE (every byte encodable) trained on the MMAD words, with the family's special tokens
    (LLaVA-1.5's Llama 2 ones by default)."""
    spec = spec or _LLAMA2
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(dict.fromkeys(["<unk>", *spec.specials, *([spec.bos] if spec.bos else []), spec.eos, spec.pad,
                                   *spec.named.values()]))
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    if spec.split is None:
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tk.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(spec.split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(_CORPUS * 10, trainer)
    if spec.add_bos and spec.bos:
        bos = tk.token_to_id(spec.bos)
        tk.post_processor = processors.TemplateProcessing(single=f"{spec.bos} $A", pair=f"{spec.bos} $A {spec.bos} $B",
                                                          special_tokens=[(spec.bos, bos)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token=spec.bos, eos_token=spec.eos,
                                  pad_token=spec.pad, extra_special_tokens=dict(spec.named))
    if spec.plain:
        tok.add_tokens(list(spec.plain))
    return tok


# ------------------------------------------------------------------------------------------ chat templates
# Written from the published formats. Each renders text and image items in reading order (LLaVA-1.5 and
# LLaVA-NeXT render the images first, as their hub templates do) and an assistant turn the way the model
# was trained to answer.

#: Mistral instruct (LLaVA-NeXT's Mistral checkpoints): ``[INST] ... [/INST]``, the answer after a space
MISTRAL_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for item in message['content'] | selectattr('type', 'equalto', 'text') %}{{ item['text'] }}{% endfor %}"
    "{% endif %}{{ ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{{ item['text'] }}{% endfor %}{% endif %}{{ '</s>' }}"
    "{% endif %}{% endfor %}"
)

_CHATML_CONTENT = (
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ IMAGE }}{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
)


def _chatml(image: str, system: str | None = None, generation: str = "<|im_start|>assistant\n") -> str:
    """A ChatML template (Qwen, InternVL): ``<|im_start|>role\\n ... <|im_end|>``, an optional default system turn."""
    default_system = ("{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n" + system
                      + "<|im_end|>\n' }}{% endif %}") if system else ""
    return (
        default_system
        + "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
        + _CHATML_CONTENT.replace("IMAGE", repr(image))
        + "{{ '<|im_end|>\n' }}{% endfor %}"
        + "{% if add_generation_prompt %}{{ " + repr(generation) + " }}{% endif %}"
    )


#: Qwen2-VL and Qwen2.5-VL: a default system turn, each image wrapped in vision start/end markers
QWEN2VL_TEMPLATE = _chatml("<|vision_start|><|image_pad|><|vision_end|>", system="You are a helpful assistant.")
#: Qwen3-VL (Instruct): no default system turn
QWEN3VL_TEMPLATE = _chatml("<|vision_start|><|image_pad|><|vision_end|>")
#: Qwen3.5: thinking by default (the generation prompt opens a think block); ``enable_thinking=false`` closes
#: it empty; an answer in the history carries its (empty) think block
QWEN35_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{{ '<think>\n\n</think>\n\n' }}{% endif %}"
    + _CHATML_CONTENT.replace("IMAGE", repr("<|vision_start|><|image_pad|><|vision_end|>"))
    + "{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}"
    "{% else %}{{ '<think>\n' }}{% endif %}{% endif %}"
)
#: InternVL (the -hf checkpoints): ChatML, an image written as ``<IMG_CONTEXT>`` on its own line
INTERNVL_TEMPLATE = _chatml("<IMG_CONTEXT>\n")

#: Idefics3 (Llama 3): BOS in the template, ``User:`` / ``Assistant:`` turns closed by ``<end_of_utterance>``
_IDEFICS_TURNS = (
    "{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}{% else %}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<image>' }}{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<end_of_utterance>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
IDEFICS3_TEMPLATE = "{{ '<|begin_of_text|>' }}" + _IDEFICS_TURNS
#: SmolVLM: the same turns after ``<|im_start|>`` (its tokenizer's BOS, which it does not add itself)
SMOLVLM_TEMPLATE = "{{ '<|im_start|>' }}" + _IDEFICS_TURNS

#: Gemma 3: BOS, ``<start_of_turn>user`` / ``model``, a system prompt folded into the first user turn,
#: texts trimmed, an image written as ``<start_of_image>``
GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set first_prefix = messages[0]['content'][0]['text'] + '\n\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set first_prefix = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n' }}"
    "{% if loop.first %}{{ first_prefix }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<start_of_image>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


#: Llama's day in its system header: the caller's ``date_string``, else today as the template's clock gives it
#: (``strftime_now``), else a fixed day where the renderer has no clock (as the published Llama 3.x and 4 set it)
_LLAMA_DATE = (
    "{% if date_string is not defined %}"
    "{% if strftime_now is defined %}{% set date_string = strftime_now('%d %b %Y') %}"
    "{% else %}{% set date_string = '26 Jul 2024' %}{% endif %}{% endif %}"
)


def _header_turns(start: str, end: str, eot: str, system: str) -> str:
    """Llama 3 and 4 turns: BOS, ``{start}role{end}`` and two newlines, the content (an image as ``<|image|>``),
    ``eot``; the generation prompt is the assistant's header. ``system``: the system turn's text before the
    user's system message (a Jinja expression), written where ``write_system`` is set."""
    turn = "{{ " + repr(start) + " + message['role'] + " + repr(end + "\n\n") + " }}"
    return (
        "{{ bos_token }}" + _LLAMA_DATE +
        "{% if messages[0]['role'] == 'system' %}"
        "{% set system_text = messages[0]['content'] if messages[0]['content'] is string "
        "else messages[0]['content'][0]['text'] %}{% set turns = messages[1:] %}"
        "{% else %}{% set system_text = '' %}{% set turns = messages %}{% endif %}"
        "{% if write_system %}{{ " + repr(start + "system" + end + "\n\n") + " + " + system +
        " + system_text + " + repr(eot) + " }}{% endif %}"
        "{% for message in turns %}" + turn +
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for item in message['content'] %}"
        "{% if item['type'] == 'image' %}{{ '<|image|>' }}"
        "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
        "{% endfor %}{% endif %}{{ " + repr(eot) + " }}{% endfor %}"
        "{% if add_generation_prompt %}{{ " + repr(start + "assistant" + end + "\n\n") + " }}{% endif %}"
    )


#: Llama 3.2 Vision: header-delimited turns closed by ``<|eot_id|>``; a system turn that states the knowledge
#: cut-off and today's date, written (as the published template does) for a conversation that brings a system
#: message or has no image, so never for mmeval's prompts, which always show the query image
MLLAMA_TEMPLATE = (
    "{% set ns = namespace(images=false) %}"
    "{% for message in messages if message['content'] is not string %}"
    "{% for item in message['content'] if item['type'] == 'image' %}{% set ns.images = true %}{% endfor %}"
    "{% endfor %}"
    "{% set write_system = messages[0]['role'] == 'system' or not ns.images %}"
    + _header_turns("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                    "'Cutting Knowledge Date: December 2023\\nToday Date: ' + date_string + '\\n\\n'")
)
#: Llama 4: the same turns with its own markers, closed by ``<|eot|>``; like the published template it works out
#: the day (``date_string``) but writes a system turn only for a system message, and no date in it; the
#: processor expands each ``<|image|>`` into ``<|image_start|>`` ... ``<|patch|>`` ... ``<|image_end|>``
LLAMA4_TEMPLATE = (
    "{% set write_system = messages[0]['role'] == 'system' %}"
    + _header_turns("<|header_start|>", "<|header_end|>", "<|eot|>", "''")
)

#: Mistral Small 3.1 (Mistral 3): BOS, a system prompt in ``[SYSTEM_PROMPT]`` ... ``[/SYSTEM_PROMPT]``: the
#: conversation's own, else a default one that, as the published one does, states today's date as the template's
#: clock gives it (``strftime_now('%Y-%m-%d')``, our wording around it); user turns in ``[INST]`` ... ``[/INST]``
#: with ``[IMG]`` for an image; no generation prompt: the answer follows ``[/INST]`` directly and ends with the EOS
MISTRAL3_TEMPLATE = (
    "{% set today = strftime_now('%Y-%m-%d') %}"
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] if messages[0]['content'] is string "
    "else messages[0]['content'][0]['text'] %}{% set turns = messages[1:] %}"
    "{% else %}{% set system = 'You are a helpful assistant that answers about images precisely. What you know "
    "ends in October 2023; today is ' + today + '.' %}"
    "{% set turns = messages %}{% endif %}"
    "{{ '[SYSTEM_PROMPT]' + system + '[/SYSTEM_PROMPT]' }}"
    "{% for message in turns %}"
    "{% set content = message['content'] %}"
    "{% if message['role'] == 'user' %}{{ '[INST]' }}"
    "{% if content is string %}{{ content }}{% else %}{% for item in content %}"
    "{% if item['type'] == 'image' %}{{ '[IMG]' }}{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '[/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% if content is string %}{{ content }}{% else %}{% for item in content %}{{ item['text'] }}{% endfor %}"
    "{% endif %}{{ eos_token }}"
    "{% endif %}{% endfor %}"
)

#: Aya Vision (Command R tokens): BOS, ``<|START_OF_TURN_TOKEN|><|USER_TOKEN|>`` ... ``<|END_OF_TURN_TOKEN|>``
AYA_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}{{ '<|START_OF_TURN_TOKEN|>' }}"
    "{% if message['role'] == 'user' %}{{ '<|USER_TOKEN|>' }}{% elif message['role'] == 'system' %}"
    "{{ '<|SYSTEM_TOKEN|>' }}{% else %}{{ '<|CHATBOT_TOKEN|>' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<image>' }}{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|END_OF_TURN_TOKEN|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' }}{% endif %}"
)


# ------------------------------------------------------------------------------------------ tokenizers

_LLAMA2 = TokenizerSpec(("<image>",), bos="<s>", eos="</s>", pad="<pad>", add_bos=True,
                        named={"image_token": "<image>", "video_token": "<video>"})
_QWEN = TokenizerSpec(("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"),
                      bos=None, eos="<|im_end|>", pad="<|endoftext|>", add_bos=False,
                      named={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})
_QWEN35 = TokenizerSpec(_QWEN.specials, bos=None, eos="<|im_end|>", pad="<|endoftext|>", add_bos=False,
                        named=_QWEN.named, plain=("<think>", "</think>"))
_ONEVISION = TokenizerSpec(("<|endoftext|>", "<|im_start|>", "<|im_end|>"), bos=None, eos="<|im_end|>",
                           pad="<|endoftext|>", add_bos=False,
                           named={"image_token": "<image>", "video_token": "<video>"})
_LLAMA3_ROWS = tuple(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7))
_IDEFICS3 = TokenizerSpec(("<|begin_of_text|>", "<|end_of_text|>", "<end_of_utterance>", "<fake_token_around_image>",
                           "<image>", "<global-img>", *_LLAMA3_ROWS),
                          bos="<|begin_of_text|>", eos="<|end_of_text|>", pad="<|reserved_special_token_0|>",
                          add_bos=True)
_SMOLVLM = TokenizerSpec(("<|im_start|>", "<|im_end|>", "<end_of_utterance>", "<fake_token_around_image>",
                          "<global-img>", *_LLAMA3_ROWS),
                         bos="<|im_start|>", eos="<end_of_utterance>", pad="<|im_end|>", add_bos=False,
                         named={"image_token": "<image>", "video_token": "<video>",
                                "fake_image_token": "<fake_token_around_image>", "global_image_token": "<global-img>",
                                "end_of_utterance_token": "<end_of_utterance>"})
_GEMMA = TokenizerSpec(("<start_of_turn>", "<end_of_turn>"), bos="<bos>", eos="<eos>", pad="<pad>", add_bos=True,
                       named={"image_token": "<image_soft_token>", "boi_token": "<start_of_image>",
                              "eoi_token": "<end_of_image>"})
_MLLAMA = TokenizerSpec(("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|image|>"),
                        bos="<|begin_of_text|>", eos="<|eot_id|>", pad="<|finetune_right_pad_id|>", add_bos=True)
_INTERNVL = TokenizerSpec(("<|endoftext|>", "<|im_start|>", "<|im_end|>"), bos=None, eos="<|im_end|>",
                          pad="<|endoftext|>", add_bos=False,
                          named={"start_image_token": "<img>", "end_image_token": "</img>",
                                 "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"})
_AYA = TokenizerSpec(("<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>",
                      "<|SYSTEM_TOKEN|>", "<image>", "<|START_OF_IMG|>", "<|END_OF_IMG|>", "<|IMG_PATCH|>",
                      "<|IMG_LINE_BREAK|>"),
                     bos="<BOS_TOKEN>", eos="<|END_OF_TURN_TOKEN|>", pad="<PAD>", add_bos=True)
_PALIGEMMA = TokenizerSpec((), bos="<bos>", eos="<eos>", pad="<pad>", add_bos=True, named={"image_token": "<image>"})
#: the word split of tiktoken-style tokenizers (Tekken, Llama 4): letter runs with one leading non-letter, single
#: digits, punctuation runs, newline runs, other whitespace
_TIKTOKEN_SPLIT = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
                   r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
                   r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
#: Mistral 3's Tekken tokenizer as transformers converts it: control tokens in brackets, a BOS it adds itself
_MISTRAL3 = TokenizerSpec(("[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[IMG]", "[IMG_BREAK]",
                           "[IMG_END]"),
                          bos="<s>", eos="</s>", pad="<pad>", add_bos=True, split=_TIKTOKEN_SPLIT)
_LLAMA4 = TokenizerSpec(("<|header_start|>", "<|header_end|>", "<|eot|>", "<|end_of_text|>", "<|image_start|>",
                         "<|image_end|>", "<|image|>", "<|patch|>", "<|tile_x_separator|>", "<|tile_y_separator|>"),
                        bos="<|begin_of_text|>", eos="<|eot|>", pad="<|finetune_right_pad|>", add_bos=True,
                        split=_TIKTOKEN_SPLIT)


# ------------------------------------------------------------------------------------------ builders


@dataclass(frozen=True)
class Size:
    """How big a tiny model is (the benchmark makes a larger LLaVA)."""

    hidden: int = 32
    layers: int = 2
    heads: int = 2
    vision_hidden: int = 32
    vision_layers: int = 2
    image_size: int = 32
    patch: int = 8


def _llama_text(tok: Any, s: Size, cls_name: str = "LlamaConfig", **extra: Any) -> Any:
    import transformers

    cls = getattr(transformers, cls_name)
    return cls(vocab_size=len(tok), hidden_size=s.hidden, intermediate_size=s.hidden * 2, num_hidden_layers=s.layers,
               num_attention_heads=s.heads, num_key_value_heads=s.heads, max_position_embeddings=4096,
               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
               tie_word_embeddings=False, **extra)


def _vision(s: Size, **extra: Any) -> dict[str, Any]:
    return dict(hidden_size=s.vision_hidden, intermediate_size=s.vision_hidden * 2, num_hidden_layers=s.vision_layers,
                num_attention_heads=2, image_size=s.image_size, patch_size=s.patch, **extra)


def _pins(s: Size) -> list[list[int]]:
    return [[s.image_size, s.image_size], [s.image_size, 2 * s.image_size], [2 * s.image_size, s.image_size]]


def _llava(s: Size) -> tuple[Any, Any]:
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = build_tokenizer(_LLAMA2)
    proc = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": s.image_size},
                                              crop_size={"height": s.image_size, "width": s.image_size}),
        tokenizer=tok, patch_size=s.patch, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=LLAVA15_CHAT_TEMPLATE)
    config = LlavaConfig(vision_config=CLIPVisionConfig(projection_dim=s.vision_hidden, **_vision(s)),
                         text_config=_llama_text(tok, s), image_token_index=tok.image_token_id,
                         image_seq_length=(s.image_size // s.patch) ** 2, vision_feature_layer=-1,
                         vision_feature_select_strategy="default")
    return proc, LlavaForConditionalGeneration(config)


def _llava_next(s: Size) -> tuple[Any, Any]:
    from transformers import CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    tok = build_tokenizer(_LLAMA2)
    proc = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessorPil(
            size={"shortest_edge": s.image_size}, crop_size={"height": s.image_size, "width": s.image_size},
            image_grid_pinpoints=_pins(s)),
        tokenizer=tok, patch_size=s.patch, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=MISTRAL_TEMPLATE)
    config = LlavaNextConfig(vision_config=CLIPVisionConfig(projection_dim=s.vision_hidden, **_vision(s)),
                             text_config=_llama_text(tok, s), image_token_index=tok.image_token_id,
                             image_seq_length=(s.image_size // s.patch) ** 2, vision_feature_layer=-1,
                             vision_feature_select_strategy="default", image_grid_pinpoints=_pins(s))
    return proc, LlavaNextForConditionalGeneration(config)


def _llava_onevision(s: Size) -> tuple[Any, Any]:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionProcessor,
        SiglipVisionConfig,
    )
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    from mmeval.model_adapters.hf import image_only_processor_class

    tok = build_tokenizer(_ONEVISION)
    proc = image_only_processor_class(LlavaOnevisionProcessor)(
        image_processor=LlavaOnevisionImageProcessorPil(size={"height": s.image_size, "width": s.image_size},
                                                        image_grid_pinpoints=_pins(s)),
        tokenizer=tok, num_image_tokens=(s.image_size // s.patch) ** 2, vision_feature_select_strategy="full",
        chat_template=ONEVISION_CHAT_TEMPLATE)
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(vision_use_head=False, **_vision(s)), text_config=_llama_text(tok, s,
                                                                                                      "Qwen2Config"),
        image_token_index=tok.image_token_id, video_token_index=tok.video_token_id, vision_feature_layer=-1,
        vision_feature_select_strategy="full", image_grid_pinpoints=_pins(s))
    return proc, LlavaOnevisionForConditionalGeneration(config)


def _qwen_image_processor(s: Size) -> Any:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(patch_size=s.patch, merge_size=2, temporal_patch_size=2,
                                    min_pixels=s.image_size * s.image_size, max_pixels=s.image_size * s.image_size)


def _mrope(head_dim: int) -> list[int]:
    """M-RoPE sections (temporal, height, width) over half a head's dimensions."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def _qwen_ids(tok: Any) -> dict[str, int]:
    return dict(image_token_id=tok.image_token_id, video_token_id=tok.video_token_id,
                vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
                vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"))


def _qwen_text(tok: Any, s: Size, **extra: Any) -> dict[str, Any]:
    text = _llama_text(tok, s, "Qwen2Config").to_dict()
    text.pop("model_type", None)
    return {**text, **extra}


def _qwen2_vl(s: Size, template: str = QWEN2VL_TEMPLATE, v25: bool = False) -> tuple[Any, Any]:
    import transformers

    from mmeval.model_adapters.hf import image_only_processor_class

    tok = build_tokenizer(_QWEN)
    name = "Qwen2_5_VL" if v25 else "Qwen2VL"
    proc = image_only_processor_class(getattr(transformers, f"{name}Processor"))(
        image_processor=_qwen_image_processor(s), tokenizer=tok, chat_template=template)
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope(s.hidden // s.heads)}
    vision: dict[str, Any] = {"depth": s.vision_layers, "num_heads": 2, "patch_size": s.patch, "spatial_merge_size": 2,
                              "temporal_patch_size": 2}
    if v25:
        vision.update(hidden_size=s.vision_hidden, intermediate_size=s.vision_hidden * 2, out_hidden_size=s.hidden,
                      window_size=s.patch * 4, fullatt_block_indexes=[s.vision_layers - 1])
    else:
        vision.update(embed_dim=s.vision_hidden, hidden_size=s.hidden, mlp_ratio=2)
    config = getattr(transformers, f"{name}Config")(text_config=_qwen_text(tok, s, rope_parameters=rope),
                                                     vision_config=vision, **_qwen_ids(tok))
    return proc, getattr(transformers, f"{name}ForConditionalGeneration")(config)


def _qwen2_5_vl(s: Size) -> tuple[Any, Any]:
    return _qwen2_vl(s, v25=True)


def _qwen3_vision(s: Size, **extra: Any) -> dict[str, Any]:
    return {"depth": s.vision_layers, "hidden_size": s.vision_hidden, "intermediate_size": s.vision_hidden * 2,
            "num_heads": 2, "patch_size": s.patch, "spatial_merge_size": 2, "temporal_patch_size": 2,
            "out_hidden_size": s.hidden, "num_position_embeddings": (s.image_size // s.patch) ** 2, **extra}


def _qwen3_vl(s: Size) -> tuple[Any, Any]:
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor

    from mmeval.model_adapters.hf import image_only_processor_class

    tok = build_tokenizer(_QWEN)
    proc = image_only_processor_class(Qwen3VLProcessor)(image_processor=_qwen_image_processor(s), tokenizer=tok,
                                                        chat_template=QWEN3VL_TEMPLATE)
    head = s.hidden // s.heads
    text = dict(vocab_size=len(tok), hidden_size=s.hidden, intermediate_size=s.hidden * 2, num_hidden_layers=s.layers,
                num_attention_heads=s.heads, num_key_value_heads=s.heads, head_dim=head,
                max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope(head),
                                 "mrope_interleaved": True})
    config = Qwen3VLConfig(text_config=text, vision_config=_qwen3_vision(s, deepstack_visual_indexes=[0]),
                           tie_word_embeddings=False, **_qwen_ids(tok))
    return proc, Qwen3VLForConditionalGeneration(config)


def _qwen3_5(s: Size) -> tuple[Any, Any]:
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration, Qwen3VLProcessor

    from mmeval.model_adapters.hf import image_only_processor_class

    tok = build_tokenizer(_QWEN35)
    proc = image_only_processor_class(Qwen3VLProcessor)(image_processor=_qwen_image_processor(s), tokenizer=tok,
                                                        chat_template=QWEN35_TEMPLATE)
    head = s.hidden // s.heads
    text = dict(vocab_size=len(tok), hidden_size=s.hidden, intermediate_size=s.hidden * 2, num_hidden_layers=2,
                num_attention_heads=s.heads, num_key_value_heads=s.heads, head_dim=head,
                max_position_embeddings=4096, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                layer_types=["linear_attention", "full_attention"], linear_conv_kernel_dim=4,
                linear_key_head_dim=8, linear_value_head_dim=8, linear_num_key_heads=2, linear_num_value_heads=2,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope(head),
                                 "mrope_interleaved": True, "partial_rotary_factor": 1.0})
    config = Qwen3_5Config(text_config=text, vision_config=_qwen3_vision(s), tie_word_embeddings=False,
                           **_qwen_ids(tok))
    return proc, Qwen3_5ForConditionalGeneration(config)


def _idefics(s: Size, smol: bool) -> tuple[Any, Any]:
    import transformers

    from mmeval.model_adapters.hf import image_only_processor_class

    name = "SmolVLM" if smol else "Idefics3"
    module = "smolvlm" if smol else "idefics3"
    image_cls = getattr(__import__(f"transformers.models.{module}.image_processing_pil_{module}",
                                   fromlist=["x"]), f"{name}ImageProcessorPil")
    tok = build_tokenizer(_SMOLVLM if smol else _IDEFICS3)
    scale = 2
    seq = (s.image_size // s.patch) ** 2 // scale ** 2
    image_processor = image_cls(size={"longest_edge": 2 * s.image_size}, max_image_size={"longest_edge": s.image_size})
    proc_cls = getattr(transformers, f"{name}Processor")
    proc = (image_only_processor_class(proc_cls) if smol else proc_cls)(
        image_processor=image_processor, tokenizer=tok, image_seq_len=seq,
        chat_template=SMOLVLM_TEMPLATE if smol else IDEFICS3_TEMPLATE)
    text = _llama_text(tok, s)
    config = getattr(transformers, f"{name}Config")(
        vision_config=dict(_vision(s)), text_config=text.to_dict(), scale_factor=scale,
        image_token_id=tok.convert_tokens_to_ids("<image>"), tie_word_embeddings=False)
    return proc, getattr(transformers, f"{name}ForConditionalGeneration")(config)


def _idefics3(s: Size) -> tuple[Any, Any]:
    return _idefics(s, smol=False)


def _smolvlm(s: Size) -> tuple[Any, Any]:
    return _idefics(s, smol=True)


def _gemma3(s: Size) -> tuple[Any, Any]:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor, SiglipVisionConfig
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    tok = build_tokenizer(_GEMMA)
    tokens = 4  # 2x2 pooled tokens per image
    proc = Gemma3Processor(image_processor=Gemma3ImageProcessorPil(size={"height": s.image_size,
                                                                         "width": s.image_size}),
                           tokenizer=tok, image_seq_length=tokens, chat_template=GEMMA3_TEMPLATE)
    # a sliding window shorter than a prompt, so that the window really cuts
    text = _llama_text(tok, s, "Gemma3TextConfig", sliding_window=16, head_dim=s.hidden // s.heads,
                       layer_types=["sliding_attention", "full_attention"])
    config = Gemma3Config(text_config=text.to_dict(), vision_config=SiglipVisionConfig(vision_use_head=False,
                                                                                      **_vision(s)).to_dict(),
                          mm_tokens_per_image=tokens, boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
                          eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"),
                          image_token_index=tok.image_token_id, tie_word_embeddings=False)
    return proc, Gemma3ForConditionalGeneration(config)


def _mllama(s: Size) -> tuple[Any, Any]:
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaProcessor
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    tok = build_tokenizer(_MLLAMA)
    proc = MllamaProcessor(image_processor=MllamaImageProcessorPil(size={"height": s.image_size,
                                                                         "width": s.image_size}, max_image_tiles=2),
                           tokenizer=tok, chat_template=MLLAMA_TEMPLATE)
    text = _llama_text(tok, s, "MllamaTextConfig", cross_attention_layers=[1]).to_dict()
    text["num_hidden_layers"] = 3  # self-attention, cross-attention, self-attention
    vision = dict(hidden_size=s.vision_hidden, intermediate_size=s.vision_hidden * 2, num_hidden_layers=2,
                  num_global_layers=1, attention_heads=2, image_size=s.image_size, patch_size=s.patch,
                  vision_output_dim=s.vision_hidden * 2, max_num_tiles=2, intermediate_layers_indices=[0],
                  supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]])
    config = MllamaConfig(vision_config=vision, text_config=text,
                          image_token_index=tok.convert_tokens_to_ids("<|image|>"))
    return proc, MllamaForConditionalGeneration(config)


def _got_ocr2_images(s: Size) -> Any:
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    return GotOcr2ImageProcessorPil(size={"height": s.image_size, "width": s.image_size}, crop_to_patches=True,
                                    min_patches=1, max_patches=4)


def _internvl(s: Size) -> tuple[Any, Any]:
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLProcessor

    from mmeval.model_adapters.hf import image_only_processor_class

    tok = build_tokenizer(_INTERNVL)
    seq = (s.image_size // s.patch) ** 2 // 4  # pixel shuffle halves each side
    proc = image_only_processor_class(InternVLProcessor)(image_processor=_got_ocr2_images(s), tokenizer=tok,
                                                         image_seq_length=seq, chat_template=INTERNVL_TEMPLATE)
    vision = dict(hidden_size=s.vision_hidden, intermediate_size=s.vision_hidden * 2, num_hidden_layers=s.vision_layers,
                  num_attention_heads=2, image_size=[s.image_size, s.image_size], patch_size=[s.patch, s.patch])
    config = InternVLConfig(vision_config=vision, text_config=_qwen_text(tok, s),
                            image_token_id=tok.context_image_token_id, image_seq_length=seq, downsample_ratio=0.5,
                            vision_feature_layer=-1, tie_word_embeddings=False)
    return proc, InternVLForConditionalGeneration(config)


def _aya_vision(s: Size) -> tuple[Any, Any]:
    from transformers import AyaVisionConfig, AyaVisionForConditionalGeneration, AyaVisionProcessor, SiglipVisionConfig

    tok = build_tokenizer(_AYA)
    proc = AyaVisionProcessor(image_processor=_got_ocr2_images(s), tokenizer=tok, patch_size=s.patch,
                              img_size=s.image_size, downsample_factor=2, chat_template=AYA_TEMPLATE)
    text = _llama_text(tok, s, "CohereConfig").to_dict()
    config = AyaVisionConfig(vision_config=SiglipVisionConfig(vision_use_head=False, **_vision(s)).to_dict(),
                             text_config=text, downsample_factor=2, vision_feature_layer=-1,
                             image_token_index=tok.convert_tokens_to_ids("<|IMG_PATCH|>"), tie_word_embeddings=False)
    return proc, AyaVisionForConditionalGeneration(config)


def _paligemma(s: Size) -> tuple[Any, Any]:
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor, SiglipVisionConfig
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    tok = build_tokenizer(_PALIGEMMA)
    images = SiglipImageProcessorPil(size={"height": s.image_size, "width": s.image_size})
    images.image_seq_length = (s.image_size // s.patch) ** 2
    proc = PaliGemmaProcessor(image_processor=images, tokenizer=tok)  # PaliGemma ships no chat template
    text = _llama_text(tok, s, "GemmaConfig", head_dim=s.hidden // s.heads).to_dict()
    config = PaliGemmaConfig(vision_config=SiglipVisionConfig(vision_use_head=False, projection_dim=s.hidden,
                                                              **_vision(s)).to_dict(),
                             text_config=text, image_token_index=tok.image_token_id, projection_dim=s.hidden,
                             hidden_size=s.hidden, vocab_size=len(tok), tie_word_embeddings=False)
    return proc, PaliGemmaForConditionalGeneration(config)


def _mistral3(s: Size) -> tuple[Any, Any]:
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration, PixtralProcessor
    from transformers.models.pixtral.image_processing_pixtral import PixtralImageProcessor

    tok = build_tokenizer(_MISTRAL3)
    merge = 2  # the patch grid is merged 2x2 before the language model, as in Mistral Small 3.1
    # images keep their shape (the longest edge at most twice the tile size here), in whole merged patches
    longest = 2 * s.image_size
    proc = PixtralProcessor(image_processor=PixtralImageProcessor(size={"longest_edge": longest},
                                                                  patch_size={"height": s.patch, "width": s.patch}),
                            tokenizer=tok, patch_size=s.patch, spatial_merge_size=merge,
                            chat_template=MISTRAL3_TEMPLATE)
    text = _llama_text(tok, s, "MistralConfig", head_dim=s.hidden // s.heads, sliding_window=None).to_dict()
    vision = dict(_vision(s), image_size=longest, head_dim=s.vision_hidden // 2)
    config = Mistral3Config(vision_config=vision, text_config=text, spatial_merge_size=merge,
                            image_token_index=tok.convert_tokens_to_ids("[IMG]"), vision_feature_layer=-1,
                            tie_word_embeddings=False)
    return proc, Mistral3ForConditionalGeneration(config)


def _llama4(s: Size) -> tuple[Any, Any]:
    from transformers import Llama4Config, Llama4ForConditionalGeneration, Llama4Processor
    from transformers.models.llama4.image_processing_llama4 import Llama4ImageProcessor

    tok = build_tokenizer(_LLAMA4)
    proc = Llama4Processor(image_processor=Llama4ImageProcessor(size={"height": s.image_size, "width": s.image_size},
                                                                max_patches=4),
                           tokenizer=tok, patch_size=s.patch, pixel_shuffle_ratio=0.5, chat_template=LLAMA4_TEMPLATE)
    # one chunked-attention layer with RoPE (its chunks shorter than a prompt, so that they really cut) and one
    # full-attention layer without, a dense layer and a mixture of experts, as Llama 4 interleaves them
    text = _llama_text(tok, s, "Llama4TextConfig", head_dim=s.hidden // s.heads, intermediate_size_mlp=s.hidden * 2,
                       num_local_experts=2, num_experts_per_tok=1, interleave_moe_layer_step=2,
                       no_rope_layer_interval=2, attention_chunk_size=16).to_dict()
    vision = dict(hidden_size=s.vision_hidden, intermediate_size=s.vision_hidden * 4, num_hidden_layers=s.vision_layers,
                  num_attention_heads=2, image_size=s.image_size, patch_size=s.patch, pixel_shuffle_ratio=0.5,
                  vision_output_dim=s.vision_hidden, projector_input_dim=s.vision_hidden,
                  projector_output_dim=s.vision_hidden)
    config = Llama4Config(vision_config=vision, text_config=text,
                          boi_token_index=tok.convert_tokens_to_ids("<|image_start|>"),
                          eoi_token_index=tok.convert_tokens_to_ids("<|image_end|>"),
                          image_token_index=tok.convert_tokens_to_ids("<|patch|>"))
    return proc, Llama4ForConditionalGeneration(config)


@dataclass(frozen=True)
class Arch:
    """One architecture the tests build, and its builder (processor and model for a size).

    ``torchvision``: transformers builds its processor only with torchvision installed (Pixtral's processor
    is declared to need it; Llama 4's image processor exists only as a torchvision one).
    """

    kind: str
    build: Callable[[Size], tuple[Any, Any]]
    torchvision: bool = False


def torchvision_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchvision") is None


ARCHS: dict[str, Arch] = {a.kind: a for a in (
    Arch("llava", _llava), Arch("llava_next", _llava_next), Arch("llava_onevision", _llava_onevision),
    Arch("qwen2_vl", _qwen2_vl), Arch("qwen2_5_vl", _qwen2_5_vl), Arch("qwen3_vl", _qwen3_vl),
    Arch("qwen3_5", _qwen3_5),
    Arch("idefics3", _idefics3), Arch("smolvlm", _smolvlm), Arch("gemma3", _gemma3), Arch("mllama", _mllama),
    Arch("internvl", _internvl), Arch("aya_vision", _aya_vision), Arch("paligemma", _paligemma),
    Arch("mistral3", _mistral3, torchvision=True), Arch("llama4", _llama4, torchvision=True),
)}

#: the kinds of the LLaVA presets, every architecture, and those that need torchvision
LLAVA_KINDS = ("llava", "llava_next", "llava_onevision")
KINDS = tuple(ARCHS)
TORCHVISION_KINDS = tuple(k for k, a in ARCHS.items() if a.torchvision)


def build_tiny(kind: str, out: str | Path, *, hidden: int = 32, layers: int = 2, heads: int = 2,
               vision_hidden: int = 32, vision_layers: int = 2, image_size: int = 32, patch: int = 8,
               seed: int = 0) -> Path:
    """Build a random ``kind`` checkpoint (model + processor + chat template) into ``out``; return it."""
    import torch

    if kind not in ARCHS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if ARCHS[kind].torchvision and torchvision_missing():
        raise RuntimeError(f"{kind}: transformers builds its processor only with torchvision, which is not installed")
    out = Path(out)
    torch.manual_seed(seed)
    proc, model = ARCHS[kind].build(Size(hidden, layers, heads, vision_hidden, vision_layers, image_size, patch))
    tok = proc.tokenizer
    model.eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


def source_digest() -> str:
    """What a cached checkpoint depends on: this file's digest, then a digest of the transformers and torch
    versions."""
    import torch
    import transformers

    versions = hashlib.sha256(f"{transformers.__version__} {torch.__version__}".encode()).hexdigest()[:8]
    return f"{hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]}-{versions}"


def cached(kind: str, root: str | Path, **size: Any) -> Path:
    """A tiny ``kind`` checkpoint under ``root``, built once per builder source (and size), then reused.

    Built into a temporary folder and renamed into place, so a half-written build is never used and two
    processes building the same one at once both end with a complete copy. Builds of an earlier source
    are removed when a new one is made, so the folder does not grow with every change to the builders;
    builds of this source for other torch or transformers versions stay (a second environment, one with
    torchvision, shares the folder without rebuilding the first one's models each time).
    """
    digest = source_digest()
    source = digest.split("-")[0]
    key = digest + ("-" + "-".join(f"{k}{v}" for k, v in sorted(size.items())) if size else "")
    final = Path(root) / key / kind
    if (final / "config.json").is_file():
        return final
    for old in Path(root).glob("*"):
        if old.is_dir() and not old.name.startswith(source):
            shutil.rmtree(old, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=final.parent))
    try:
        build_tiny(kind, tmp / "ckpt", **size)
        try:
            os.replace(tmp / "ckpt", final)
        except OSError:  # another process finished first
            if not (final / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# ------------------------------------------------------------------------------------------ training outputs
# What a transformers Trainer leaves in its output_dir, made from a tiny checkpoint: PEFT adapters (made with
# the peft package itself) and full checkpoints, each with its trainer_state.json.


def trainer_state(folder: Path, step: int, max_steps: int) -> None:
    """The file the Trainer writes last into a checkpoint (what says it is finished)."""
    import json

    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": max_steps,
                                                           "log_history": []}), encoding="utf-8")


def make_lora(base: Path, out: Path, *, seed: int, projector: bool = False, base_name: str | None = None) -> Path:
    """A random LoRA adapter (non-zero B, so it changes the answers) on ``base``, saved by peft into ``out``;
    with ``projector``, LLaVA's non_lora_trainables.bin holding a changed projector layer as LLaVA names it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_pretrained(base)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(out)
    if base_name is not None:  # as if trained on another machine, or on another base
        import json

        config = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base_name
        (out / "adapter_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    if projector:
        weight = model.model.multi_modal_projector.linear_1.weight
        torch.save({"base_model.model.model.mm_projector.0.weight": torch.randn_like(weight) * 0.2},
                   out / "non_lora_trainables.bin")
    return out


def make_full(base: Path, out: Path, *, seed: int, scale: float = 0.02) -> Path:
    """A full checkpoint: the base's weights moved by seeded noise, saved without a processor (as a Trainer
    without processing_class saves it)."""
    import torch
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_pretrained(base)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    model.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="build a tiny random image-text-to-text checkpoint (no download)")
    ap.add_argument("kind", choices=KINDS)
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--vision-hidden", type=int, default=32)
    ap.add_argument("--vision-layers", type=int, default=2)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--patch", type=int, default=8)
    a = ap.parse_args(argv)
    print(build_tiny(a.kind, a.out, hidden=a.hidden, layers=a.layers, heads=a.heads, vision_hidden=a.vision_hidden,
                     vision_layers=a.vision_layers, image_size=a.image_size, patch=a.patch))


if __name__ == "__main__":
    main()
