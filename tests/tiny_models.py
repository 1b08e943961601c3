"""Tiny randomly initialised image-text-to-text checkpoints (LLaVA family, Qwen2-VL), built offline and saved.

Used by tests/test_hf_adapter.py (session fixtures) and benchmarks/local_throughput.py (a larger
variant). Every piece a real checkpoint ships is here: a byte-level BPE tokenizer trained with the
``tokenizers`` library, an image processor, a processor with a chat template, and the model
weights, so the adapter loads them through ``from_pretrained`` exactly like a hub checkpoint.

Four kinds, one per preset plus a generic one:

- ``llava``: LlavaForConditionalGeneration (CLIP vision tower + Llama), a LLaVA-1.5 style template
  that renders every image first (as the llava-hf checkpoints do) and ends with ``ASSISTANT:``;
- ``llava_next``: LlavaNextForConditionalGeneration (CLIP + Llama, anyres tiles), a Mistral
  ``[INST] ... [/INST]`` template with images interleaved in reading order;
- ``llava_onevision``: LlavaOnevisionForConditionalGeneration (SigLIP + Qwen2), a ChatML template;
- ``qwen2_vl``: Qwen2VLForConditionalGeneration (its own vision tower, M-RoPE), which no preset
  covers: it exercises the generic path.

Processors of video-capable models want a video processor, which transformers builds only with
torchvision; the builder uses :func:`mmeval.model_adapters.hf.image_only_processor_class` instead.

Run as a script to build one: ``python tests/tiny_models.py llava OUT_DIR [--hidden 256 --layers 4]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmeval.model_adapters.hf.presets import LLAVA15_CHAT_TEMPLATE, ONEVISION_CHAT_TEMPLATE

#: the LLaVA presets, and a Qwen2-VL that goes through the generic path
LLAVA_KINDS = ("llava", "llava_next", "llava_onevision")
KINDS = (*LLAVA_KINDS, "qwen2_vl")

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<video>", "<|im_start|>", "<|im_end|>", "[INST]", "[/INST]",
            "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]

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
    "USER: ASSISTANT: user assistant system",
]

#: Mistral instruct style, images interleaved where they appear
MISTRAL_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<image>\n' }}{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ ' [/INST]' }}{% else %}{{ '</s>' }}{% endif %}"
    "{% endfor %}"
)

#: Qwen2-VL: a system turn, images wrapped in vision start/end markers
QWEN2VL_TEMPLATE = (
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer(vocab_size: int = 600, image_token: str = "<image>", video_token: str = "<video>"):
    """A byte-level BPE (every byte encodable) with the special tokens the three kinds need."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(_CORPUS * 10, trainer)
    bos = tk.token_to_id("<s>")
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                      special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>",
                                   extra_special_tokens={"image_token": image_token, "video_token": video_token})


def _text_config(kind: str, tokenizer, hidden: int, layers: int, heads: int):
    from transformers import LlamaConfig, Qwen2Config

    cls = Qwen2Config if kind in ("llava_onevision", "qwen2_vl") else LlamaConfig
    return cls(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
               num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=4096,
               bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)


