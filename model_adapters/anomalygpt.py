"""The ``anomalygpt`` family: AnomalyGPT (Gu et al., AAAI 2024) from its source checkout, in its own environment.

``--model anomalygpt:PATH_TO_CHECKOUT`` with ``-M python=PATH_TO_ITS_ENV/bin/python``. AnomalyGPT has no
package: its model is ``code/model/openllama.py`` of the checkout, and it needs old pinned packages, Python
3.8/3.9 and a CUDA GPU, so it runs in a worker (:mod:`mmeval.model_adapters.worker`) with the backend
:mod:`mmeval.model_adapters.worker.backends.anomalygpt`. The checkpoints sit where the authors' README
puts them unless an option says otherwise.

What AnomalyGPT is shown: the text parts of the message joined (the language model never sees images as
such; the query goes in as ``image_paths`` and the normal templates as ``normal_img_paths``, which shape
its anomaly map). An extra reference image (``--boost agent`` drawings) cannot be shown: such a
question is recorded as an error; ``--boost-arg view=text`` works. ``--prompt-style mmad-anomalygpt``
words the questions as MMAD's own AnomalyGPT script does (:mod:`mmeval.prompting.styles`).

Its anomaly map ((1, 1, 224, 224), in the frame of a 224-pixel short-side resize and centre crop of the
query) is put back into the whole image's frame: the borders the crop cut away are unknown (NaN). The
map's maximum is the image score, as in the authors' evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from mmeval.model_adapters.base import AdapterError, AdapterSettings
from mmeval.model_adapters.worker.adapter import WorkerAdapter, WorkerOptions, tiling_centres
from mmeval.model_adapters.worker.backends import BACKENDS
from mmeval.model_adapters.worker.client import WorkerSpec
from mmeval.prompting.messages import ImagePart, Request

#: the side of AnomalyGPT's square input (ImageBind's preprocessing)
SIZE = 224
DELTAS = ("train_mvtec", "train_visa", "train_supervised")
README = "https://github.com/CASIA-IVA-Lab/AnomalyGPT#readme"

#: each checkpoint's place in the checkout (as the authors' README lays it out) and where to get it
CHECKPOINTS = {
    "imagebind_ckpt": ("pretrained_ckpt/imagebind_ckpt/imagebind_huge.pth",
                       "ImageBind-huge: https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"),
    "vicuna_ckpt": ("pretrained_ckpt/vicuna_ckpt/7b_v0",
                    "Vicuna-7B v0: LLaMA-7B in Hugging Face format merged with lmsys/vicuna-7b-delta-v0 "
                    "(python -m fastchat.model.apply_delta, FastChat 0.1.10)"),
    "pandagpt_delta": ("pretrained_ckpt/pandagpt_ckpt/7b/pytorch_model.pt",
                       "PandaGPT delta: pytorch_model.pt of openllmplayground/pandagpt_7b_max_len_1024 on "
                       "Hugging Face"),
}


class AnomalyGPTOptions(WorkerOptions):
    """Where AnomalyGPT's weights are, and how it samples (MMAD's settings by default)."""

    delta: str = Field("train_mvtec", description="the AnomalyGPT delta: train_mvtec (MMAD's published row), "
                                                  "train_visa or train_supervised (CHECKOUT/code/ckpt/NAME/"
                                                  "pytorch_model.pt), or the path of a pytorch_model.pt")
    imagebind_ckpt: str | None = Field(None, description="ImageBind-huge weights (default: CHECKOUT/pretrained_ckpt/"
                                                         "imagebind_ckpt/imagebind_huge.pth)")
    vicuna_ckpt: str | None = Field(None, description="the merged Vicuna-7B v0 folder (default: CHECKOUT/"
                                                      "pretrained_ckpt/vicuna_ckpt/7b_v0)")
    pandagpt_delta: str | None = Field(None, description="the PandaGPT delta (default: CHECKOUT/pretrained_ckpt/"
                                                         "pandagpt_ckpt/7b/pytorch_model.pt)")
    top_p: float = Field(0.1, gt=0, le=1, description="nucleus sampling (AnomalyGPT always samples; MMAD: 0.1)")
    temperature: float = Field(0.01, gt=0, description="sampling temperature (MMAD: 0.01)")
    max_tgt_len: int = Field(50, ge=1, description="at most this many new tokens (MMAD: 50)")
    web_demo: bool = Field(False, description="preprocess as the web demo (the image squashed to 224x224) instead of "
                                              "the evaluation scripts' short-side resize and centre crop")


def resized_crop_frame(width: int, height: int, size: int = SIZE) -> tuple[int, int, int, int]:
    """(resized width, resized height, crop left, crop top) of a ``size`` short-side resize + centre crop.

    The arithmetic of torchvision's ``Resize(size)`` (the long side truncated) and ``CenterCrop(size)``
    (offsets rounded), which ImageBind's preprocessing applies.
    """
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    return new_w, new_h, int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))


def crop_map_to_image(grid: np.ndarray, width: int, height: int, size: int = SIZE) -> np.ndarray:
    """A map in the centre-crop frame put back into the frame of the whole image, at the resized resolution.

    The result is (resized height x resized width): its cells tile the whole image evenly, the crop's
    values in the middle, NaN (unknown) where the crop cut the image away.
    """
    grid = np.asarray(grid, dtype=np.float32).reshape(size, size)
    new_w, new_h, left, top = resized_crop_frame(width, height, size)
    full = np.full((new_h, new_w), np.nan, dtype=np.float32)
    full[top:top + size, left:left + size] = grid
    return full


class AnomalyGPTAdapter(WorkerAdapter):
    family: ClassVar[str] = "anomalygpt"
    Options: ClassVar[type[BaseModel]] = AnomalyGPTOptions
    display_name = "AnomalyGPT"
    default_batch_size = 8
    #: its language model answers in words and never names a letter (with mmeval's prompt too, almost half of its
    #: replies name no option); each such reply is read as the closest option, as MMAD's script reads them
    reading = "closest"

    def __init__(self, name: str, options: BaseModel | None = None, settings: AdapterSettings | None = None) -> None:
        super().__init__(name, options, settings)
        o: AnomalyGPTOptions = self.options  # type: ignore[assignment]
        self.o = o
        self.repo = Path(name).expanduser().resolve()
        self.paths = self._checkpoints()

    def _checkpoints(self) -> dict[str, Path]:
        """Every file AnomalyGPT needs; all missing ones named at once, each with where it comes from."""
        repo, o = self.repo, self.o
        problems = []
        if not (repo / "code" / "model" / "openllama.py").is_file():
            problems.append(f"the AnomalyGPT checkout: {repo} has no code/model/openllama.py "
                            "(git clone https://github.com/CASIA-IVA-Lab/AnomalyGPT and give its folder: "
                            "--model anomalygpt:PATH)")
        paths: dict[str, Path] = {}
        for key, (default, source) in CHECKPOINTS.items():
            given = getattr(o, key)
            paths[key] = Path(given).expanduser().resolve() if given else repo / default
            if not paths[key].exists():
                how = f"-M {key}=PATH" if given else f"put it at {repo / default} or give -M {key}=PATH"
                problems.append(f"{key}: {paths[key]} not found ({source}; {how})")
        if o.delta in DELTAS:
            paths["anomalygpt_delta"] = repo / "code" / "ckpt" / o.delta / "pytorch_model.pt"
        else:
            paths["anomalygpt_delta"] = Path(o.delta).expanduser().resolve()
        if not paths["anomalygpt_delta"].is_file():
            problems.append(f"AnomalyGPT delta '{o.delta}': {paths['anomalygpt_delta']} not found (the folder "
                            f"{o.delta if o.delta in DELTAS else 'NAME'}/ of FantasticGNU/AnomalyGPT on Hugging Face, "
                            f"into {repo / 'code' / 'ckpt'}/; -M delta= one of {', '.join(DELTAS)} or a path)")
        if not self.opts.python:
            problems.append("the environment: give AnomalyGPT's Python with -M python=PATH_TO_ENV/bin/python "
                            "(an environment with its requirements.txt installed: Python 3.8/3.9, torch 1.13.1+cu117)")
        if problems:
            raise AdapterError("AnomalyGPT cannot start; missing:\n  - " + "\n  - ".join(problems)
                               + f"\nSteps: the README's 'AnomalyGPT' section, and {README}")
        return paths

    def worker_spec(self) -> WorkerSpec:
        options: dict[str, Any] = {"repo": str(self.repo), **{k: str(v) for k, v in self.paths.items()}}
        return WorkerSpec(python=self.require_python(), backend=str(BACKENDS / "anomalygpt.py"), options=options,
                          cwd=str(self.repo / "code"), name=self.display_name, log_path=self.log_path(),
                          load_timeout=self.o.load_timeout,
                          setup_hint="\nSteps: the README's 'AnomalyGPT' section.")

    def settings_for_worker(self) -> dict[str, Any]:
        o = self.o
        return {"top_p": o.top_p, "temperature": o.temperature, "max_tgt_len": o.max_tgt_len, "web_demo": o.web_demo}

    def check_request(self, request: Request) -> str | None:
        if request.image_paths("reference"):
            return ("AnomalyGPT cannot be shown an extra reference image (the agent boost's drawing); use "
                    "--boost-arg view=text, or no agent boost")
        if len(request.image_paths("query")) != 1:
            return "AnomalyGPT takes exactly one query image"
        return None

    def map_frame(self, request: Request, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        query = next(p.path for p in request.message.parts if isinstance(p, ImagePart) and p.role == "query")
        with Image.open(query) as im:
            width, height = im.size
        full = grid.reshape(SIZE, SIZE) if self.o.web_demo else crop_map_to_image(grid, width, height)
        return full, tiling_centres(full.shape[0]), tiling_centres(full.shape[1])
