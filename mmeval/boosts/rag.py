"""``rag``: domain knowledge added to the prompt (MMAD's "RAG" boost, and a real retrieval variant).

Modes (``--boost-arg mode=...``):

- ``category`` (default, MMAD's way): the question's dataset and category select every entry of that
  category (the normal product and each defect type), in the file's order. It depends only on the
  image, so it sits in the shared prefix (after the instruction, where MMAD's scripts put it).
- ``search``: the category is not trusted; every entry of the file is ranked by similarity to the
  question and its options (``retriever=bm25`` by default, or ``embedding`` with a local
  sentence-transformers model) and the ``top_k`` best are added after the shared prefix, with the
  question.

A budget (``max_tokens``, counted with the model's own tokenizer when it is a local checkpoint, else in
words) keeps whole entries in ranking order and drops the rest, never cutting one mid-sentence.
Each prediction records which entries it saw, which were dropped, which options a blind reader of the
question, the options and the injected text picks (``reader``), and whether it picks the correct one
alone (``leak``, :mod:`mmeval.boosts.blind_reader`): category knowledge names the product, so some
questions no longer measure perception under it; the report compares the reader with the model and
splits the model's accuracy by it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from mmeval.boosts.base import Boost, BoostContext
from mmeval.boosts.blind_reader import leaked, read_blind
from mmeval.boosts.knowledge import Entry, KnowledgeBase
from mmeval.boosts.retrievers import Retriever, build_retriever
from mmeval.data import Question
from mmeval.errors import InputError
from mmeval.prompting.draft import Draft

KNOWLEDGE_FILE = "domain_knowledge.json"


class RagOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    knowledge: str | None = Field(None, description="the knowledge file (MMAD's domain_knowledge.json shape); "
                                                    "default: domain_knowledge.json beside the data's mmad.json")
    mode: Literal["category", "search"] = Field("category", description="category: every entry of the image's "
                                                "category (MMAD); search: the entries most similar to the question")
    retriever: Literal["bm25", "embedding"] = Field("bm25", description="search mode: how entries are ranked")
    top_k: int = Field(3, ge=1, le=50, description="search mode: how many entries each question gets")
    embedding_model: str | None = Field(None, description="retriever=embedding: a local sentence-transformers "
                                                          "model folder")
    max_tokens: int | None = Field(None, ge=1, description="budget for the added knowledge; whole entries that do "
                                                           "not fit are dropped (and recorded)")
    tokenizer: str | None = Field(None, description="tokenizer folder that counts the budget (default: the "
                                                    "model's own for hf:/llava: local checkpoints, else words)")


def _counter(options: RagOptions, context: BoostContext) -> Callable[[str], int]:
    """Tokens of a text: the tokenizer named, else the model's own (a local hf/llava checkpoint), else words."""
    path = options.tokenizer
    family, _, target = context.model.partition(":")
    if path is None and family in ("hf", "llava") and Path(target).expanduser().is_dir():
        path = target
    if path is None:
        return lambda text: len(text.split())
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(Path(path).expanduser()))
    except Exception as exc:  # noqa: BLE001 - any loading failure is the user's path
        raise InputError(f"--boost-arg tokenizer={path}: cannot load a tokenizer there ({exc})") from None
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


class RagBoost(Boost):
    name: ClassVar[str] = "rag"
    summary: ClassVar[str] = ("domain knowledge: the category's entries (MMAD), or the entries most similar to "
                              "the question")
    Options: ClassVar[type[BaseModel]] = RagOptions
    templates: ClassVar[tuple[str, ...]] = ("knowledge",)

    def __init__(self, options: BaseModel, context: BoostContext) -> None:
        super().__init__(options, context)
        o: RagOptions = self.options  # type: ignore[assignment]
        self.opts = o
        path = Path(o.knowledge).expanduser() if o.knowledge else context.source.parent / KNOWLEDGE_FILE
        self.kb = KnowledgeBase.load(path)
        self._count = lru_cache(maxsize=None)(_counter(o, context))
        self._retriever: Retriever | None = None
        self._missing: set[tuple[str, str]] = set()

    def prepare(self, questions: Sequence[Question]) -> None:
        if self.opts.mode == "search":
            self._retriever = build_retriever(self.opts.retriever, embedding_model=self.opts.embedding_model)
            self._retriever.index([e.text for e in self.kb.entries])
        else:
            cats = {(q.dataset, q.category) for q in questions}
            self._missing = {c for c in cats if not self.kb.for_category(*c)}
            if len(self._missing) == len(cats):
                raise InputError(f"{self.kb.source}: no entry for any category of the data (it has "
                                 f"{', '.join(sorted(self.kb.datasets()))}; the data has "
                                 f"{', '.join(sorted({d for d, _ in cats}))})")

    def _retrieve(self, draft: Draft) -> list[Entry]:
        q = draft.question
        if self.opts.mode == "category":
            return self.kb.for_category(q.dataset, q.category)
        assert self._retriever is not None
        query = " ".join([q.question, *draft.options.values()])
        return [self.kb.entries[i] for i in self._retriever.rank(query, self.opts.top_k)]

    def _within_budget(self, entries: list[Entry]) -> tuple[list[Entry], list[Entry], int]:
        """(kept, dropped, tokens kept): whole entries in order while they fit."""
        if self.opts.max_tokens is None:
            return entries, [], sum(self._count(e.text) for e in entries)
        kept: list[Entry] = []
        dropped: list[Entry] = []
        used = 0
        for e in entries:
            n = self._count(e.text)
            if not dropped and used + n <= self.opts.max_tokens:
                kept.append(e)
                used += n
            else:
                dropped.append(e)
        return kept, dropped, used

    def apply(self, draft: Draft) -> Draft:
        kept, dropped, tokens = self._within_budget(self._retrieve(draft))
        text = "\n".join(e.text for e in kept)
        picked = read_blind(draft.question.question, draft.options, text)
        note: dict[str, Any] = {"entries": [e.ident for e in kept], "dropped": [e.ident for e in dropped],
                                "tokens": tokens, "leak": leaked(picked, draft.answer), "reader": picked}
        notes = {**draft.notes, self.name: note}
        if not kept:
            return draft.with_(notes=notes)
        if self.opts.mode == "category":
            return draft.with_(image_knowledge=(*draft.image_knowledge, text), notes=notes)
        return draft.with_(question_knowledge=(*draft.question_knowledge, text), notes=notes)

    def record(self) -> dict[str, Any]:
        return {"knowledge_file": str(self.kb.source), "entries_in_file": len(self.kb.entries),
                "categories_without_knowledge": sorted("/".join(c) for c in self._missing)}