def build_tiny(kind: str, out: str | Path, *, hidden: int = 32, layers: int = 2, heads: int = 2,
               vision_hidden: int = 32, vision_layers: int = 2, image_size: int = 32, patch: int = 8,
               seed: int = 0) -> Path:
    """Build a random ``kind`` checkpoint (model + processor + chat template) into ``out``; return it."""
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextProcessor,
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionProcessor,
        LlavaProcessor,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLProcessor,
        SiglipVisionConfig,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from mmeval.model_adapters.hf import image_only_processor_class

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    out = Path(out)
    torch.manual_seed(seed)
    qwen = kind == "qwen2_vl"
    tok = build_tokenizer(image_token="<|image_pad|>" if qwen else "<image>",
                          video_token="<|video_pad|>" if qwen else "<video>")
    image_id = tok.convert_tokens_to_ids(tok.image_token)
    text = _text_config(kind, tok, hidden, layers, heads)
    grid = (image_size // patch) ** 2
    vkw = dict(hidden_size=vision_hidden, intermediate_size=vision_hidden * 2, num_hidden_layers=vision_layers,
               num_attention_heads=2, image_size=image_size, patch_size=patch)
    if kind == "llava":
        proc = LlavaProcessor(
            image_processor=CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                                  crop_size={"height": image_size, "width": image_size}),
            tokenizer=tok, patch_size=patch, vision_feature_select_strategy="default",
            num_additional_image_tokens=1, chat_template=LLAVA15_CHAT_TEMPLATE)
        config = LlavaConfig(vision_config=CLIPVisionConfig(projection_dim=vision_hidden, **vkw), text_config=text,
                             image_token_index=image_id, image_seq_length=grid, vision_feature_layer=-1,
                             vision_feature_select_strategy="default")
        model = LlavaForConditionalGeneration(config)
    elif kind == "llava_next":
        pins = [[image_size, image_size], [image_size, 2 * image_size], [2 * image_size, image_size]]
        proc = LlavaNextProcessor(
            image_processor=LlavaNextImageProcessorPil(
                size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
                image_grid_pinpoints=pins),
            tokenizer=tok, patch_size=patch, vision_feature_select_strategy="default",
            num_additional_image_tokens=1, chat_template=MISTRAL_TEMPLATE)
        config = LlavaNextConfig(vision_config=CLIPVisionConfig(projection_dim=vision_hidden, **vkw), text_config=text,
                                 image_token_index=image_id, image_seq_length=grid, vision_feature_layer=-1,
                                 vision_feature_select_strategy="default", image_grid_pinpoints=pins)
        model = LlavaNextForConditionalGeneration(config)
    elif kind == "llava_onevision":
        pins = [[image_size, image_size], [image_size, 2 * image_size], [2 * image_size, image_size]]
        # the real class wants a video processor, which transformers cannot build without torchvision
        proc = image_only_processor_class(LlavaOnevisionProcessor)(
            image_processor=LlavaOnevisionImageProcessorPil(
                size={"height": image_size, "width": image_size}, image_grid_pinpoints=pins),
            tokenizer=tok, num_image_tokens=grid, vision_feature_select_strategy="full",
            chat_template=ONEVISION_CHAT_TEMPLATE)
        config = LlavaOnevisionConfig(
            vision_config=SiglipVisionConfig(vision_use_head=False, **vkw), text_config=text,
            image_token_index=image_id, video_token_index=tok.convert_tokens_to_ids("<video>"),
            vision_feature_layer=-1, vision_feature_select_strategy="full", image_grid_pinpoints=pins)
        model = LlavaOnevisionForConditionalGeneration(config)
    else:
        proc = image_only_processor_class(Qwen2VLProcessor)(
            image_processor=Qwen2VLImageProcessorPil(patch_size=patch, merge_size=2, temporal_patch_size=2,
                                                     min_pixels=image_size * image_size,
                                                     max_pixels=image_size * image_size),
            tokenizer=tok, chat_template=QWEN2VL_TEMPLATE)
        head = hidden // heads
        text_cfg = text.to_dict()
        text_cfg.pop("model_type", None)
        text_cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0,
                                       "mrope_section": [head // 8, (head // 2 - head // 8) // 2,
                                                         head // 2 - head // 8 - (head // 2 - head // 8) // 2]}
        config = Qwen2VLConfig(
            text_config=text_cfg,
            vision_config={"depth": vision_layers, "embed_dim": vision_hidden, "hidden_size": hidden, "num_heads": 2,
                           "patch_size": patch, "spatial_merge_size": 2, "temporal_patch_size": 2, "mlp_ratio": 2},
            image_token_id=image_id, video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
            vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
            vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"))
        model = Qwen2VLForConditionalGeneration(config)
    model.eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="build a tiny random LLaVA-family checkpoint (no download)")
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
