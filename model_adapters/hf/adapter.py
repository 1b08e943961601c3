"""Local image-text-to-text models through transformers: ``--model hf:PATH_OR_HUB_ID``.

The checkpoint's own processor and chat template build every prompt: the neutral message becomes one
user turn whose content list holds ``{"type": "text"}`` and ``{"type": "image"}`` items in reading
order, and the images (PIL, RGB) go to ``processor(images=[...], text=...)``, which inserts the
model's image tokens itself. Nothing here hand-builds image tokens.

Two answer modes (``--answer-mode``):

- ``generate``: greedy decoding of a short answer; the engine extracts the letter from the text.
- ``likelihood``: the option whose continuation (its letter, or its full text with
  ``-M likelihood_target=options``) is most probable after the prompt wins; the response carries
  ``scores = {letter: log-prob}``. The continuation is scored as the tokenizer really splits
  ``prompt + continuation`` (so ``" A"`` after ``ASSISTANT:``, ``"A"`` after a newline).

Speed: questions are batched (``--batch-size``). With ``-M prefix_reuse=true`` (default) the part every
question about one image shares (instruction, templates, query image: ``Message.prefix_len``) is run
through the model once, vision tower included, and its KV cache is expanded over that image's
questions, so each question only costs its own few tokens. Without it, whole prompts are batched
(right padding for scoring, left padding for generation, sorted by length).

Presets (``-M preset=...``, or ``--model llava:PATH``; see ``model_adapters/hf/presets.py``) pin the model
class and the conventions of a family; ``auto`` picks one from the checkpoint's ``model_type``.

Heavy imports (torch, transformers) happen inside methods: the CLI imports this module for --help.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from mmeval.model_adapters.base import AdapterError, AdapterSettings, ModelAdapter
from mmeval.model_adapters.hf.presets import Preset, PresetName, all_presets
from mmeval.prompting.messages import Part, Request, Response, TextPart, to_hf_conversation

#: replaces the question in a second rendering of the prompt, to find where the shared prefix ends
_SPLIT_MARK = "\u2063MMEVAL-QUESTION-STARTS-HERE\u2063"


class HFOptions(BaseModel):
    """Options of the ``hf`` (and ``llava``) model family (``--model-arg KEY=VALUE``).

    The answer mode is the run's (``--answer-mode``): generate greedy-decodes a short answer that the
    engine parses; likelihood runs one forward pass and the option with the highest log-probability wins.
    """

    model_config = ConfigDict(extra="forbid")

    likelihood_target: Literal["letters", "options"] = Field(
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
    trust_remote_code: bool = Field(
        False, description="allow checkpoints that ship their own modelling code (that code runs on this machine)")


# --------------------------------------------------------------------------------------------------
# small helpers (no torch)


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _part_key(p: Part) -> tuple[str, str]:
    return ("t", p.text) if isinstance(p, TextPart) else ("i", p.path)


def image_only_processor_class(cls: type) -> type:
    """A subclass of a processor class that needs no video processor.

    Processors of video-capable models (LLaVA-OneVision, Qwen2-VL ...) insist on a video processor,
    which transformers can only build with torchvision installed. Images never need it, so this
    subclass drops that argument. transformers reads a processor's settings off its ``__init__``
    signature (to load and to save them), so the subclass gets a real one: the parent's, less
    ``video_processor``. It keeps the class name, so what it saves loads normally elsewhere.
    """
    sig = inspect.signature(cls.__init__)
    if "video_processor" not in sig.parameters:
        return cls
    names = [n for n, p in sig.parameters.items()
             if n not in ("self", "video_processor") and p.kind is p.POSITIONAL_OR_KEYWORD]
    defaults = {n: sig.parameters[n].default for n in names}
    src = (f"def __init__(self, {', '.join(f'{n}=_defaults[{n!r}]' for n in names)}, **kwargs):\n"
           f"    _parent.__init__(self, {', '.join(f'{n}={n}' for n in names)}, video_processor=None, **kwargs)\n")
    scope: dict[str, Any] = {"_defaults": defaults, "_parent": cls}
    exec(src, scope)  # noqa: S102 - generated from the parent's own signature, no outside input
    return type(cls.__name__, (cls,), {"__init__": scope["__init__"], "__module__": __name__,
                                       "__doc__": f"{cls.__name__} without a video processor"})


@dataclass
class _Item:
    """One request, rendered."""

    req: Request
    text: str  # the whole prompt, generation prompt included
    images: list[str]
    prefix_text: str | None = None  # the prompt up to where the question starts (reusable prefix)
    prefix_key: tuple | None = None
    sep: str = " "  # what goes between the prompt and an answer letter
    raw: list[int] = field(default_factory=list)  # token ids of text, image placeholders unexpanded
    # option letter -> (prompt tokens kept before the continuation, continuation tokens)
    targets: dict[str, tuple[int, list[int]]] = field(default_factory=dict)


@dataclass
class _Job:
    """Scoring of one item against a context: seq(o) = rest[:keep(o)] + targets(o)."""

    item: _Item
    rest: list[int]
    opts: dict[str, tuple[int, list[int]]]

    @property
    def shared_row(self) -> bool:
        """Every option is one token right after the whole rest: one row answers them all."""
        return all(keep == len(self.rest) and len(t) == 1 for keep, t in self.opts.values())


class _Timer:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> _Timer:
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._t


# --------------------------------------------------------------------------------------------------
# the adapter


class HFAdapter(ModelAdapter):
    """Any transformers image-text-to-text model with a processor and a chat template."""

    family: ClassVar[str] = "hf"
    Options: ClassVar[type[BaseModel]] = HFOptions
    answer_modes = ("generate", "likelihood")
    default_batch_size = 8
    #: presets this family may use (None: all); ``auto`` only picks among them
    preset_names: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, name: str, options: BaseModel | None = None, settings: AdapterSettings | None = None) -> None:
        super().__init__(name, options, settings)
        self.opts: HFOptions = self.options  # type: ignore[assignment]
        self._images: OrderedDict[str, Any] = OrderedDict()
        self._marked: dict[tuple, str] = {}  # prefix parts -> prompt rendered with a mark where the question starts
        self.stats = {"questions": 0, "prompt_tokens": 0, "reused_prefix_tokens": 0, "completion_tokens": 0,
                      "model_calls": 0}
        self.model_timer = _Timer()
        self._load()

    # ---------------------------------------------------------------------------------------- loading

    def _load(self) -> None:
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise AdapterError(f"the '{self.family}' model family needs torch and transformers: "
                               "pip install 'mmeval[hf]' (keep torch pinned, see README)") from exc
        self._torch = torch
        path = self._locate()
        config = self._config(path)
        self.preset = self._pick_preset(config)
        self.device, device_map = self._placement()
        self.dtype = self._dtype()
        quant = self._quantization()
        # the processor first: its problems (no chat template ...) surface before minutes of weight loading
        self.processor = self._processor(path, config)
        self.tok = self.processor.tokenizer
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        model_cls = self._model_class(config)
        kwargs: dict[str, Any] = {"dtype": self.dtype, "trust_remote_code": self.opts.trust_remote_code}
        if device_map is not None:
            kwargs["device_map"] = device_map
        if quant is not None:
            kwargs["quantization_config"] = quant
        try:
            model = model_cls.from_pretrained(path, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every loading failure becomes a message
            raise self._load_error(exc, "model weights") from exc
        if device_map is None:
            model.to(self.device)
        self.model = model.eval()
        self.input_device = self.model.get_input_embeddings().weight.device
        self._probe_specials()
        fwd = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in fwd else "past_key_values"
        self.image_token_id = self._image_token_id(config)
        self.transformers_version = transformers.__version__

    def _locate(self) -> str:
        """A local directory, or a hub id; a path that does not exist is an error here, not later."""
        name = self.name
        p = Path(name).expanduser()
        if p.exists():
            if not p.is_dir():
                raise AdapterError(f"--model {self.family}:{name}: '{p}' is a file; give the checkpoint's directory "
                                   "(the one holding config.json)")
            return str(p.resolve())
        looks_like_path = (name.startswith(("/", "./", "../", "~", "\\")) or name.count("/") > 1
                           or os.sep != "/" and os.sep in name or name.endswith("/"))
        if looks_like_path:
            raise AdapterError(f"--model {self.family}:{name}: no such directory '{p}'. Give the directory holding "
                               "the checkpoint's config.json, or a hub id such as llava-hf/llava-1.5-7b-hf")
        return name

    def _config(self, path: str) -> Any:
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(path, trust_remote_code=self.opts.trust_remote_code)
        except Exception as exc:  # noqa: BLE001
            raise self._load_error(exc, "config") from exc

    def _load_error(self, exc: BaseException, what: str) -> AdapterError:
        """Turn a transformers/torch loading failure into a message that says what to do."""
        import transformers

        torch = self._torch
        msg = str(exc).strip().splitlines()[0].rstrip(". ") if str(exc).strip() else type(exc).__name__
        where = f"--model {self.family}:{self.name}"
        if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower():
            return AdapterError(
                f"{where}: out of memory while loading the {what} on {self.device}. Try -M dtype=bf16 (or fp16), "
                "-M quantize=4bit (CUDA + bitsandbytes), a smaller checkpoint, or a machine with more memory; with "
                "several GPUs run one process (device_map='auto' spreads the layers over all visible GPUs)")
        if "does not recognize this architecture" in str(exc) or "model type" in msg and "recognize" in msg:
            return AdapterError(
                f"{where}: transformers {transformers.__version__} does not know this architecture ({msg}). "
                "Upgrade transformers (pip install -U 'transformers<6'), or pass -M trust_remote_code=true if the "
                "checkpoint ships its own modelling code")
        if "Unrecognized configuration class" in str(exc) or "Unrecognized processing class" in str(exc):
            return AdapterError(
                f"{where}: this architecture is not an image-text-to-text model in transformers "
                f"{transformers.__version__} ({msg}). Use a vision-language checkpoint (LLaVA, LLaVA-NeXT, "
                "LLaVA-OneVision, Qwen2-VL ...), or -M trust_remote_code=true if it ships its own code")
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
        if isinstance(exc, OSError) or "not a local folder" in msg or "Repository Not Found" in str(exc):
            hint = (" The hub is switched off (HF_HUB_OFFLINE=1): download the checkpoint first "
                    f"(hf download {self.name}) or give a local directory." if offline else
                    " Check the hub id or the directory; a local checkpoint directory needs config.json, the "
                    "weights, and the processor/tokenizer files.")
            return AdapterError(f"{where}: cannot load the {what}: {msg}.{hint}")
        return AdapterError(f"{where}: cannot load the {what}: {type(exc).__name__}: {msg}")

    def _pick_preset(self, config: Any) -> Preset:
        presets = all_presets()
        allowed = self.preset_names or tuple(presets)
        model_type = getattr(config, "model_type", "")
        choice = self.opts.preset
        if choice == "auto":
            for name in allowed:
                if model_type in presets[name].model_types:
                    return presets[name]
            if "generic" in allowed:
                return presets["generic"]
            raise AdapterError(
                f"--model {self.family}:{self.name}: model_type '{model_type}' is not one of the {self.family} "
                f"presets ({', '.join(allowed)} cover "
                f"{', '.join(t for n in allowed for t in presets[n].model_types)}); use --model hf:{self.name}")
        if choice not in allowed:
            raise AdapterError(f"--model-arg preset={choice} is not available for --model {self.family}:...; "
                               f"choose one of: auto, {', '.join(allowed)}")
        return presets[choice]

    def _placement(self) -> tuple[Any, Any]:
        """(device of the inputs, device_map): one GPU per process under a launcher, else 'auto'."""
        torch = self._torch
        from mmeval.launch import rank_and_world

        rank, world = rank_and_world()
        if torch.cuda.is_available():
            if world > 1:
                local = int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count()
                torch.cuda.set_device(local)
                return torch.device("cuda", local), {"": local}
            return torch.device("cuda", 0), "auto"
        if world > 1 and "OMP_NUM_THREADS" not in os.environ:
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
        return torch.device("cpu"), None

    def _dtype(self) -> Any:
        torch = self._torch
        choice = self.opts.dtype
        if choice == "auto":
            if self.device.type == "cuda":
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.float32
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[choice]

    def _quantization(self) -> Any:
        if self.opts.quantize == "none":
            return None
        bits = self.opts.quantize[0]
        need = f"{bits}-bit loading needs a CUDA GPU and `pip install bitsandbytes`"
        if self.device.type != "cuda":
            raise AdapterError(f"-M quantize={self.opts.quantize}: {need} (no CUDA GPU is visible); "
                               "drop -M quantize to run unquantised")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise AdapterError(f"-M quantize={self.opts.quantize}: {need} (bitsandbytes is not installed)") from None
        from transformers import BitsAndBytesConfig

        if bits == "4":
            return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=self.dtype, bnb_4bit_quant_type="nf4")
        return BitsAndBytesConfig(load_in_8bit=True)

    def _model_class(self, config: Any) -> Any:
        import transformers

        if self.preset.model_class:
            return getattr(transformers, self.preset.model_class)
        return transformers.AutoModelForImageTextToText

    def _processor(self, path: str, config: Any) -> Any:
        from transformers import AutoProcessor

        try:
            proc = AutoProcessor.from_pretrained(path, trust_remote_code=self.opts.trust_remote_code)
        except Exception as exc:  # noqa: BLE001
            proc = self._image_only_processor(path, config)
            if proc is None:
                raise self._load_error(exc, "processor") from exc
        if not hasattr(proc, "tokenizer") or not (hasattr(proc, "image_processor") or hasattr(proc, "image_token")):
            raise AdapterError(
                f"--model {self.family}:{self.name}: its processor ({type(proc).__name__}) handles no images, so "
                "this is not an image-text-to-text checkpoint (or its processor files are missing)")
        template = getattr(proc, "chat_template", None) or getattr(proc.tokenizer, "chat_template", None)
        if template and not getattr(proc, "chat_template", None):
            proc.chat_template = template  # some checkpoints keep it with the tokenizer only
        if not template:
            template = self.preset.chat_template
            if not template:
                raise AdapterError(
                    f"--model {self.family}:{self.name}: the processor has no chat template, so the prompt cannot be "
                    "built the way the model was trained. Copy the original checkpoint's chat_template.jinja (or "
                    "chat_template.json) into the model directory, or choose a preset that brings one "
                    "(-M preset=llava for LLaVA-1.5, llava-onevision for LLaVA-OneVision)")
            proc.chat_template = template
        return proc

    def _image_only_processor(self, path: str, config: Any) -> Any:
        """Load the processor without its video processor (transformers needs torchvision for one)."""
        import transformers
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES
        from transformers.utils import cached_file

        name = None
        try:
            f = cached_file(path, "processor_config.json", _raise_exceptions_for_missing_entries=False)
            name = json.loads(Path(f).read_text(encoding="utf-8")).get("processor_class") if f else None
        except Exception:  # noqa: BLE001
            pass
        name = name or PROCESSOR_MAPPING_NAMES.get(getattr(config, "model_type", ""))
        cls = getattr(transformers, name, None) if isinstance(name, str) else None
        if cls is None or "video_processor" not in inspect.signature(cls.__init__).parameters:
            return None
        try:
            return image_only_processor_class(cls).from_pretrained(path, trust_remote_code=self.opts.trust_remote_code)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            return None

    def _probe_specials(self) -> None:
        """How the processor tokenises text: with special tokens or not, and any tokens it appends."""
        tok = self.tok
        with_sp = tok("x y", add_special_tokens=True)["input_ids"]
        plain = tok("x y", add_special_tokens=False)["input_ids"]
        try:
            via_proc = list(self.processor(text=["x y"])["input_ids"][0])
        except Exception:  # noqa: BLE001 - a processor that insists on images: assume the tokenizer default
            via_proc = with_sp
        self._add_specials = via_proc != plain
        ids = with_sp if self._add_specials else plain
        start = next((i for i in range(len(ids)) if ids[i:i + len(plain)] == plain), 0)
        self._n_tail = max(0, len(ids) - start - len(plain))

    def _image_token_id(self, config: Any) -> int | None:
        for src in (self.processor, config):
            for attr in ("image_token_id", "image_token_index"):
                v = getattr(src, attr, None)
                if isinstance(v, int):
                    return v
        return None

    # --------------------------------------------------------------------------------------- prompts

    def _render(self, parts: Sequence[Part]) -> str:
        return self.processor.apply_chat_template(to_hf_conversation(parts), add_generation_prompt=True, tokenize=False)

    def _encode(self, text: str) -> list[int]:
        return self._encode_many([text])[0]

    def _encode_many(self, texts: list[str], specials: bool | None = None) -> list[list[int]]:
        """Token ids as the processor would produce them for these texts (image placeholders unexpanded)."""
        specials = self._add_specials if specials is None else specials
        batch = self.tok(texts, add_special_tokens=specials)["input_ids"]
        tail = self._n_tail if specials else 0
        return [list(ids[: len(ids) - tail] if tail else ids) for ids in batch]

    def _image(self, path: str) -> Any:
        from PIL import Image

        img = self._images.get(path)
        if img is None:
            with Image.open(path) as im:
                img = im.convert("RGB")
            self._images[path] = img
            if len(self._images) > 64:
                self._images.popitem(last=False)
        else:
            self._images.move_to_end(path)
        return img

    def _prepare(self, req: Request) -> _Item:
        parts = req.message.parts
        text = self._render(parts)
        item = _Item(req=req, text=text, images=[p.path for p in req.message.images])
        for path in item.images:  # an unreadable image fails this question only, here
            self._image(path)
        n = req.message.prefix_len
        if 0 < n < len(parts) and all(isinstance(p, TextPart) for p in parts[n:]):
            key = tuple(_part_key(p) for p in parts[:n])
            marked = self._marked.get(key)
            if marked is None:  # the same for every question of the image: rendered once
                if len(self._marked) > 256:
                    self._marked.clear()
                marked = self._marked[key] = self._render([*parts[:n], TextPart(text=_SPLIT_MARK)])
            cut = marked.find(_SPLIT_MARK)
            if cut > 0 and marked[:cut] == text[:cut]:
                item.prefix_text = text[:cut]
                item.prefix_key = (text[:cut], key)
        if self.preset.answer_prefix is not None:
            item.sep = self.preset.answer_prefix
        else:
            item.sep = "" if text[-1:].isspace() else " "
        return item

    def _add_targets(self, item: _Item) -> None:
        """Tokens of each option's continuation, as the tokenizer splits prompt + continuation."""
        conts = [item.sep + (letter if self.opts.likelihood_target == "letters" else option)
                 for letter, option in item.req.options.items()]
        item.raw = self._encode(item.text)
        # Only the end of the prompt can merge with a continuation, so the continuations are tokenised
        # after the start of the question (a token boundary of the rendered prompt), not from the top.
        start = len(item.prefix_text) if item.prefix_text else 0
        tail = item.text[start:]
        specials = self._add_specials and start == 0
        tail_ids, *fulls = self._encode_many([tail, *(tail + c for c in conts)], specials=specials)
        for letter, full in zip(item.req.options, fulls):
            k = _lcp(tail_ids, full)
            targets = full[k:]
            if not targets:
                raise AdapterError(f"option {letter} of question {item.req.id} has an empty continuation")
            item.targets[letter] = (len(item.raw) - (len(tail_ids) - k), targets)

    # ------------------------------------------------------------------------------------ torch utils

    def _process(self, images: list[list[str]], texts: list[str], padding_side: str = "right") -> Any:
        """Processor output for a batch, on the model's device, floats in the model's dtype."""
        torch = self._torch
        self.tok.padding_side = padding_side
        imgs = [[self._image(p) for p in group] for group in images]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if any(imgs):
            kwargs["images"] = imgs
        batch = self.processor(**kwargs)
        out = {}
        for k, v in batch.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self.input_device, dtype=self.dtype) if v.is_floating_point() else v.to(self.input_device)
            out[k] = v
        if self._n_tail:  # drop tokens the tokenizer appends after the text (e.g. an EOS)
            if padding_side == "left" or len(texts) == 1:
                out = self._cut(out, self._n_tail)
            else:
                lengths = out["attention_mask"].sum(1) - self._n_tail
                keep = torch.arange(out["input_ids"].shape[1], device=self.input_device)[None, :] < lengths[:, None]
                out["attention_mask"] = out["attention_mask"] * keep
        return out

    @staticmethod
    def _cut(inputs: dict[str, Any], n: int) -> dict[str, Any]:
        """Drop the last n tokens of a processed batch (every per-token tensor, e.g. mm_token_type_ids too)."""
        if n <= 0:
            return inputs
        shape = tuple(inputs["input_ids"].shape)
        return {k: v[:, :-n] if getattr(v, "shape", None) is not None and tuple(v.shape) == shape else v
                for k, v in inputs.items()}

    def _call(self, **kwargs: Any) -> Any:
        self.stats["model_calls"] += 1
        with self.model_timer:
            return self.model(**kwargs)

    def _forward(self, inputs: dict[str, Any], cache: Any = None, **kwargs: Any) -> Any:
        if cache is not None:
            kwargs[self._cache_kw] = cache
        return self._call(**inputs, **kwargs)

    @staticmethod
    def _cache_of(out: Any) -> Any:
        cache = getattr(out, "cache", None)
        return cache if cache is not None else getattr(out, "past_key_values", None)

    @staticmethod
    def _expand(cache: Any, n: int) -> Any:
        """A batch-n cache over a batch-1 one, leaving the original untouched for the next questions.

        Dynamic layers only ever replace their tensors (``torch.cat``), never write into them, so broadcast
        views suffice: the prefix is copied once, by the model's own concatenation. Other cache types get
        a deep copy.
        """
        from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

        layers = getattr(cache, "layers", None)
        if layers and all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers):
            new = copy.copy(cache)
            new.layers = []
            for layer in layers:
                clone = copy.copy(layer)
                if getattr(layer, "keys", None) is not None and layer.keys.numel():
                    clone.keys = layer.keys.expand(n, *layer.keys.shape[1:])
                    clone.values = layer.values.expand(n, *layer.values.shape[1:])
                new.layers.append(clone)
            return new
        new = copy.deepcopy(cache)
        if n > 1:
            new.batch_repeat_interleave(n)
        return new

    def _is_oom(self, exc: BaseException) -> bool:
        return isinstance(exc, self._torch.cuda.OutOfMemoryError) or (
            isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())

    def _split_on_oom(self, fn: Any, items: list) -> Iterator:
        """Run fn(items); on out-of-memory, halve the batch and retry (down to one item)."""
        try:
            yield from fn(items)
            return
        except Exception as exc:  # noqa: BLE001
            if not self._is_oom(exc):
                raise
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()
        if len(items) == 1:
            raise AdapterError(f"out of memory on a single question on {self.device}: use -M dtype=bf16 or "
                               "-M quantize=4bit, a smaller model, or a larger GPU")
        half = len(items) // 2
        yield from self._split_on_oom(fn, items[:half])
        yield from self._split_on_oom(fn, items[half:])

    def _chunks(self, items: list, owner: Any = None) -> Iterator[list]:
        """Batches of at most --batch-size; batch-invariant: one owner (question) per batch."""
        if self.opts.batch_invariant:
            start = 0
            for i in range(1, len(items) + 1):
                if i == len(items) or (owner(items[i]) if owner else i) != (owner(items[start]) if owner else start):
                    yield items[start:i]
                    start = i
            return
        for start in range(0, len(items), self.batch_size):
            yield items[start:start + self.batch_size]

    # -------------------------------------------------------------------------------------- predict

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        items: list[_Item] = []
        for req in batch:
            try:
                items.append(self._prepare(req))
            except (OSError, ValueError) as exc:
                yield Response(id=req.id, error=f"{type(exc).__name__}: {exc}")
        with self._torch.inference_mode():
            if self.answer_mode == "likelihood":
                yield from self._likelihood(items)
            else:
                yield from self._generate(items)

    def _groups(self, items: list[_Item]) -> tuple[list[list[_Item]], list[_Item]]:
        """(groups of items sharing a reusable prefix, items run whole)."""
        if not self.opts.prefix_reuse:
            return [], list(items)
        groups: dict[tuple, list[_Item]] = {}
        whole: list[_Item] = []
        for it in items:
            if it.prefix_key is None:
                whole.append(it)
            else:
                groups.setdefault(it.prefix_key, []).append(it)
        return list(groups.values()), whole

    def _prefix_context(self, group: list[_Item]) -> tuple[dict[str, Any], list[list[int]]] | None:
        """Processor output of the shared prefix, and each item's tokens after it (None: cannot split)."""
        first = group[0]
        raw_prefix = self._encode(first.prefix_text or "")
        splits = [_lcp(it.raw or self._encode(it.text), raw_prefix) for it in group]
        k = min(splits)
        rests = [(it.raw or self._encode(it.text))[k:] for it in group]
        if any(not r for r in rests) or (self.image_token_id is not None
                                         and any(self.image_token_id in r for r in rests)):
            return None
        drop = len(raw_prefix) - k
        if self.image_token_id is not None and self.image_token_id in raw_prefix[k:]:
            return None
        ctx = self._cut(self._process([first.images], [first.prefix_text or ""]), drop)
        return ctx, rests

    # likelihood ------------------------------------------------------------------------------------

    def _likelihood(self, items: list[_Item]) -> Iterator[Response]:
        for it in items:
            self._add_targets(it)
        groups, whole = self._groups(items)
        for group in groups:
            split = self._prefix_context(group)
            if split is None:
                whole.extend(group)
                continue
            ctx, rests = split
            ctx_len = int(ctx["input_ids"].shape[1])
            jobs = []
            for it, rest in zip(group, rests):
                base = len(it.raw) - len(rest)  # raw tokens before the rest
                jobs.append(_Job(it, rest, {o: (k - base, t) for o, (k, t) in it.targets.items()}))
            if any(keep < 0 for job in jobs for keep, _ in job.opts.values()):  # an answer merges into the prefix
                whole.extend(group)
                continue
            scores = self._score_context(ctx, jobs)
            for job in jobs:
                yield self._scored(job.item, scores[job.item.req.id], ctx_len + len(job.rest), reused=ctx_len)
        single = [it for it in whole if all(k == len(it.raw) and len(t) == 1 for k, t in it.targets.values())]
        multi = [it for it in whole if all(it is not s for s in single)]
        single.sort(key=lambda it: len(it.raw))
        for chunk in self._chunks(single):
            yield from self._split_on_oom(self._score_last, chunk)
        for it in multi:
            keep = min(k for k, _ in it.targets.values())
            ctx = self._cut(self._process([it.images], [it.text]), len(it.raw) - keep)
            job = _Job(it, it.raw[keep:], {o: (k - keep, t) for o, (k, t) in it.targets.items()})
            scores = self._score_context(ctx, [job])
            yield self._scored(it, scores[it.req.id], int(ctx["input_ids"].shape[1]) + len(job.rest))

    def _scored(self, item: _Item, scores: dict[str, float], prompt_tokens: int, reused: int = 0) -> Response:
        self.stats["questions"] += 1
        self.stats["prompt_tokens"] += prompt_tokens
        self.stats["reused_prefix_tokens"] += reused
        best = max(scores, key=lambda k: scores[k])
        return Response(id=item.req.id, text=best, scores=scores,
                        usage={"prompt_tokens": prompt_tokens, "completion_tokens": 0})

    def _score_last(self, chunk: list[_Item]) -> Iterator[Response]:
        """Whole prompts in one right-padded batch; every option is the next token after the prompt."""
        torch = self._torch
        inputs = self._process([it.images for it in chunk], [it.text for it in chunk])
        last = inputs["attention_mask"].sum(1) - 1
        keep = torch.unique(last)
        out = self._forward(inputs, use_cache=False, logits_to_keep=keep)
        col = torch.searchsorted(keep, last)
        logp = torch.log_softmax(out.logits[torch.arange(len(chunk), device=col.device), col].float(), dim=-1)
        for i, it in enumerate(chunk):
            scores = {o: float(logp[i, t[0]]) for o, (_, t) in it.targets.items()}
            yield self._scored(it, scores, int(last[i]) + 1)

    def _score_context(self, ctx: dict[str, Any], jobs: list[_Job]) -> dict[str, dict[str, float]]:
        """Run a batch-1 context once (images included), then every continuation row against its cache."""
        torch = self._torch
        out = self._forward(ctx, use_cache=True, logits_to_keep=1)
        cache = self._cache_of(out)
        ctx_logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        rows: list[list[int]] = []
        row_owner: list[str] = []  # the request id each row belongs to
        # (row index or -1 for the context's last position, position in row, token, request id, option)
        queries: list[tuple[int, int, int, str, str]] = []
        for job in jobs:
            rid = job.item.req.id
            if job.shared_row:
                r = -1
                if job.rest:
                    rows.append(job.rest)
                    row_owner.append(rid)
                    r = len(rows) - 1
                for o, (_, t) in job.opts.items():
                    queries.append((r, len(job.rest) - 1, t[0], rid, o))
                continue
            for o, (keep, t) in job.opts.items():
                seq = job.rest[:keep] + t
                r = -1
                if len(seq) > 1:
                    rows.append(seq[:-1])
                    row_owner.append(rid)
                    r = len(rows) - 1
                for j in range(len(seq) - len(t), len(seq)):
                    queries.append((r if j >= 1 else -1, j - 1, seq[j], rid, o))
        scores: dict[str, dict[str, float]] = {job.item.req.id: {o: 0.0 for o in job.opts} for job in jobs}
        from_ctx = [(tok_id, rid, o) for r, _, tok_id, rid, o in queries if r == -1]
        for (_, rid, o), v in zip(from_ctx, ctx_logp[[q[0] for q in from_ctx]].tolist()):
            scores[rid][o] += v
        by_row: dict[int, list[tuple[int, int, str, str]]] = {}
        for r, pos, tok_id, rid, o in queries:
            if r >= 0:
                by_row.setdefault(r, []).append((pos, tok_id, rid, o))
        order = sorted(range(len(rows)), key=lambda r: len(rows[r]))

        def run(chunk: list[int]) -> Iterator[None]:
            # right padding after a shared, unpadded context: causal attention already keeps every real token
            # from seeing the padding, so no attention mask is needed (and positions follow from the cache)
            n, width = len(chunk), max(len(rows[r]) for r in chunk)
            ids = torch.full((n, width), self.tok.pad_token_id, dtype=torch.long)
            for i, r in enumerate(chunk):
                ids[i, : len(rows[r])] = torch.tensor(rows[r])
            positions = sorted({pos for r in chunk for pos, *_ in by_row[r]})
            keep = torch.tensor(positions, device=self.input_device)
            o_ = self._forward({"input_ids": ids.to(self.input_device)}, cache=self._expand(cache, n),
                               use_cache=True, logits_to_keep=keep)
            logp = torch.log_softmax(o_.logits.float(), dim=-1)
            col = {p: c for c, p in enumerate(positions)}
            picks = [(i, col[pos], tok_id, rid, o) for i, r in enumerate(chunk) for pos, tok_id, rid, o in by_row[r]]
            values = logp[[p[0] for p in picks], [p[1] for p in picks], [p[2] for p in picks]].tolist()
            for (_, _, _, rid, o), v in zip(picks, values):
                scores[rid][o] += v
            yield None

        if self.opts.batch_invariant:  # a question's rows together, in the order they were made
            order = sorted(order, key=lambda r: row_owner[r])
        for chunk in self._chunks(order, owner=row_owner.__getitem__):
            for _ in self._split_on_oom(run, chunk):
                pass
        return scores

    # generate --------------------------------------------------------------------------------------

    def _gen_config(self) -> Any:
        cfg = copy.deepcopy(self.model.generation_config)
        cfg.do_sample = False
        cfg.num_beams = 1
        cfg.max_new_tokens = self.opts.max_new_tokens
        cfg.temperature = cfg.top_p = cfg.top_k = None
        cfg.min_new_tokens = None
        if cfg.pad_token_id is None:
            cfg.pad_token_id = self.tok.pad_token_id
        return cfg

    def _generate_call(self, **kwargs: Any) -> Any:
        self.stats["model_calls"] += 1
        with self.model_timer:
            return self.model.generate(**kwargs, generation_config=self._gen_config())

    def _answer_text(self, item: _Item, new_ids: Any, prompt_tokens: int, reused: int = 0) -> Response:
        ids = [int(t) for t in new_ids]
        stop = {self.tok.pad_token_id, *self._eos_ids()}
        n = next((i for i, t in enumerate(ids) if t in stop), len(ids))
        text = self.tok.decode(ids[:n], skip_special_tokens=True).strip()
        self.stats["questions"] += 1
        self.stats["prompt_tokens"] += prompt_tokens
        self.stats["reused_prefix_tokens"] += reused
        self.stats["completion_tokens"] += n
        note = None
        if not text:
            note = "empty answer"
        elif n >= self.opts.max_new_tokens:
            note = f"truncated at -M max_new_tokens={self.opts.max_new_tokens}"
        return Response(id=item.req.id, text=text, note=note,
                        usage={"prompt_tokens": prompt_tokens, "completion_tokens": n})

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tok.eos_token_id
        return set(eos) if isinstance(eos, (list, tuple)) else ({eos} if eos is not None else set())

    def _generate(self, items: list[_Item]) -> Iterator[Response]:
        groups, whole = self._groups(items)
        for group in groups:
            for it in group:
                it.raw = self._encode(it.text)
            split = self._prefix_context(group)
            if split is None:
                whole.extend(group)
                continue
            ctx, rests = split
            out = self._forward(ctx, use_cache=True, logits_to_keep=1)
            cache = self._cache_of(out)
            ctx_len = int(ctx["input_ids"].shape[1])
            for it, rest in zip(group, rests):
                ids = self._torch.cat([ctx["input_ids"], self._torch.tensor([rest], device=self.input_device)], dim=1)
                gen = self._generate_call(input_ids=ids, attention_mask=self._torch.ones_like(ids),
                                          **{self._cache_kw: self._expand(cache, 1)})
                yield self._answer_text(it, gen[0, ids.shape[1]:], int(ids.shape[1]), reused=ctx_len)
        whole.sort(key=lambda it: len(it.text))
        for chunk in self._chunks(whole):
            yield from self._split_on_oom(self._generate_whole, chunk)

    def _generate_whole(self, chunk: list[_Item]) -> Iterator[Response]:
        inputs = self._process([it.images for it in chunk], [it.text for it in chunk], padding_side="left")
        gen = self._generate_call(**inputs)
        width = inputs["input_ids"].shape[1]
        for i, it in enumerate(chunk):
            yield self._answer_text(it, gen[i, width:], int(inputs["attention_mask"][i].sum()))

    # ------------------------------------------------------------------------------------------ misc

    def run_info(self) -> dict[str, object]:
        return {"model": self.name, "preset": self.preset.name, "class": type(self.model).__name__,
                "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."),
                "quantize": self.opts.quantize, "answer_mode": self.answer_mode,
                "prefix_reuse": self.opts.prefix_reuse, "model_seconds": round(self.model_timer.seconds, 3),
                "transformers": self.transformers_version, **self.stats}

    def close(self) -> None:
        self._images.clear()
        model = getattr(self, "model", None)
        if model is not None:
            del self.model
            if self._torch.cuda.is_available():
                self._torch.cuda.empty_cache()
