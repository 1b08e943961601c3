"""Anomaly-OV inside its own environment (run by mmeval's worker; standard library at import, Python 3.8+).

Loads a trained checkpoint the way the authors' evaluation scripts do: ``llava.model.builder.
load_pretrained_model(path, None, "llava_qwen", torch_dtype="bfloat16", overwrite_config={"vocab_size":
152064})``, the 0.5B model's head tied to its embeddings, then the ``AnomalyOV()`` expert loaded from
``pretrained_expert_{7b,05b}.pth``, frozen and attached with ``model.set_anomaly_encoder``.

One request is one user turn of the ``qwen_1_5`` conversation: the text parts in order, each image part
replaced by ``<image>`` (one per image, in the order of the images list; a newline follows an image
unless the next text starts with one). Images are converted to RGB and shrunk so their longest side is at
most ``max_side`` (1024, as the authors), then go through ``process_images``.

- generate: greedy ``model.generate(..., do_sample=False, temperature=0, max_new_tokens=N)``; the
  returned ids are the new tokens only.
- likelihood: one forward pass; the log-probability of each option letter's first token at the answer
  position.

The expert's outputs are dropped by the model; a forward hook on the expert captures the per-image score
(``final_prediction``, the third item of its output) and a wrapper of ``get_anomaly_map`` its maps (one
27x27 map per crop, every image's crops in order). Crop 0 of an image is the whole image squashed to the
vision tower's square, so the query's crop-0 map covers the whole query image.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import sys


class SetupError(Exception):
    """What is missing to load Anomaly-OV (the worker shows the message as it is)."""


class RequestError(Exception):
    """A request Anomaly-OV cannot answer, whatever the retry."""


#: what every authors' script passes to load_pretrained_model
VOCAB_SIZE = 152064

REQUIREMENTS = ("install the Anomaly-OV checkout into this environment: cd {repo} && pip install -e \".[train]\" "
                "(Python 3.10, as its README says)")


def _listify(value) -> list:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return value if isinstance(value, list) else [value]


class Backend:
    def __init__(self, options: dict, context) -> None:
        self.context = context
        repo = options.get("repo")
        hint = REQUIREMENTS.format(repo=repo or "ANOMALY_OV_CHECKOUT")
        try:
            import torch
        except ImportError as exc:
            raise SetupError(f"{sys.executable} has no torch ({exc}): {hint}") from None
        self.torch = torch
        if repo and repo not in sys.path:
            sys.path.insert(0, repo)
        try:
            builder = importlib.import_module("llava.model.builder")
            expert_module = importlib.import_module("llava.model.anomaly_expert")
            mm_utils = importlib.import_module("llava.mm_utils")
            conversation = importlib.import_module("llava.conversation")
            constants = importlib.import_module("llava.constants")
        except ImportError as exc:
            missing = getattr(exc, "name", None) or str(exc)
            raise SetupError(f"importing Anomaly-OV's llava package failed: {missing!r} is missing ({exc}); "
                             f"{hint}") from None
        self.process_images = mm_utils.process_images
        self.tokenizer_image_token = mm_utils.tokenizer_image_token
        self.conv_template = conversation.conv_templates["qwen_1_5"]
        self.image_token = constants.DEFAULT_IMAGE_TOKEN
        self.image_token_index = constants.IMAGE_TOKEN_INDEX
        if not torch.cuda.is_available():
            context.log("no CUDA device: Anomaly-OV runs on the CPU (slowly)")
        checkpoint = options["checkpoint"]
        with open(os.path.join(checkpoint, "config.json"), encoding="utf-8") as fh:
            model_type = json.load(fh).get("model_type")
        if model_type != "llava_qwen":
            raise SetupError(f"{checkpoint} is a {model_type!r} checkpoint; Anomaly-OV checkpoints are 'llava_qwen' "
                             "(trained with the authors' scripts/train/finetune_anomalyov_*.sh)")
        kwargs = {"device_map": options.get("device_map", "auto"), "torch_dtype": "bfloat16",
                  "attn_implementation": options.get("attn_implementation", "sdpa"),
                  "overwrite_config": {"vocab_size": VOCAB_SIZE}}
        context.log(f"loading Anomaly-OV from {checkpoint}: {kwargs}")
        tokenizer, model, image_processor, _ = builder.load_pretrained_model(checkpoint, None, "llava_qwen", **kwargs)
        if options.get("size", "7b") != "7b":  # the 0.5B model ties its head to the embeddings, as the authors do
            model.lm_head.weight = model.model.embed_tokens.weight
        expert = expert_module.AnomalyOV()
        expert.load_zero_shot_weights(path=options["expert"])
        expert.freeze_layers()
        expert.to(dtype=torch.bfloat16, device=model.device)
        expert.requires_grad_(False)
        expert.eval()
        model.set_anomaly_encoder(expert)
        model.eval()
        self.tokenizer, self.model, self.image_processor = tokenizer, model, image_processor
        self.max_side = int(options.get("max_side", 1024))
        self._calls: list = []  # (split sizes, final predictions) per expert call
        self._maps: list = []
        expert.register_forward_hook(self._on_expert, with_kwargs=True)
        original = expert.get_anomaly_map

        def get_anomaly_map(*args, **kw):
            out = original(*args, **kw)
            self._maps.append(out[0])
            return out

        expert.get_anomaly_map = get_anomaly_map

    def _on_expert(self, module, args, kwargs, output) -> None:
        split_sizes = args[2] if len(args) > 2 else kwargs.get("split_sizes")
        self._calls.append((_listify(split_sizes), output[2]))

    def info(self) -> dict:
        torch = self.torch
        return {"torch": torch.__version__, "python": sys.version.split()[0], "device": str(self.model.device)}

    # ------------------------------------------------------------------------------------------ one request

    def _prompt(self, parts: list) -> str:
        text = []
        for i, part in enumerate(parts):
            if part["type"] == "text":
                text.append(part["text"])
                continue
            text.append(self.image_token)
            following = parts[i + 1] if i + 1 < len(parts) else None
            if following is None or following["type"] != "text" or not following["text"].startswith("\n"):
                text.append("\n")
        conv = copy.deepcopy(self.conv_template)
        conv.append_message(conv.roles[0], "".join(text))
        conv.append_message(conv.roles[1], None)
        return conv.get_prompt()

    def _image(self, path: str):
        from PIL import Image

        with Image.open(path) as im:
            image = im.convert("RGB")
        width, height = image.size
        if max(width, height) > self.max_side:
            scale = self.max_side / max(width, height)
            bicubic = getattr(Image, "Resampling", Image).BICUBIC  # Pillow < 9.1 has no Resampling
            image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), bicubic)
        return image

    def predict(self, request: dict) -> dict:
        torch = self.torch
        parts = request["parts"]
        settings = request.get("settings") or {}
        images_parts = [p for p in parts if p["type"] == "image"]
        queries = [i for i, p in enumerate(images_parts) if p.get("role", "query") == "query"]
        if len(queries) != 1:
            raise RequestError(f"expected one query image, the request has {len(queries)}")
        prompt = self._prompt(parts)
        if prompt.count(self.image_token) != len(images_parts):
            raise RequestError(f"the text holds {self.image_token!r} itself: {prompt.count(self.image_token)} image "
                               f"tokens for {len(images_parts)} images")
        images = [self._image(p["path"]) for p in images_parts]
        tensors = self.process_images(images, self.image_processor, self.model.config)
        tensors = [t.to(dtype=torch.bfloat16, device=self.model.device) for t in tensors]
        sizes = [im.size for im in images]
        input_ids = self.tokenizer_image_token(prompt, self.tokenizer, self.image_token_index, return_tensors="pt")
        input_ids = input_ids.unsqueeze(0).to(self.model.device)
        self._calls.clear()
        self._maps.clear()
        modalities = ["image"] * len(images)
        out: dict = {"meta": {"image_sizes": [list(s) for s in sizes]}}
        with torch.no_grad():
            if request.get("answer_mode", "generate") == "likelihood":
                logits = self.model(input_ids=input_ids, images=tensors, image_sizes=sizes,
                                    modalities=modalities).logits
                logp = torch.log_softmax(logits[0, -1].float(), dim=-1)
                scores = {}
                for letter in sorted(request["options"]):
                    ids = self.tokenizer.encode(letter, add_special_tokens=False)
                    scores[letter] = float(logp[ids[0]])
                out["scores"] = scores
            else:
                ids = self.model.generate(input_ids, images=tensors, image_sizes=sizes, modalities=modalities,
                                          do_sample=False, temperature=0,
                                          max_new_tokens=int(settings.get("max_new_tokens", 32)))
                out["text"] = self.tokenizer.batch_decode(ids, skip_special_tokens=True)[0].strip()
        self._expert_outputs(queries[0], out)
        return out

    def _expert_outputs(self, query: int, out: dict) -> None:
        """The query image's score and crop-0 map, from the first expert call of this request."""
        if not self._calls:
            return
        split_sizes, predictions = self._calls[0]
        scores = predictions.detach().float().cpu().reshape(-1).tolist()
        if query < len(scores):
            out["image_score"] = float(scores[query])
        if self._maps and query < len(split_sizes):
            first_crop = sum(int(s) for s in split_sizes[:query])
            out["map"] = self._maps[0][first_crop][0]
