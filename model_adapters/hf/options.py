"""The options of the ``hf`` family (``--model-arg KEY=VALUE``), in their own module so that every part of
the family (loading, prompts, scoring, generation) can read them without importing the adapter."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mmeval.model_adapters.hf.presets import PresetName
from mmeval.model_adapters.hf.template_clock import DEFAULT_TEMPLATE_DATE

LikelihoodTarget = Literal["letters", "options"]


class HFOptions(BaseModel):
    """Options of the ``hf`` (and ``llava``) model family (``--model-arg KEY=VALUE``).

    The answer mode is the run's (``--answer-mode``): generate greedy-decodes a short answer that the
    engine parses; likelihood runs one forward pass and the option with the highest log-probability wins.
    """

    model_config = ConfigDict(extra="forbid")

    likelihood_target: LikelihoodTarget = Field(
        "letters", description="likelihood mode: score each option's letter, or its full text (sum of token log-probs)")
    max_new_tokens: int = Field(16, ge=1, description="generate mode: at most this many new tokens")
    prefix_reuse: bool = Field(
        True, description="run the images and instruction shared by the questions of one image through the model "
                          "once and reuse its KV cache for each question")
    batch_invariant: bool = Field(
        True, description="compute each question in model calls that hold only it (and its image's shared prefix), "
                          "so its scores are bit-identical whatever --batch-size, process count or resume; "
                          "-M batch_invariant=false batches different questions together (faster on a GPU, scores "
                          "then move in the last digits)")
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="weights dtype; auto: bf16 on a GPU (fp16 where bf16 is unsupported), fp32 on CPU")
    quantize: Literal["none", "4bit", "8bit"] = Field(
        "none", description="load the weights in 4 or 8 bits with bitsandbytes (needs a CUDA GPU)")
    preset: PresetName = Field(
        "auto", description="model class and prompt conventions; auto: chosen from the checkpoint's model_type")
    enable_thinking: bool | None = Field(
        None, description="passed to the chat template as enable_thinking (Qwen3, Qwen3.5 ...: false closes the "
                          "think block before the answer); unset: the template's own default")
    template_date: date = Field(
        DEFAULT_TEMPLATE_DATE, description="the day (YYYY-MM-DD) chat templates that write today's date into the "
                                           "prompt (Mistral Small 3.1 ...) are rendered on, so that every day gives "
                                           "the same prompt; part of the run's identity only where the template "
                                           "writes the date, or where given")
    trust_remote_code: bool = Field(
        False, description="allow checkpoints that ship their own modelling code (that code runs on this machine)")
    adapter: str | None = Field(
        None, description="a PEFT adapter folder (adapter_config.json; LLaVA's non_lora_trainables.bin too) applied "
                          "on the model (needs pip install 'mmeval[train]')")
    processor: str | None = Field(
        None, description="take the processor and chat template from this checkpoint (path or hub id) instead of the "
                          "model's own folder, e.g. for a fine-tuned checkpoint saved without them")
