"""Dense retrieval with a sentence-transformers model from a local path (``--boost-arg embedding_model=PATH``).

Needs ``pip install sentence-transformers`` and a model folder on disk (nothing is downloaded when the
hub is switched off); cosine similarity of normalised embeddings ranks the entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.boosts.retrievers import top_k
from mmeval.errors import InputError


class EmbeddingRetriever:
    def __init__(self, embedding_model: str | None = None, **_: Any) -> None:
        if not embedding_model:
            raise InputError("retriever 'embedding' needs --boost-arg embedding_model=PATH (a sentence-transformers "
                             "model folder)")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise InputError("retriever 'embedding' needs sentence-transformers: pip install sentence-transformers "
                             "(keep torch pinned as in the README)") from None
        path = Path(embedding_model).expanduser()
        if not path.is_dir():
            raise InputError(f"--boost-arg embedding_model={embedding_model}: no such model folder")
        self.model = SentenceTransformer(str(path), device="cpu")
        self._matrix: Any = None

    def index(self, texts: Sequence[str]) -> None:
        self._matrix = self.model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False)

    def rank(self, query: str, k: int) -> list[int]:
        q = self.model.encode([query], normalize_embeddings=True, show_progress_bar=False)[0]
        return top_k(list(self._matrix @ q), k)
