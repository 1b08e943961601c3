"""Loading a checkpoint: where it is, its config, the preset, device and dtype, quantization, the processor
(see :mod:`.processor`: its prompt format and how it tokenises) and the weights.

Every loading failure becomes an :class:`AdapterError` that says what to do, because a transformers
traceback rarely does. Everything the rest of the family needs to know about the loaded checkpoint is
gathered in one :class:`LoadedModel`, so prompting, scoring and generation never reach back into loading.

torch and transformers are imported inside the functions: the CLI imports this package for --help.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmeval.launch import rank_and_world
from mmeval.model_adapters.base import AdapterError
from mmeval.model_adapters.hf.options import HFOptions
from mmeval.model_adapters.hf.presets import Preset, all_presets
from mmeval.model_adapters.hf.processor import (
    PromptFormat,
    Specials,
    image_token_id,
    load_processor,
    probe_specials,
    prompt_format,
)


@dataclass(frozen=True)
class Checkpoint:
    """What the user asked to load and through which family: the family and name appear in every message."""

    family: str
    name: str
    options: HFOptions
    #: presets this family may use (None: all); ``auto`` only picks among them
    preset_names: tuple[str, ...] | None = None

    @property
    def where(self) -> str:
        return f"--model {self.family}:{self.name}"


@dataclass
class LoadedModel:
    """A loaded checkpoint and the facts about it that prompting, scoring and generation depend on."""

    model: Any
    processor: Any
    tok: Any
    preset: Preset
    device: Any
    dtype: Any
    #: where inputs go (the embeddings' device: with device_map='auto' not necessarily ``device``)
    input_device: Any
    specials: Specials
    #: where the prompt format comes from, and how it deviates from the checkpoint's own
    prompt: PromptFormat
    #: the keyword the model's forward takes a KV cache under (``cache`` or ``past_key_values``)
    cache_kw: str
    image_token_id: int | None
    transformers_version: str
    #: the PEFT adapter in effect (an ``AdapterSlot``, see :mod:`.peft_adapters`); None: the weights as loaded
    adapters: Any = None


def load(ckpt: Checkpoint) -> LoadedModel:
    """Load a checkpoint; the processor comes first, so its problems surface before minutes of weight loading."""
    _import_backend(ckpt.family)
    path, config, preset = identify(ckpt)
    device, device_map = placement()
    dtype = pick_dtype(ckpt.options.dtype, device)
    quant = quantization(ckpt.options.quantize, device, dtype)
    processor_path = processor_location(ckpt, path)
    handed = _probed.pop((processor_path, preset.name, ckpt.options.trust_remote_code), None)
    processor, prompt = handed or processor_of(ckpt, processor_path, config, preset, device)
    model = load_weights(ckpt, path, preset, dtype, device, device_map, quant)
    adapters = None
    if ckpt.options.adapter:
        from mmeval.model_adapters.hf.peft_adapters import attach

        adapters = attach(model, ckpt.options.adapter)
    return describe(model, processor, preset, device, dtype, config, prompt, adapters)


def describe(model: Any, processor: Any, preset: Preset, device: Any, dtype: Any, config: Any, prompt: PromptFormat,
             adapters: Any = None) -> LoadedModel:
    """The facts about a model and its processor that prompting, scoring and generation depend on."""
    import transformers

    tok = processor.tokenizer
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    fwd = inspect.signature(model.forward).parameters
    return LoadedModel(
        model=model, processor=processor, tok=tok, preset=preset, device=device, dtype=dtype,
        input_device=model.get_input_embeddings().weight.device, specials=probe_specials(processor),
        prompt=prompt, cache_kw="cache" if "cache" in fwd else "past_key_values",
        image_token_id=image_token_id(processor, config),
        transformers_version=transformers.__version__, adapters=adapters)


def identify(ckpt: Checkpoint) -> tuple[str, Any, Preset]:
    """Where the checkpoint is, its config and the preset it loads with."""
    path = locate(ckpt)
    config = load_config(ckpt, path)
    return path, config, pick_preset(ckpt, config)


def processor_location(ckpt: Checkpoint, path: str) -> str:
    """Where the processor is: ``-M processor`` where given (a fine-tune saved without one), else the checkpoint."""
    return locate(Checkpoint(ckpt.family, ckpt.options.processor, ckpt.options)) if ckpt.options.processor else path


#: the processor :func:`load_processor_only` loaded last, by (its location, preset, trust_remote_code): the
#: :func:`load` that follows it before a run takes it instead of reading the processor files a second time
_probed: dict[tuple[str, str, bool], tuple[Any, PromptFormat]] = {}


def load_processor_only(ckpt: Checkpoint) -> Any:
    """The checkpoint's processor with the prompt format it renders with, as :func:`load` gives it, without the
    weights (to learn what its prompts depend on before a run starts). The next :func:`load` of the same
    checkpoint takes this processor rather than loading it again."""
    _import_backend(ckpt.family)
    path, config, preset = identify(ckpt)
    processor_path = processor_location(ckpt, path)
    loaded = processor_of(ckpt, processor_path, config, preset, None)
    _probed.clear()  # one kept at most
    _probed[(processor_path, preset.name, ckpt.options.trust_remote_code)] = loaded
    return loaded[0]


def _import_backend(family: str) -> Any:
    """transformers (and torch, which it needs), or a message saying how to install them."""
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:
        raise AdapterError(f"the '{family}' model family needs torch and transformers: "
                           "pip install 'mmeval[hf]' (keep torch pinned, see README)") from exc
    return transformers


def locate(ckpt: Checkpoint) -> str:
    """A local directory, or a hub id; a path that does not exist is an error here, not later."""
    name = ckpt.name
    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir():
            raise AdapterError(f"{ckpt.where}: '{p}' is a file; give the checkpoint's directory "
                               "(the one holding config.json)")
        return str(p.resolve())
    looks_like_path = (name.startswith(("/", "./", "../", "~", "\\")) or name.count("/") > 1
                       or os.sep != "/" and os.sep in name or name.endswith("/"))
    if looks_like_path:
        raise AdapterError(f"{ckpt.where}: no such directory '{p}'. Give the directory holding "
                           "the checkpoint's config.json, or a hub id such as llava-hf/llava-1.5-7b-hf")
    return name


def load_config(ckpt: Checkpoint, path: str) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=ckpt.options.trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - every loading failure becomes a message
        raise load_error(ckpt, exc, "config") from exc


def load_error(ckpt: Checkpoint, exc: BaseException, what: str, device: Any = None) -> AdapterError:
    """Turn a transformers/torch loading failure into a message that says what to do."""
    import torch
    import transformers

    msg = str(exc).strip().splitlines()[0].rstrip(". ") if str(exc).strip() else type(exc).__name__
    where = ckpt.where
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower():
        on = f" on {device}" if device is not None else ""
        return AdapterError(
            f"{where}: out of memory while loading the {what}{on}. Try -M dtype=bf16 (or fp16), "
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
                f"(hf download {ckpt.name}) or give a local directory." if offline else
                " Check the hub id or the directory; a local checkpoint directory needs config.json, the "
                "weights, and the processor/tokenizer files.")
        return AdapterError(f"{where}: cannot load the {what}: {msg}.{hint}")
    return AdapterError(f"{where}: cannot load the {what}: {type(exc).__name__}: {msg}")


def pick_preset(ckpt: Checkpoint, config: Any) -> Preset:
    """The preset asked for, or with ``auto`` the family's first one that covers the checkpoint's model_type."""
    presets = all_presets()
    allowed = ckpt.preset_names or tuple(presets)
    model_type = getattr(config, "model_type", "")
    choice = ckpt.options.preset
    if choice == "auto":
        for name in allowed:
            if model_type in presets[name].model_types:
                return presets[name]
        if "generic" in allowed:
            return presets["generic"]
        raise AdapterError(
            f"{ckpt.where}: model_type '{model_type}' is not one of the {ckpt.family} "
            f"presets ({', '.join(allowed)} cover "
            f"{', '.join(t for n in allowed for t in presets[n].model_types)}); use --model hf:{ckpt.name}")
    if choice not in allowed:
        raise AdapterError(f"--model-arg preset={choice} is not available for --model {ckpt.family}:...; "
                           f"choose one of: auto, {', '.join(allowed)}")
    return presets[choice]


def placement() -> tuple[Any, Any]:
    """(device of the inputs, device_map): one GPU per process under a launcher, else 'auto'."""
    import torch

    rank, world = rank_and_world()
    if torch.cuda.is_available():
        if world > 1:
            local = int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count()
            torch.cuda.set_device(local)
            return torch.device("cuda", local), {"": local}
        return torch.device("cuda", 0), "auto"
    if world > 1 and "OMP_NUM_THREADS" not in os.environ:  # share the CPU cores between the processes
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return torch.device("cpu"), None


def pick_dtype(choice: str, device: Any) -> Any:
    """The weights' dtype; ``auto``: bf16 on a GPU (fp16 where bf16 is unsupported), fp32 on CPU."""
    import torch

    if choice == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[choice]


