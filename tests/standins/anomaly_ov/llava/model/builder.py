"""Stand-in for Anomaly-OV's llava/model/builder.py (tests only)."""

import json
import os

from standin_tools import record

from llava.model.language_model.llava_qwen import LlavaQwenForCausalLM, StandinTokenizer


def load_pretrained_model(model_path, model_base, model_name, load_8bit=False, load_4bit=False, device_map="auto",
                          torch_dtype="float16", attn_implementation="flash_attention_2", customized_config=None,
                          overwrite_config=None, **kwargs):
    with open(os.path.join(model_path, "config.json"), encoding="utf-8") as fh:
        config = json.load(fh)
    if "qwen" not in model_name.lower():
        raise ValueError(f"the stand-in builds llava_qwen models only, not {model_name}")
    config.update(overwrite_config or {})
    record("load_pretrained_model", model_path=model_path, model_base=model_base, model_name=model_name,
           device_map=device_map, torch_dtype=torch_dtype, attn_implementation=attn_implementation,
           overwrite_config=overwrite_config, kwargs=kwargs)
    print("Loading checkpoint shards: 100%")  # the real loader's progress, on stdout
    return StandinTokenizer(), LlavaQwenForCausalLM(config), object(), 32768
