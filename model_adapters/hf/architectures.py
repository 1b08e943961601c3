"""The architectures the ``hf`` family is tested with, and how: what ``mmeval models show hf`` lists.

Each one is built as a tiny random checkpoint by the test suite (tests/tiny_models.py: a tokenizer with the
family's real special tokens, its chat template in the published format, its processor and model classes)
and checked for token-exact inputs against ``processor.apply_chat_template``, for likelihood scores equal to
greedy generation's log-probabilities, for equal numbers on every path (prefix reuse, batching, both
likelihood targets), and end to end in both answer modes (tests/test_hf_architectures.py). Behaviour lives
in the presets and the shared code; this table only says what was verified.

Some processors exist in transformers only with torchvision installed: those architectures are verified in
an environment that has it, and their tests are skipped where it is missing ("torchvision is not installed").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    """One architecture as the test suite verifies it."""

    model_type: str
    name: str
    preset: str
    prefix_reuse: str
    notes: str = ""
    #: its processor needs torchvision: tested where torchvision is installed, skipped where it is not
    needs_torchvision: bool = False


TESTED: tuple[Architecture, ...] = (
    Architecture("llava", "LLaVA-1.5", "llava", "yes"),
    Architecture("llava_next", "LLaVA-NeXT (1.6)", "llava-next", "yes", "anyres image tiles"),
    Architecture("llava_onevision", "LLaVA-OneVision", "llava-onevision", "yes"),
    Architecture("qwen2_vl", "Qwen2-VL", "generic", "yes", "multimodal RoPE"),
    Architecture("qwen2_5_vl", "Qwen2.5-VL", "generic", "yes", "multimodal RoPE"),
    Architecture("qwen3_vl", "Qwen3-VL", "generic", "yes", "multimodal RoPE, deepstack vision features"),
    Architecture("qwen3_5", "Qwen3.5", "generic", "yes, copying the cache",
                 "hybrid linear attention (recurrent states copied per call); its template opens a think block "
                 "by default, so a letter scores after closing it: -M enable_thinking=false closes it in the prompt"),
    Architecture("idefics3", "Idefics3", "generic", "yes", "BOS written by the template, not added again"),
    Architecture("smolvlm", "SmolVLM", "generic", "yes", "without torchvision: its processor minus the video part"),
    Architecture("gemma3", "Gemma 3", "generic", "yes, copying the cache",
                 "BOS written by the template; sliding-window layers"),
    Architecture("mllama", "Llama 3.2 Vision (Mllama)", "generic", "yes",
                 "BOS written by the template; cross-attention layers read the image keys of the shared prefix; "
                 "its template dates only prompts without an image, so mmeval's carry no date"),
    Architecture("internvl", "InternVL (-hf checkpoints)", "generic", "yes", "processor pads on the left by default"),
    Architecture("aya_vision", "Aya Vision", "generic", "yes",
                 "BOS written by the template; Command R turns, no space before the answer"),
    Architecture("paligemma", "PaliGemma", "paligemma", "no (the prompt attends both ways)",
                 "no chat template: the processor's plain prompt format, recorded in run.json and the report"),
    Architecture("mistral3", "Mistral 3 (Small 3.1)", "generic", "yes",
                 "Pixtral images at their own size and shape (image sizes passed on); BOS written by the template; "
                 "no space before the answer; the default system prompt states today's date: fixed to "
                 "-M template_date (2025-01-01), recorded in run.json", needs_torchvision=True),
    Architecture("llama4", "Llama 4", "generic", "yes, copying the cache",
                 "image tiles; chunked-attention layers; BOS written by the template; processor pads on the left "
                 "by default and gives bfloat16 pixels (cast to -M dtype); its template works out today's date "
                 "but writes none", needs_torchvision=True),
)

#: architectures transformers supports that the suite cannot build here, and why
NOT_BUILT: tuple[tuple[str, str], ...] = (
    ("MiniCPM-V, InternVL2 (original), Qwen-VL-Chat",
     "ship their own modelling code (-M trust_remote_code=true): loaded through the generic path with their own "
     "processor and template, untested"),
)


def describe() -> str:
    """The table ``mmeval models show hf`` prints."""
    width = max(len(a.name) for a in TESTED)
    lines = ["tested architectures (tiny random checkpoints; tokens equal apply_chat_template's, likelihood equals "
             "generation, every path the same numbers, both answer modes):"]
    for a in TESTED:
        lines.append(f"  {a.name:<{width}}  {a.model_type:<16} preset {a.preset:<16} prefix reuse: {a.prefix_reuse}")
        if a.notes:
            lines.append(f"  {'':<{width}}  {a.notes}")
        if a.needs_torchvision:
            lines.append(f"  {'':<{width}}  needs torchvision: tested where it is installed, skipped where it is not")
    lines.append("not built by the tests here:")
    lines.extend(f"  {name}: {why}" for name, why in NOT_BUILT)
    return "\n".join(lines)
