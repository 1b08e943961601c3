"""How a checkpoint is evaluated: the run config of its step, and the model that answers it.

``hf`` (transformers, in this process): the base is loaded once and PEFT adapters are swapped on it step
after step (:class:`mmeval.model_adapters.hf.peft_adapters.AdapterSlot`); a full checkpoint is loaded as
``hf:CHECKPOINT`` (with the base's processor and chat template when it has none of its own), the base let
go first so that two models never sit in memory at once.

``openai`` (a vLLM server started with ``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``):
the base is the served model; each adapter is loaded into the server at run time
(``POST /v1/load_lora_adapter``), asked under its own name, and unloaded afterwards. A full checkpoint
cannot be put into a running server: it is skipped with that reason.

Every step's run config is the template's with the step's model, its adapter or processor option and
``weights`` (step and digest): its run directory is an ordinary one, and its identity changes with the
weights.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mmeval.config import RunConfig, Weights
from mmeval.errors import InputError
from mmeval.model_adapters import build_adapter
from mmeval.model_adapters.base import ModelAdapter
from mmeval.run.runner import adapter_settings
from mmeval.watch.checkpoints import Checkpoint, chat_template, has_processor


class Skip(Exception):
    """This checkpoint cannot be evaluated by this backend; the message says why (recorded, not an error)."""


class HFBackend:
    """Checkpoints through transformers in this process (module docstring)."""

    family = "hf"

    def __init__(self, template: RunConfig, base: str | None) -> None:
        self.template = template
        self.base = base
        self._shared: Any = None  # the base's adapter, kept across steps

    def config(self, ckpt: Checkpoint, digest: str) -> RunConfig:
        args = dict(self.template.model_args)
        args.pop("adapter", None)
        args.pop("processor", None)
        if ckpt.kind == "full":
            model = f"hf:{ckpt.path}"
            if not has_processor(ckpt.path) and self.base:
                args["processor"] = self.base
        else:
            model = f"hf:{self.base}"
            if ckpt.kind == "adapter":
                args["adapter"] = str(ckpt.path)
                if self._own_template(ckpt.path):
                    args["processor"] = str(ckpt.path)
        return self.template.model_copy(update={"model": model, "model_args": args,
                                                "weights": Weights(step=ckpt.step, digest=digest)})

    def _own_template(self, path: Path) -> bool:
        """Whether an adapter checkpoint brings a chat template other than the base's (then it is loaded whole)."""
        own = chat_template(path)
        return own is not None and self.base is not None and own != chat_template(Path(self.base))

    def adapter(self, ckpt: Checkpoint, config: RunConfig, out: Path) -> ModelAdapter | None:
        """The model answering this step, or None for the runner to load (and let go) itself."""
        if ckpt.kind == "full" or "processor" in config.model_args:
            self.release()
            return None
        if self._shared is None:
            options = {k: v for k, v in config.adapter_options().items() if k != "adapter"}
            self._shared = build_adapter(f"hf:{self.base}", options, adapter_settings(config, out))
        from mmeval.model_adapters.hf.peft_adapters import AdapterSlot

        loaded = self._shared.loaded
        if loaded.adapters is None:
            loaded.adapters = AdapterSlot(loaded.model)
        loaded.adapters.use(ckpt.path if ckpt.kind == "adapter" else None)
        return self._shared

    def finished(self, ckpt: Checkpoint, config: RunConfig) -> None:
        """Nothing to undo: the next step swaps the adapter."""

    def release(self) -> None:
        if self._shared is not None:
            self._shared.close()
            self._shared = None


class OpenAIBackend:
    """Adapters loaded into a running vLLM server (module docstring)."""

    family = "openai"

    def __init__(self, template: RunConfig, base: str | None) -> None:
        self.template = template
        self.base = base
        options = template.adapter_options()
        url = options.get("base_url")
        if not url:
            raise InputError("--backend openai: give the server with -M base_url=http://HOST:PORT/v1")
        self.url = str(url).rstrip("/")
        self.key = os.environ.get(str(options.get("api_key_env") or "OPENAI_API_KEY"), "")

    @staticmethod
    def lora_name(ckpt: Checkpoint, digest: str) -> str:
        return f"{ckpt.path.name}-{digest[:12]}"

    def config(self, ckpt: Checkpoint, digest: str) -> RunConfig:
        if ckpt.kind == "full":
            raise Skip("a full checkpoint cannot be loaded into a running server (serve it, or watch with "
                       "--backend hf)")
        model = f"openai:{self.base}" if ckpt.kind == "base" else f"openai:{self.lora_name(ckpt, digest)}"
        return self.template.model_copy(update={"model": model, "weights": Weights(step=ckpt.step, digest=digest)})

    def adapter(self, ckpt: Checkpoint, config: RunConfig, out: Path) -> ModelAdapter | None:
        if ckpt.kind == "adapter":
            name = config.model.split(":", 1)[1]
            self._post("load_lora_adapter", {"lora_name": name, "lora_path": str(ckpt.path)}, ok_if="already")
        return None

    def finished(self, ckpt: Checkpoint, config: RunConfig) -> None:
        if ckpt.kind == "adapter":
            self._post("unload_lora_adapter", {"lora_name": config.model.split(":", 1)[1]}, ok_if="not found")

    def release(self) -> None:
        """The server keeps running; nothing is held here."""

    def _post(self, endpoint: str, body: dict[str, str], ok_if: str) -> None:
        """POST to the server's LoRA endpoint; a refusal other than ``ok_if`` is an error naming the server."""
        request = urllib.request.Request(f"{self.url}/{endpoint}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  **({"Authorization": f"Bearer {self.key}"} if self.key else {})})
        try:
            with urllib.request.urlopen(request, timeout=600) as reply:  # noqa: S310 - the user's own server URL
                reply.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            if ok_if in detail.lower():
                return
            hint = (" (start vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)"
                    if exc.code in (404, 405) else "")
            raise InputError(f"{self.url}/{endpoint}: the server refused {body.get('lora_name')} "
                             f"({exc.code}: {detail.strip()}){hint}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise InputError(f"{self.url}/{endpoint}: cannot reach the server ({exc})") from None


BACKENDS: dict[str, type[HFBackend] | type[OpenAIBackend]] = {"hf": HFBackend, "openai": OpenAIBackend}
