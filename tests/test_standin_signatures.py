"""The upstream entry points the anomalygpt and anomaly-ov backends rely on, frozen as the authors wrote them.

The stand-ins under tests/standins are checked against these signatures (parameter names, order, kinds
and defaults; annotations are left out), so a stand-in cannot drift from the real code without this
test failing. Read from the authors' repositories:

- AnomalyGPT: CASIA-IVA-Lab/AnomalyGPT at commit f21c51b93de1 (2023-12-20), ``code/model/openllama.py``;
- Anomaly-OV: honda-research-institute/Anomaly-OneVision at commit d85bec0eefdb (2025-04-29), package ``llava``.

If upstream changes, update the frozen string here, then the stand-in, then the backend.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from standin_env import SITE, STANDINS

ANOMALYGPT = {
    "model.openllama:OpenLLAMAPEFTModel.__init__": "(self, **args)",
    "model.openllama:OpenLLAMAPEFTModel.generate": "(self, inputs, web_demo=False)",
}
ANOMALY_OV = {
    "llava.model.builder:load_pretrained_model":
        "(model_path, model_base, model_name, load_8bit=False, load_4bit=False, device_map='auto', "
        "torch_dtype='float16', attn_implementation='flash_attention_2', customized_config=None, "
        "overwrite_config=None, **kwargs)",
    "llava.model.anomaly_expert:AnomalyOV.__init__":
        "(self, embedding_dim=512, class_dim=512, kernal_size=3, attention_dim=512, num_pooling_tokens=2)",
    "llava.model.anomaly_expert:AnomalyOV.freeze_layers": "(self)",
    "llava.model.anomaly_expert:AnomalyOV.load_zero_shot_weights": "(self, path='./pretrained_expert_7b.pth')",
    "llava.model.anomaly_expert:AnomalyOV.get_anomaly_map": "(self, sig_multi_level_features, ov_base_features)",
    "llava.model.anomaly_expert:AnomalyOV.forward": "(self, ov_image_features, sig_multi_level_features, split_sizes)",
    "llava.model.language_model.llava_qwen:LlavaQwenForCausalLM.set_anomaly_encoder": "(self, anomaly_encoder)",
    "llava.model.language_model.llava_qwen:LlavaQwenForCausalLM.get_anomaly_tokens":
        "(self, ov_image_features, sig_multi_level_features, split_sizes)",
    "llava.model.language_model.llava_qwen:LlavaQwenForCausalLM.forward":
        "(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, inputs_embeds=None, "
        "labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, images=None, "
        "image_sizes=None, return_dict=None, modalities=['image'], dpo_forward=False, cache_position=None)",
    "llava.model.language_model.llava_qwen:LlavaQwenForCausalLM.generate":
        "(self, inputs=None, images=None, image_sizes=None, modalities=['image'], **kwargs)",
    "llava.mm_utils:process_images": "(images, image_processor, model_cfg)",
    "llava.mm_utils:tokenizer_image_token": "(prompt, tokenizer, image_token_index=-200, return_tensors=None)",
}
VALUES = {
    "model.openllama:PROMPT_START": "### Human: <Img>",
    "llava.constants:IMAGE_TOKEN_INDEX": -200,
    "llava.constants:DEFAULT_IMAGE_TOKEN": "<image>",
    # the qwen_1_5 conversation: one user turn, then the assistant's opening
    "llava.conversation:qwen_1_5": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                                   "<image>\nQ<|im_end|>\n<|im_start|>assistant\n",
}

PROBE = r"""
import copy, importlib, inspect, json, sys

def bare(obj):  # parameter names, kinds and defaults, without annotations
    sig = inspect.signature(obj)
    return str(sig.replace(parameters=[p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()],
                           return_annotation=inspect.Signature.empty))

out = {}
for spec in json.loads(sys.argv[1]):
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    if attr == "qwen_1_5":
        conv = copy.deepcopy(obj.conv_templates["qwen_1_5"])
        conv.append_message(conv.roles[0], "<image>\nQ")
        conv.append_message(conv.roles[1], None)
        out[spec] = conv.get_prompt()
        continue
    for name in attr.split("."):
        obj = getattr(obj, name)
    out[spec] = bare(obj) if callable(obj) else obj
print(json.dumps(out))
"""


def probe(specs: list[str]) -> dict[str, object]:
    path = ":".join([str(SITE), str(STANDINS / "anomalygpt" / "code"), str(STANDINS / "anomaly_ov")])
    done = subprocess.run([sys.executable, "-S", "-s", "-c", PROBE, json.dumps(specs)], capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("frozen", [ANOMALYGPT, ANOMALY_OV, VALUES], ids=["anomalygpt", "anomaly-ov", "values"])
def test_stand_ins_keep_the_upstream_signatures(frozen: dict[str, object]) -> None:
    assert probe(list(frozen)) == frozen


def test_backends_call_only_what_is_frozen_here() -> None:
    """Every upstream name the backends use appears in the frozen list (a new dependency needs a new line)."""
    from mmeval.model_adapters.worker.backends import BACKENDS

    frozen = " ".join([*ANOMALYGPT, *ANOMALY_OV, *VALUES])
    used = {
        "anomalygpt.py": ["model.openllama", "OpenLLAMAPEFTModel", "generate"],
        "anomaly_ov.py": ["llava.model.builder", "load_pretrained_model", "llava.model.anomaly_expert", "AnomalyOV",
                          "load_zero_shot_weights", "freeze_layers", "set_anomaly_encoder", "get_anomaly_map",
                          "llava.mm_utils", "process_images", "tokenizer_image_token", "llava.conversation",
                          "qwen_1_5", "llava.constants", "IMAGE_TOKEN_INDEX", "DEFAULT_IMAGE_TOKEN"],
    }
    for backend, names in used.items():
        source = (BACKENDS / backend).read_text(encoding="utf-8")
        for name in names:
            assert name in source and name in frozen, (backend, name)
