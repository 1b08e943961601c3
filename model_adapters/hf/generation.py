"""Generation: greedy decoding of a short answer, whose letter the engine extracts from the text.

With prefix reuse, the prefix shared by an image's questions runs once and each question generates from
its own tokens on a copy of that KV cache; otherwise whole prompts are batched, left-padded and sorted
by length so that a batch wastes little on padding.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from mmeval.model_adapters.hf.prefix import group_by_prefix, prefix_context
from mmeval.model_adapters.hf.prompts import Item, PromptBuilder
from mmeval.model_adapters.hf.runtime import Batching, Runtime, cache_of, continuation_extras, expand_cache
from mmeval.prompting.messages import Response


def greedy_config(model: Any, pad_token_id: int | None, max_new_tokens: int) -> Any:
    """The checkpoint's generation config made greedy and short: answers must not depend on sampling settings."""
    cfg = copy.deepcopy(model.generation_config)
    cfg.do_sample = False
    cfg.num_beams = 1
    cfg.max_new_tokens = max_new_tokens
    cfg.temperature = cfg.top_p = cfg.top_k = None
    cfg.min_new_tokens = None
    if cfg.pad_token_id is None:
        cfg.pad_token_id = pad_token_id
    return cfg


def eos_ids(model: Any, tok: Any) -> set[int]:
    """The tokens that end an answer: the generation config's EOS (one or several), else the tokenizer's."""
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tok.eos_token_id
    return set(eos) if isinstance(eos, (list, tuple)) else ({eos} if eos is not None else set())


class Generator:
    """Answers prepared items by greedy decoding; one per ``predict`` call, with that call's settings."""

    def __init__(self, runtime: Runtime, prompts: PromptBuilder, batching: Batching, reuse: bool,
                 max_new_tokens: int) -> None:
        self.runtime = runtime
        self.prompts = prompts
        self.batching = batching
        self.reuse = reuse
        self.max_new_tokens = max_new_tokens
        m = runtime.loaded
        self._stop = {m.tok.pad_token_id, *eos_ids(m.model, m.tok)}

    def config(self) -> Any:
        """The generation config of every call (a fresh copy: generate may keep what it is given)."""
        m = self.runtime.loaded
        return greedy_config(m.model, m.tok.pad_token_id, self.max_new_tokens)

    def generate(self, items: list[Item]) -> Iterator[Response]:
        """One response per item: prefix groups first, then the items run whole, shortest prompts first."""
        groups, whole = group_by_prefix(items, self.reuse)
        for group in groups:
            for it in group:
                self.prompts.tokens(it)
            split = prefix_context(group, self.prompts, self.runtime)
            if split is None:
                whole.extend(group)
                continue
            yield from self._generate_group(group, *split)
        whole.sort(key=lambda it: len(it.text))
        for chunk in self.batching.chunks(whole):
            yield from self.runtime.split_on_oom(self._generate_whole, chunk)

    def _generate_group(self, group: list[Item], ctx: dict[str, Any], rests: list[list[int]]) -> Iterator[Response]:
        """The shared prefix once, then each question generating from its own tokens on a copy of its cache."""
        import torch

        m = self.runtime.loaded
        out = self.runtime.forward(ctx, use_cache=True, logits_to_keep=1)
        cache = cache_of(out)
        ctx_len = int(ctx["input_ids"].shape[1])
        for it, rest in zip(group, rests, strict=True):
            ids = torch.cat([ctx["input_ids"], torch.tensor([rest], device=m.input_device)], dim=1)
            # the prompt's other per-token inputs (token types, cross-attention mask ...) as for the whole prompt
            extras = {k: torch.cat([ctx[k], v], dim=1) for k, v in continuation_extras(ctx, 1, len(rest)).items()}
            gen = self._call(input_ids=ids, attention_mask=torch.ones_like(ids), **extras,
                             **{m.cache_kw: expand_cache(cache, 1)})
            yield self._answer(it, gen[0, ids.shape[1]:], int(ids.shape[1]), reused=ctx_len)

    def _generate_whole(self, chunk: list[Item]) -> Iterator[Response]:
        """Whole prompts in one left-padded batch."""
        inputs = self.runtime.process([it.images for it in chunk], [it.text for it in chunk], padding_side="left")
        gen = self._call(**inputs)
        width = inputs["input_ids"].shape[1]
        for i, it in enumerate(chunk):
            yield self._answer(it, gen[i, width:], int(inputs["attention_mask"][i].sum()))

    def _call(self, **kwargs: Any) -> Any:
        return self.runtime.generate(**kwargs, generation_config=self.config())

    def _answer(self, item: Item, new_ids: Any, prompt_tokens: int, reused: int = 0) -> Response:
        """The decoded answer up to its first stop token, with a note when it is empty or cut short."""
        ids = [int(t) for t in new_ids]
        n = next((i for i, t in enumerate(ids) if t in self._stop), len(ids))
        text = self.runtime.loaded.tok.decode(ids[:n], skip_special_tokens=True).strip()
        self.runtime.count_answer(prompt_tokens, reused, completion_tokens=n)
        note = None
        if not text:
            note = "empty answer"
        elif n >= self.max_new_tokens:
            note = f"truncated at -M max_new_tokens={self.max_new_tokens}"
        return Response(id=item.req.id, text=text, note=note,
                        usage={"prompt_tokens": prompt_tokens, "completion_tokens": n})
