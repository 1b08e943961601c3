"""PEFT adapters on a loaded base model: ``-M adapter=PATH``, and swapping adapters between evaluations.

A LoRA checkpoint (``adapter_config.json`` + ``adapter_model.safetensors``, as ``peft`` and the
transformers Trainer save it) is applied with the ``peft`` library, which injects its layers into the
base model in place: the model object the rest of the family calls then runs with the adapter, so
prompting, scoring and generation need not know. LLaVA-style trainings also save the layers they trained
outright (the projector) beside the adapter, in ``non_lora_trainables.bin``; those tensors are copied
into the base and put back when the adapter is swapped out.

:class:`AdapterSlot` holds one base with at most one adapter active: ``use(path)`` loads the next
adapter, activates it and drops the previous one, so a series of checkpoints costs one base load
(``mmeval watch``). ``use(None)`` returns to the plain base.

torch and peft are imported inside the functions: the CLI imports this package for --help.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmeval.model_adapters.base import AdapterError

ADAPTER_CONFIG = "adapter_config.json"
PROJECTOR_FILE = "non_lora_trainables.bin"
#: prefixes LLaVA's training scripts put before the model's own parameter names
_WRAPPER_PREFIXES = ("base_model.model.", "module.")
#: LLaVA's original projector names and the transformers LLaVA classes' names for the same layers
_PROJECTOR_RENAMES = (("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
                      ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
                      ("mm_projector.0.", "multi_modal_projector.linear_1."),
                      ("mm_projector.2.", "multi_modal_projector.linear_2."))


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(path: str | Path) -> str | None:
    """The base model the adapter was trained on, as its ``adapter_config.json`` names it (None: not named)."""
    try:
        config = json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{Path(path) / ADAPTER_CONFIG}: cannot read it ({exc})") from None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    return base if isinstance(base, str) and base else None


def _import_peft() -> Any:
    try:
        import peft
    except ImportError:
        raise AdapterError("PEFT adapters need the peft package: pip install 'mmeval[train]'") from None
    return peft


def projector_tensors(path: Path, model: Any) -> dict[str, Any]:
    """``non_lora_trainables.bin`` as the model's own parameter names -> tensors (empty without the file).

    Names are matched after dropping the training wrapper's prefixes, then through LLaVA's projector
    renames; a tensor that matches no parameter, or whose shape differs, is an error naming it.
    """
    import torch

    file = path / PROJECTOR_FILE
    if not file.is_file():
        return {}
    try:
        raw = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file is a message, not a traceback
        raise AdapterError(f"{file}: cannot read it ({type(exc).__name__}: {exc})") from None
    params = dict(model.named_parameters())
    out: dict[str, Any] = {}
    for key, tensor in raw.items():
        name = key
        for prefix in _WRAPPER_PREFIXES:
            name = name.removeprefix(prefix)
        candidates = [name] + [name.replace(old, new, 1) for old, new in _PROJECTOR_RENAMES if name.startswith(old)]
        found = next((c for c in candidates if c in params), None)
        if found is None:
            raise AdapterError(f"{file}: tensor '{key}' matches no parameter of the base model (is it the base the "
                               "adapter was trained on?)")
        if tuple(params[found].shape) != tuple(tensor.shape):
            raise AdapterError(f"{file}: tensor '{key}' has shape {tuple(tensor.shape)}, the base's '{found}' "
                               f"{tuple(params[found].shape)} (is it the base the adapter was trained on?)")
        out[found] = tensor
    return out


class AdapterSlot:
    """A base model with at most one PEFT adapter active; see the module docstring."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.peft: Any = None
        self.active: str | None = None  # the adapter folder in use
        self._name: str | None = None
        self._loaded = 0
        self._originals: dict[str, Any] = {}  # base tensors a projector file replaced

    def use(self, path: str | Path | None) -> None:
        """Make the adapter at ``path`` the only one in effect (None: the plain base)."""
        key = str(Path(path).resolve()) if path is not None else None
        if key == self.active:
            return
        self._restore()
        if key is None:
            if self.peft is not None:
                self._drop(self._name)
                self._name = None
            self.active = None
            return
        where = Path(key)
        if not is_adapter(where):
            raise AdapterError(f"-M adapter={path}: no {ADAPTER_CONFIG} there (not a PEFT adapter folder)")
        previous = self._name
        self._loaded += 1
        name = f"adapter{self._loaded}"
        try:
            if self.peft is None:
                self.peft = _import_peft().PeftModel.from_pretrained(self.model, key, adapter_name=name,
                                                                     is_trainable=False)
            else:
                self.peft.load_adapter(key, adapter_name=name, is_trainable=False)
                self.peft.set_adapter(name)
                self.peft.base_model.enable_adapter_layers()
        except AdapterError:
            raise
        except Exception as exc:  # noqa: BLE001 - every loading failure becomes a message
            raise AdapterError(f"-M adapter={path}: cannot apply it to the base model ({type(exc).__name__}: "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); is it an adapter "
                               "for this base?") from None
        self._drop(previous)
        self._name, self.active = name, key
        self._apply(projector_tensors(where, self.model))
        self.model.eval()

    def _drop(self, name: str | None) -> None:
        if name is None or self.peft is None:
            return
        if len(self.peft.peft_config) > 1:
            self.peft.delete_adapter(name)
        else:  # peft keeps at least one adapter: switch its layers off instead
            self.peft.base_model.disable_adapter_layers()

    def _apply(self, tensors: dict[str, Any]) -> None:
        import torch

        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, tensor in tensors.items():
                param = params[name]
                self._originals[name] = param.detach().clone()
                param.copy_(tensor.to(device=param.device, dtype=param.dtype))

    def _restore(self) -> None:
        import torch

        if not self._originals:
            return
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, tensor in self._originals.items():
                params[name].copy_(tensor)
        self._originals = {}


def attach(model: Any, path: str) -> AdapterSlot:
    """The base ``model`` with the adapter at ``path`` applied (the loading hook of ``-M adapter=PATH``)."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise AdapterError(f"-M adapter={path}: no such directory")
    slot = AdapterSlot(model)
    slot.use(p)
    return slot
