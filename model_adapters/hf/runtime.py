"""Running a loaded model: processor output on the model's device, counted and timed model calls, KV-cache
expansion, batches of ``--batch-size``, and halving a batch on out-of-memory.

Likelihood scoring and generation both go through one :class:`Runtime`, so every model call is counted
and timed in one place (``run_info`` reports them; the throughput benchmark wraps :meth:`Runtime.call`
and :meth:`Runtime.generate` to time the model alone).
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from mmeval.model_adapters.base import AdapterError
from mmeval.model_adapters.hf.images import ImageCache
from mmeval.model_adapters.hf.loading import LoadedModel

T = TypeVar("T")
R = TypeVar("R")

#: processor outputs meant for training (PaliGemma's processor always returns ``labels``), never given to the model
TRAINING_KEYS = frozenset({"labels"})


class Timer:
    """Seconds spent inside ``with timer:`` blocks, summed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._t = 0.0

    def __enter__(self) -> Timer:
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._t


@dataclass(frozen=True)
class Batching:
    """How work is cut into model calls: at most ``size`` rows, or with ``invariant`` one owner per call.

    Batch-invariant calls hold the rows of one question only, so its scores never depend on its batch mates.
    """

    size: int
    invariant: bool

    def chunks(self, items: list[T], owner: Callable[[T], Hashable] | None = None) -> Iterator[list[T]]:
        """Consecutive slices of ``items``: one per owner (each item its own without one) when invariant."""
        if not self.invariant:
            for start in range(0, len(items), self.size):
                yield items[start:start + self.size]
            return
        if owner is None:
            for item in items:
                yield [item]
            return
        start = 0
        for i in range(1, len(items) + 1):
            if i == len(items) or owner(items[i]) != owner(items[start]):
                yield items[start:i]
                start = i


def per_token(inputs: dict[str, Any]) -> list[str]:
    """The keys of a processed batch that hold one entry per token (ids and masks: ``token_type_ids``,
    ``mm_token_type_ids``, Mllama's ``cross_attention_mask`` ...), pixel values aside."""
    shape = tuple(inputs["input_ids"].shape)
    return [k for k, v in inputs.items()
            if getattr(v, "shape", None) is not None and tuple(v.shape[:2]) == shape and not v.is_floating_point()]


def cut(inputs: dict[str, Any], n: int) -> dict[str, Any]:
    """Drop the last n tokens of a processed batch (every per-token tensor, e.g. mm_token_type_ids too)."""
    if n <= 0:
        return inputs
    keys = set(per_token(inputs))
    return {k: v[:, :-n] if k in keys else v for k, v in inputs.items()}


def continuation_extras(ctx: dict[str, Any], rows: int, width: int) -> dict[str, Any]:
    """What a model needs beside the token ids for ``rows`` continuations of ``width`` tokens after a context.

    Every per-token input of the context other than the ids and the attention mask (token types, Mllama's
    cross-attention mask ...) continues with the value at the context's last position, as ``generate``
    extends them for the tokens it adds.
    """
    return {k: ctx[k][:, -1:].expand(rows, width, *ctx[k].shape[2:])
            for k in per_token(ctx) if k not in ("input_ids", "attention_mask")}


