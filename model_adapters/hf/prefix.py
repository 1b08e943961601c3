"""Prefix reuse: the questions of one batch that share a prefix (instruction, templates, query image), and the
model inputs of that prefix, which runs through the model once for all of them.

A prefix can be reused only where the token ids split cleanly: every question keeps at least one token
of its own, no image placeholder falls after the split, and the prefix's tokens are the same in every
prompt. Otherwise its questions run whole, which gives the same answers, only slower.
"""

from __future__ import annotations

from typing import Any

from mmeval.model_adapters.hf.prompts import Item, PromptBuilder, common_prefix_len
from mmeval.model_adapters.hf.runtime import Runtime, cut


def group_by_prefix(items: list[Item], reuse: bool) -> tuple[list[list[Item]], list[Item]]:
    """(groups of items sharing a reusable prefix, items run whole); all run whole without ``reuse``."""
    if not reuse:
        return [], list(items)
    groups: dict[tuple[Any, ...], list[Item]] = {}
    whole: list[Item] = []
    for it in items:
        if it.prefix_key is None:
            whole.append(it)
        else:
            groups.setdefault(it.prefix_key, []).append(it)
    return list(groups.values()), whole


def prefix_context(group: list[Item], prompts: PromptBuilder,
                   runtime: Runtime) -> tuple[dict[str, Any], list[list[int]]] | None:
    """Processor output of the shared prefix, and each item's tokens after it (None: it cannot be split).

    Every item of the group must have its token ids (``Item.raw``) already.
    """
    first = group[0]
    image_id = runtime.loaded.image_token_id
    raw_prefix = prompts.encode(first.prefix_layout or "", prompts.specials.add_for(first.text))
    k = min(common_prefix_len(it.raw, raw_prefix) for it in group)
    rests = [it.raw[k:] for it in group]
    if any(not r for r in rests) or (image_id is not None and any(image_id in r for r in rests)):
        return None
    if image_id is not None and image_id in raw_prefix[k:]:
        return None
    ctx = cut(runtime.process([first.images], [first.prefix_text or ""]), len(raw_prefix) - k)
    return ctx, rests
