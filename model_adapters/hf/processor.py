"""The checkpoint's processor: loaded (image-only where a video processor would need torchvision), given the
prompt format it renders with, and probed for how it tokenises a prompt.

What the model sees must be what its own ``processor.apply_chat_template(..., tokenize=True)`` makes. Two
facts decide the token ids besides the template, and both are read off the processor here rather than
assumed:

- special tokens: a processor adds its tokenizer's special tokens (a BOS ...) unless told otherwise, and
  ``apply_chat_template`` tells it not to when the rendered prompt already starts with the BOS (Gemma 3,
  Idefics3, Llama 3.2 Vision, Aya Vision write it in their templates). :class:`Specials` mirrors that rule;
- the prompt format. In order of preference: the checkpoint's own chat template; the preset's, for a
  checkpoint that ships none; else the plain prompt format of processors that predate chat templates
  (PaliGemma): every image's placeholder, then the texts, which the processor completes itself (its BOS
  after the images, a newline after the text). The last two are deviations from the checkpoint, said so
  in ``run.json`` and the report (:class:`PromptFormat`).

torch and transformers are imported inside the functions: the CLI imports this package for --help.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from mmeval.model_adapters.base import AdapterError

P = TypeVar("P")


@dataclass(frozen=True)
class Specials:
    """How the processor tokenises a prompt, so that the tokenizer alone reproduces its token ids.

    ``add``: whether it adds the tokenizer's special tokens by default; ``bos``: the tokenizer's BOS, whose
    presence at the start of a rendered prompt switches that off (as ``apply_chat_template`` does);
    ``n_tail``: how many tokens it appends after the text when it adds them (an EOS ...), which must be
    dropped before an answer can follow the prompt.
    """

    add: bool
    n_tail: int
    bos: str | None = None

    def add_for(self, prompt: str) -> bool:
        """Whether the processor adds special tokens to this rendered prompt (never when it starts with the BOS)."""
        return self.add and not (self.bos is not None and prompt.startswith(self.bos))


@dataclass(frozen=True)
class PromptFormat:
    """Where the prompt format comes from; ``note``: how it deviates from the checkpoint's own (None: it does not)."""

    source: Literal["checkpoint", "preset", "plain"]
    note: str | None = None


def load_processor(path: str, config: Any, trust_remote_code: bool) -> Any:
    """The checkpoint's processor; without torchvision, its image-only variant (None: none can be loaded)."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 - the caller reports the original error if the fallback fails too
        proc = image_only_processor(path, config, trust_remote_code)
        if proc is None:
            raise
        return proc


def prompt_format(proc: Any, preset_template: str | None, preset_name: str) -> PromptFormat:
    """Give the processor the chat template it renders with, and say where it came from."""
    template = getattr(proc, "chat_template", None) or getattr(proc.tokenizer, "chat_template", None)
    if template:
        proc.chat_template = template  # some checkpoints keep it with the tokenizer only
        return PromptFormat("checkpoint")
    if preset_template:
        proc.chat_template = preset_template
        return PromptFormat("preset", f"the checkpoint has no chat template: the {preset_name} preset's template "
                                      "is used")
    image_token = getattr(proc, "image_token", None)
    if not isinstance(image_token, str):
        raise AdapterError("the processor has neither a chat template nor an image placeholder token, so no prompt "
                           "can be built for it; add the chat template the model was trained with "
                           "(chat_template.jinja in the checkpoint directory)")
    proc.chat_template = plain_template(image_token)
    return PromptFormat("plain", "the checkpoint has no chat template: the processor's plain prompt format is used "
                                 f"(every image's {image_token}, then the texts, no turn markers)")


def plain_template(image_token: str) -> str:
    """The plain prompt format as a chat template: the user turns' image placeholders, then their texts."""
    placeholder = json.dumps(image_token)
    return (
        "{% for message in messages if message['role'] == 'user' %}"
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for item in message['content'] if item['type'] == 'image' %}{{ " + placeholder + " }}{% endfor %}"
        "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] }}{% endfor %}"
        "{% endif %}{% endfor %}"
    )


def probe_specials(processor: Any) -> Specials:
    """How the processor tokenises text: with special tokens or not, and any tokens it appends."""
    tok = processor.tokenizer
    with_sp = tok("x y", add_special_tokens=True)["input_ids"]
    plain = tok("x y", add_special_tokens=False)["input_ids"]
    try:
        via_proc = list(processor(text=["x y"])["input_ids"][0])
    except Exception:  # noqa: BLE001 - a processor that insists on images: assume the tokenizer default
        via_proc = with_sp
    add = via_proc != plain
    ids = with_sp if add else plain
    start = next((i for i in range(len(ids)) if ids[i:i + len(plain)] == plain), 0)
    return Specials(add=add, n_tail=max(0, len(ids) - start - len(plain)), bos=tok.bos_token)


def image_token_id(processor: Any, config: Any) -> int | None:
    """The id of the image placeholder token, from the processor or the config (None: none found)."""
    for src in (processor, config):
        for attr in ("image_token_id", "image_token_index"):
            v = getattr(src, attr, None)
            if isinstance(v, int):
                return v
    return None


# ------------------------------------------------------------------------------------------ without torchvision


def image_only_processor(path: str, config: Any, trust_remote_code: bool) -> Any:
    """Load the processor without its video processor (transformers needs torchvision for one); None: cannot."""
    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES
    from transformers.utils import cached_file

    name = None
    try:
        f = cached_file(path, "processor_config.json", _raise_exceptions_for_missing_entries=False)
        name = json.loads(Path(f).read_text(encoding="utf-8")).get("processor_class") if f else None
    except Exception:  # noqa: BLE001 - no readable processor_config.json: fall back on the model type
        pass
    name = name or PROCESSOR_MAPPING_NAMES.get(getattr(config, "model_type", ""))
    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    if cls is None or "video_processor" not in inspect.signature(cls.__init__).parameters:
        return None
    try:
        return image_only_processor_class(cls).from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 - the original error is the one to report
        return None


class _NoVideoSettings:
    """Stands in for the absent video processor while a chat template is applied: every setting reads as unset.

    Some processors (SmolVLM) read their video processor's defaults (frames, fps) in ``apply_chat_template``
    even for a conversation without video; unset, those defaults change nothing for images.
    """

    def __getattr__(self, name: str) -> None:
        return None


def image_only_processor_class(cls: type[P]) -> type[P]:
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
    parent_template = getattr(cls, "apply_chat_template")  # noqa: B009 - the parent's, called from the override

    def apply_chat_template(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "video_processor", None) is not None:
            return parent_template(self, *args, **kwargs)
        self.video_processor = _NoVideoSettings()
        try:
            return parent_template(self, *args, **kwargs)
        finally:
            self.video_processor = None

    return type(cls.__name__, (cls,), {"__init__": scope["__init__"], "apply_chat_template": apply_chat_template,
                                       "__module__": __name__,
                                       "__doc__": f"{cls.__name__} without a video processor"})