def cache_of(out: Any) -> Any:
    """The KV cache of a model output, under either name transformers has used for it."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def expand_cache(cache: Any, n: int) -> Any:
    """A batch-n cache over a batch-1 one, leaving the original untouched for the next questions.

    Dynamic layers only ever replace their tensors (``torch.cat``), never write into them, so broadcast
    views suffice: the prefix is copied once, by the model's own concatenation. Other cache types (the
    recurrent states of linear-attention layers ...) get a deep copy, its rows repeated with the layers'
    own row selection (the one beam search uses, which every layer type has).
    """
    import torch
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
        new.reorder_cache(torch.zeros(n, dtype=torch.long))
    return new


class ContinuationCache:
    """A batch-1 prefix cache laid out once with room after it, so that continuations need no copy of the prefix.

    :func:`expand_cache` gives every call its own cache, which each layer extends with ``torch.cat``: the
    whole prefix is copied per question, per layer, for keys and values. Here the prefix is copied once
    into buffers with ``room`` free positions behind it (``rows`` copies of it, for batched rows); a call's
    cache writes its rows' keys and values into that room and reads the buffers up to their end, and the
    next call simply writes over them. The attention sees the same numbers as with ``torch.cat``.

    Layers that hold something else than the prompt's positions (the image keys of Mllama's
    cross-attention layers) are read, never written, by a continuation: they are shared as they are.
    """

    def __init__(self, cache: Any, rows: int, room: int) -> None:
        import torch

        self.cache = cache
        self.length = cache.get_seq_length()
        self.buffers: list[tuple[Any, Any, int]] = []
        for layer in cache.layers:
            k, v = layer.keys, layer.values
            if k.shape[-2] != self.length:  # read only: broadcast views, no room
                self.buffers.append((k.expand(rows, *k.shape[1:]), v.expand(rows, *v.shape[1:]), k.shape[-2]))
                continue
            shape = (rows, k.shape[1], self.length + room, k.shape[3])
            bk, bv = torch.empty(shape, dtype=k.dtype, device=k.device), torch.empty(shape, dtype=v.dtype,
                                                                                      device=v.device)
            bk[:, :, : self.length] = k
            bv[:, :, : self.length] = v
            self.buffers.append((bk, bv, self.length))

    @staticmethod
    def supports(cache: Any) -> bool:
        """Only caches of plain full-attention layers (sliding windows drop old positions; others store differently)."""
        from transformers.cache_utils import DynamicLayer

        layers: list[Any] = getattr(cache, "layers", None) or []
        return bool(layers) and all(type(layer) is DynamicLayer and layer.keys is not None and layer.keys.numel()
                                    and layer.keys.shape[0] == 1 for layer in layers)

    def for_rows(self, n: int) -> Any:
        """The cache for one forward of ``n`` rows (at most ``rows``, at most ``room`` tokens each)."""
        new = copy.copy(self.cache)
        layer = room_layer_class()
        new.layers = [layer(bk[:n], bv[:n], length) for bk, bv, length in self.buffers]
        return new


@functools.cache
def room_layer_class() -> type:
    """The layer class of :class:`ContinuationCache`, made on first use: transformers loads only when a model runs."""
    from transformers.cache_utils import DynamicLayer

    class RoomLayer(DynamicLayer):
        """A prefix's layer whose one update writes after the prefix in place (see :class:`ContinuationCache`)."""

        def __init__(self, buf_k: Any, buf_v: Any, length: int) -> None:
            super().__init__()
            self.buf_k, self.buf_v, self.length = buf_k, buf_v, length
            self.keys, self.values = buf_k[:, :, :length], buf_v[:, :, :length]
            self.device = buf_k.device
            self.is_initialized = True
            self.written = False

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            end = self.length + key_states.shape[-2]
            if self.written or end > self.buf_k.shape[-2]:
                raise RuntimeError("a continuation cache takes one forward, of at most its room in tokens")
            self.written = True
            self.buf_k[:, :, self.length:end].copy_(key_states)
            self.buf_v[:, :, self.length:end].copy_(value_states)
            self.keys, self.values = self.buf_k[:, :, :end], self.buf_v[:, :, :end]
            return self.keys, self.values

    return RoomLayer


def is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def new_stats() -> dict[str, int]:
    """The usage counters reported in run_info (and usage.jsonl)."""
    return {"questions": 0, "prompt_tokens": 0, "reused_prefix_tokens": 0, "completion_tokens": 0, "model_calls": 0}


