"""Lexical retrieval with BM25 (the ``bm25s`` library): no weights to download, deterministic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmeval.boosts.retrievers import top_k
from mmeval.errors import InputError


class BM25Retriever:
    """Okapi BM25 over English word tokens (stop words removed)."""

    def __init__(self, **_: Any) -> None:
        try:
            import bm25s
        except ImportError:
            raise InputError("retriever 'bm25' needs the bm25s package: pip install bm25s") from None
        self._bm25s = bm25s
        self._model: Any = None

    def _tokens(self, texts: Sequence[str]) -> list[list[str]]:
        return self._bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)

    def index(self, texts: Sequence[str]) -> None:
        self._model = self._bm25s.BM25()
        self._model.index(self._tokens(texts), show_progress=False)

    def rank(self, query: str, k: int) -> list[int]:
        words = self._tokens([query])[0]
        if not words:
            return []
        return top_k(list(self._model.get_scores(words)), k)
