"""Retrievers rank knowledge entries by how well they match a query (the question and its options).

A retriever is a small protocol: ``index(texts)`` once, then ``rank(query, k)`` -> the indices of the
best ``k`` texts, best first, ties broken by position (so the ranking is deterministic). Adding one is
one module plus one line in :data:`RETRIEVERS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol

from mmeval.errors import InputError

#: name -> "module:Class"
RETRIEVERS: dict[str, str] = {
    "bm25": "mmeval.boosts.retrievers.bm25:BM25Retriever",
    "embedding": "mmeval.boosts.retrievers.embedding:EmbeddingRetriever",
}


class Retriever(Protocol):
    def index(self, texts: Sequence[str]) -> None: ...

    def rank(self, query: str, k: int) -> list[int]: ...


def build_retriever(name: str, **options: Any) -> Retriever:
    target = RETRIEVERS.get(name)
    if target is None:
        raise InputError(f"--boost-arg retriever={name}: unknown retriever (known: {', '.join(RETRIEVERS)})")
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    retriever: Retriever = cls(**options)
    return retriever


def top_k(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` highest scores, best first; equal scores keep their order."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return order[: max(0, k)]