class Runtime:
    """The model calls of one adapter: inputs prepared for the model, every call counted and timed."""

    def __init__(self, loaded: LoadedModel, images: ImageCache) -> None:
        self.loaded = loaded
        self.images = images
        self.stats = new_stats()
        self.timer = Timer()

    def process(self, images: list[list[str]], texts: list[str], padding_side: str = "right") -> dict[str, Any]:
        """Processor output for a batch, on the model's device, floats in the model's dtype.

        Special tokens are added where ``apply_chat_template`` would add them (not when the rendered prompt
        starts with the BOS); padding goes on ``padding_side`` whatever the processor's own default. Tokens
        the tokenizer appends after the text (an EOS ...) are dropped (left padding, one row) or masked out
        (right padding), so that the last real position is the prompt's own end. The processor's training
        ``labels`` are left out.
        """
        import torch

        m = self.loaded
        add = {m.specials.add_for(t) for t in texts}
        if len(add) != 1:
            raise AdapterError("prompts of one batch disagree on whether they start with the BOS token")
        specials = add.pop()
        m.tok.padding_side = padding_side
        imgs = [[self.images.get(p) for p in group] for group in images]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True,
                                  "padding_side": padding_side, "add_special_tokens": specials}
        if any(imgs):
            kwargs["images"] = imgs
        out: dict[str, Any] = {}
        for k, v in m.processor(**kwargs).items():
            if k in TRAINING_KEYS:
                continue
            if isinstance(v, torch.Tensor):
                v = v.to(m.input_device, dtype=m.dtype) if v.is_floating_point() else v.to(m.input_device)
            out[k] = v
        n_tail = m.specials.n_tail if specials else 0
        if n_tail:
            if padding_side == "left" or len(texts) == 1:
                out = cut(out, n_tail)
            else:
                lengths = out["attention_mask"].sum(1) - n_tail
                keep = torch.arange(out["input_ids"].shape[1], device=m.input_device)[None, :] < lengths[:, None]
                out["attention_mask"] = out["attention_mask"] * keep
        return out

    def call(self, **kwargs: Any) -> Any:
        """The model's forward, counted and timed."""
        self.stats["model_calls"] += 1
        with self.timer:
            return self.loaded.model(**kwargs)

    def generate(self, **kwargs: Any) -> Any:
        """The model's generate, counted and timed."""
        self.stats["model_calls"] += 1
        with self.timer:
            return self.loaded.model.generate(**kwargs)

    def forward(self, inputs: dict[str, Any], cache: Any = None, **kwargs: Any) -> Any:
        """A forward pass over processed inputs, continuing ``cache`` when one is given."""
        if cache is not None:
            kwargs[self.loaded.cache_kw] = cache
        return self.call(**inputs, **kwargs)

    def count_answer(self, prompt_tokens: int, reused: int = 0, completion_tokens: int = 0) -> None:
        """Count one answered question: its prompt, the part of it read from a shared prefix's cache, its answer."""
        self.stats["questions"] += 1
        self.stats["prompt_tokens"] += prompt_tokens
        self.stats["reused_prefix_tokens"] += reused
        self.stats["completion_tokens"] += completion_tokens

    def split_on_oom(self, fn: Callable[[list[T]], Iterator[R]], items: list[T]) -> Iterator[R]:
        """Run fn(items); on out-of-memory, halve the batch and retry (down to one item)."""
        import torch

        try:
            yield from fn(items)
            return
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
            if not is_oom(exc):
                raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(items) == 1:
            raise AdapterError(f"out of memory on a single question on {self.loaded.device}: use -M dtype=bf16 or "
                               "-M quantize=4bit, a smaller model, or a larger GPU")
        half = len(items) // 2
        yield from self.split_on_oom(fn, items[:half])
        yield from self.split_on_oom(fn, items[half:])

    def close(self) -> None:
        """Release the images and the model (and the GPU memory it held)."""
        import torch

        self.images.clear()
        if self.loaded.model is not None:
            self.loaded.model = None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
