"""Stand-in for AnomalyGPT's ``code/model/openllama.py`` (tests only).

Written from the published entry point's name, arguments and return shapes (see the test that freezes
them); none of AnomalyGPT's code is here. It checks what it is given the way the real model would fail,
prints to stdout as the real model's loading does, and answers deterministically: a reply in AnomalyGPT's
trained phrasing and a (1, 1, 224, 224) float16 map with one peak.
"""

import os

import torch
from standin_tools import peak_map, record, unit

PROMPT_START = "### Human: <Img>"

INIT_KEYS = {"imagebind_ckpt_path", "vicuna_ckpt_path", "stage", "max_tgt_len", "lora_r", "lora_alpha", "lora_dropout"}
GENERATE_KEYS = {"prompt", "image_paths", "normal_img_paths", "audio_paths", "video_paths", "thermal_paths", "top_p",
                 "temperature", "max_tgt_len", "modality_embeds"}
REGIONS = ["top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right"]


class OpenLLAMAPEFTModel(torch.nn.Module):
    def __init__(self, **args):
        missing = INIT_KEYS - set(args)
        if missing:
            raise KeyError(sorted(missing))
        if not torch.cuda.is_available():
            raise RuntimeError("No CUDA GPUs are available")
        for key in ("imagebind_ckpt_path", "vicuna_ckpt_path"):
            if not os.path.exists(args[key]):
                raise FileNotFoundError(args[key])
        print(f"Initializing visual encoder from {args['imagebind_ckpt_path']} ...")  # as the real one, on stdout
        os.write(1, b"Visual encoder initialized.\n")  # and straight to file descriptor 1
        self.args = dict(args)
        self.loaded = []
        self.precision, self.device = "fp32", "cpu"
        record("init", args=self.args, cwd=os.getcwd())

    def load_state_dict(self, state_dict, strict=True):
        self.loaded.append({"strict": strict})
        record("load_state_dict", strict=strict)
        return super().load_state_dict(state_dict, strict)

    def half(self):
        self.precision = "fp16"
        return self

    def cuda(self, device=None):
        self.device = "cuda"
        return self

    def generate(self, inputs, web_demo=False):
        if set(inputs) != GENERATE_KEYS:
            raise KeyError(f"inputs keys {sorted(inputs)} != {sorted(GENERATE_KEYS)}")
        if len(inputs["image_paths"]) != 1:
            raise ValueError("one query image")
        for path in inputs["image_paths"] + inputs["normal_img_paths"]:
            if not os.path.isfile(path):
                raise FileNotFoundError(path)
        if not isinstance(inputs["modality_embeds"], list) or inputs["modality_embeds"]:
            raise ValueError("modality_embeds must be a fresh list")
        inputs["modality_embeds"].append("embeds")
        if (self.precision, self.device, self.training, len(self.loaded)) != ("fp16", "cuda", False, 2):
            raise RuntimeError("the model was not loaded as the authors' scripts load it")
        print("generating")
        query = inputs["image_paths"][0]
        record("generate", inputs={k: v for k, v in inputs.items() if k != "modality_embeds"}, web_demo=web_demo,
               seed=torch.initial_seed())
        key = (os.path.basename(os.path.dirname(query)), os.path.basename(query))
        if unit("defect", *key) < 0.5:
            text = "No, there is no anomaly in the image."
        else:
            where = REGIONS[int(9 * unit("where", *key))]
            text = f"Yes, there is an anomaly in the image, at the {where} of the image."
        return text, torch.Tensor(peak_map(224, 224, *key), (1, 1, 224, 224), dtype=torch.float16, device="cuda")