def quantization(choice: str, device: Any, dtype: Any) -> Any:
    """The bitsandbytes config for ``-M quantize`` (None: unquantised); refused early without CUDA or bitsandbytes."""
    if choice == "none":
        return None
    bits = choice[0]
    need = f"{bits}-bit loading needs a CUDA GPU and `pip install bitsandbytes`"
    if device.type != "cuda":
        raise AdapterError(f"-M quantize={choice}: {need} (no CUDA GPU is visible); "
                           "drop -M quantize to run unquantised")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise AdapterError(f"-M quantize={choice}: {need} (bitsandbytes is not installed)") from None
    from transformers import BitsAndBytesConfig

    if bits == "4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_type="nf4")
    return BitsAndBytesConfig(load_in_8bit=True)


def load_weights(ckpt: Checkpoint, path: str, preset: Preset, dtype: Any, device: Any, device_map: Any,
                 quant: Any) -> Any:
    """The model in eval mode, on ``device`` unless a device_map placed it."""
    import transformers

    model_cls = (getattr(transformers, preset.model_class) if preset.model_class
                 else transformers.AutoModelForImageTextToText)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": ckpt.options.trust_remote_code}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if quant is not None:
        kwargs["quantization_config"] = quant
    try:
        model = model_cls.from_pretrained(path, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every loading failure becomes a message
        raise load_error(ckpt, exc, "model weights", device) from exc
    if device_map is None:
        model.to(device)
    return model.eval()


def processor_of(ckpt: Checkpoint, path: str, config: Any, preset: Preset, device: Any) -> tuple[Any, PromptFormat]:
    """The checkpoint's processor, checked to handle images, with the prompt format it renders with."""
    try:
        proc = load_processor(path, config, ckpt.options.trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - every loading failure becomes a message
        raise load_error(ckpt, exc, "processor", device) from exc
    if not hasattr(proc, "tokenizer") or not (hasattr(proc, "image_processor") or hasattr(proc, "image_token")):
        raise AdapterError(
            f"{ckpt.where}: its processor ({type(proc).__name__}) handles no images, so "
            "this is not an image-text-to-text checkpoint (or its processor files are missing)")
    try:
        return proc, prompt_format(proc, preset.chat_template, preset.name)
    except AdapterError as exc:
        raise AdapterError(f"{ckpt.where}: {exc}") from None
