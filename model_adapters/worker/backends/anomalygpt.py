"""AnomalyGPT inside its own environment (run by mmeval's worker; standard library at import, Python 3.8+).

Loads the model the way the authors' test scripts do: ``code/`` of the checkout first on ``sys.path`` and
the working directory, ``model.openllama.OpenLLAMAPEFTModel(**args)``, the PandaGPT delta and then the
AnomalyGPT delta loaded with ``strict=False``, ``.eval().half().cuda()``. Each request is one call of
``generate(inputs, web_demo=...)``: the query image as ``image_paths``, the normal templates as
``normal_img_paths`` (in order), the text parts joined as ``prompt``. It returns the reply, the
(1, 1, 224, 224) anomaly map in the frame of the model's preprocessing, and its maximum (the authors'
image score). Sampling is always on in AnomalyGPT; the seed is set from the request before each call.
"""

from __future__ import annotations

import importlib
import os
import sys


class SetupError(Exception):
    """What is missing to load AnomalyGPT (the worker shows the message as it is)."""


class RequestError(Exception):
    """A request AnomalyGPT cannot answer, whatever the retry."""


#: what ``OpenLLAMAPEFTModel.__init__`` is given besides the checkpoint paths (as in the authors' scripts)
FIXED_ARGS = {"model": "openllama_peft", "stage": 2, "max_tgt_len": 128, "lora_r": 32, "lora_alpha": 32,
              "lora_dropout": 0.1}

REQUIREMENTS = ("install AnomalyGPT's requirements into this environment: pip install -r {repo}/requirements.txt "
                "(Python 3.8/3.9, torch 1.13.1 with CUDA 11.7, as its README says)")


class Backend:
    def __init__(self, options: dict, context) -> None:
        self.context = context
        repo = options["repo"]
        hint = REQUIREMENTS.format(repo=repo)
        try:
            import torch
        except ImportError as exc:
            raise SetupError(f"{sys.executable} has no torch ({exc}): {hint}") from None
        self.torch = torch
        if not torch.cuda.is_available():
            raise SetupError(f"AnomalyGPT needs a CUDA GPU (its model code places tensors on the current CUDA "
                             f"device when it is imported), but torch {torch.__version__} in {sys.executable} sees "
                             "none: run on a machine with an NVIDIA GPU and a CUDA build of torch")
        code = os.path.join(repo, "code")
        if code not in sys.path:
            sys.path.insert(0, code)
        try:
            openllama = importlib.import_module("model.openllama")
        except ImportError as exc:
            missing = getattr(exc, "name", None) or str(exc)
            raise SetupError(f"importing AnomalyGPT's model.openllama from {code} failed: the package "
                             f"{missing!r} is missing ({exc}); {hint}") from None
        args = dict(FIXED_ARGS, imagebind_ckpt_path=options["imagebind_ckpt"], vicuna_ckpt_path=options["vicuna_ckpt"],
                    delta_ckpt_path=options["pandagpt_delta"], anomalygpt_ckpt_path=options["anomalygpt_delta"])
        context.log(f"loading AnomalyGPT: {args}")
        model = openllama.OpenLLAMAPEFTModel(**args)
        model.load_state_dict(torch.load(args["delta_ckpt_path"], map_location="cpu"), strict=False)
        model.load_state_dict(torch.load(args["anomalygpt_ckpt_path"], map_location="cpu"), strict=False)
        self.model = model.eval().half().cuda()

    def info(self) -> dict:
        torch = self.torch
        out = {"torch": torch.__version__, "python": sys.version.split()[0]}
        try:
            out["device"] = torch.cuda.get_device_name(torch.cuda.current_device())
        except Exception:  # noqa: BLE001 - a name for the report only
            pass
        return out

    def predict(self, request: dict) -> dict:
        parts = request["parts"]
        settings = request.get("settings") or {}
        if request.get("answer_mode", "generate") != "generate":
            raise RequestError("AnomalyGPT answers in generate mode only")
        if any(p["type"] == "image" and p.get("role") == "reference" for p in parts):
            raise RequestError("AnomalyGPT cannot be shown an extra reference image (the agent boost's drawing); "
                               "use --boost-arg view=text")
        queries = [p["path"] for p in parts if p["type"] == "image" and p.get("role", "query") == "query"]
        if len(queries) != 1:
            raise RequestError(f"AnomalyGPT takes exactly one query image, the request has {len(queries)}")
        inputs = {
            "prompt": "".join(p["text"] for p in parts if p["type"] == "text"),
            "image_paths": queries,
            "normal_img_paths": [p["path"] for p in parts if p["type"] == "image" and p.get("role") == "template"],
            "audio_paths": [], "video_paths": [], "thermal_paths": [],
            "top_p": float(settings.get("top_p", 0.1)),
            "temperature": float(settings.get("temperature", 0.01)),
            "max_tgt_len": int(settings.get("max_tgt_len", 50)),
            "modality_embeds": [],
        }
        torch = self.torch
        seed = int(request.get("seed", 0))
        torch.manual_seed(seed)
        torch.cuda.manual_seed_all(seed)
        with torch.no_grad():
            text, pixel_map = self.model.generate(inputs, web_demo=bool(settings.get("web_demo", False)))
        pixel_map = pixel_map.detach().cpu().float()
        return {"text": text, "map": pixel_map, "image_score": float(pixel_map.max()), "meta": {"seed": seed}}
