"""Prompts through the checkpoint's own chat template, the shared prefix of an image's questions, and the
tokens of each answer option.

The neutral message becomes one user turn (:func:`~mmeval.prompting.messages.to_hf_conversation`) that
the processor's chat template renders; nothing here hand-builds image tokens. Two facts are worked
out here because the template alone does not state them:

- where the question starts: the part of a prompt before it (instruction, templates, query image:
  ``Message.prefix_len``) is the same for every question about one image, so it can run through the
  model once. The prefix is rendered a second time with a mark in place of the question, and the
  prompt is split where the mark sits;
- how each option's continuation is tokenised: as the tokenizer really splits ``prompt + continuation``
  (``" A"`` after ``ASSISTANT:``, ``"A"`` after a newline), not as the option alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mmeval.model_adapters.base import AdapterError
from mmeval.model_adapters.hf.images import ImageCache
from mmeval.model_adapters.hf.loading import LoadedModel
from mmeval.model_adapters.hf.options import LikelihoodTarget
from mmeval.prompting.messages import Part, Request, TextPart, to_hf_conversation

#: replaces the question in a second rendering of the prompt, to find where the shared prefix ends
SPLIT_MARK = "\u2063MMEVAL-QUESTION-STARTS-HERE\u2063"

#: rendered prefixes kept before the cache is emptied (a run visits its images one after another)
MARKED_CACHE_SIZE = 256

#: what identifies a message part when comparing prefixes: its kind and its text or image path
PartKey = tuple[str, str]


@dataclass
class Item:
    """One request, rendered."""

    req: Request
    text: str  # the whole prompt, generation prompt included
    images: list[str]
    prefix_text: str | None = None  # the prompt up to where the question starts (reusable prefix)
    prefix_key: tuple[str, tuple[PartKey, ...]] | None = None
    sep: str = " "  # what goes between the prompt and an answer letter
    raw: list[int] = field(default_factory=list)  # token ids of text, image placeholders unexpanded
    # option letter -> (prompt tokens kept before the continuation, continuation tokens)
    targets: dict[str, tuple[int, list[int]]] = field(default_factory=dict)


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two sequences share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _part_key(p: Part) -> PartKey:
    return ("t", p.text) if isinstance(p, TextPart) else ("i", p.path)


class PromptBuilder:
    """Renders requests into :class:`Item` s and tokenises them exactly as the processor will."""

    def __init__(self, loaded: LoadedModel, images: ImageCache) -> None:
        self.processor = loaded.processor
        self.tok = loaded.tok
        self.preset = loaded.preset
        self.specials = loaded.specials
        self.images = images
        self._marked: dict[tuple[PartKey, ...], str] = {}  # prefix parts -> prompt with the mark for the question

    def render(self, parts: Sequence[Part]) -> str:
        """The prompt text, generation prompt included, as the chat template writes it."""
        return self.processor.apply_chat_template(to_hf_conversation(parts), add_generation_prompt=True,
                                                  tokenize=False)

    def encode(self, text: str) -> list[int]:
        return self.encode_many([text])[0]

    def encode_many(self, texts: list[str], specials: bool | None = None) -> list[list[int]]:
        """Token ids as the processor would produce them for these texts (image placeholders unexpanded)."""
        specials = self.specials.add if specials is None else specials
        batch = self.tok(texts, add_special_tokens=specials)["input_ids"]
        tail = self.specials.n_tail if specials else 0
        return [list(ids[: len(ids) - tail] if tail else ids) for ids in batch]

    def prepare(self, req: Request) -> Item:
        """The rendered request, its reusable prefix found; OSError or ValueError when an image cannot be read."""
        text = self.render(req.message.parts)
        item = Item(req=req, text=text, images=[p.path for p in req.message.images])
        for path in item.images:  # an unreadable image fails this question only, here
            self.images.get(path)
        self._find_prefix(item)
        item.sep = self._answer_sep(text)
        return item

    def _find_prefix(self, item: Item) -> None:
        """Set the item's reusable prefix: the prompt up to its question, when the question is text only."""
        parts = item.req.message.parts
        n = item.req.message.prefix_len
        if not (0 < n < len(parts) and all(isinstance(p, TextPart) for p in parts[n:])):
            return
        key = tuple(_part_key(p) for p in parts[:n])
        marked = self._marked.get(key)
        if marked is None:  # the same for every question of the image: rendered once
            if len(self._marked) > MARKED_CACHE_SIZE:
                self._marked.clear()
            marked = self._marked[key] = self.render([*parts[:n], TextPart(text=SPLIT_MARK)])
        cut = marked.find(SPLIT_MARK)
        if cut > 0 and marked[:cut] == item.text[:cut]:
            item.prefix_text = item.text[:cut]
            item.prefix_key = (item.text[:cut], key)

    def _answer_sep(self, text: str) -> str:
        """What goes between the prompt and an answer: the preset's choice, else a space unless one is there."""
        if self.preset.answer_prefix is not None:
            return self.preset.answer_prefix
        return "" if text[-1:].isspace() else " "

    def add_targets(self, item: Item, target: LikelihoodTarget) -> None:
        """Tokens of each option's continuation (its letter or its text), as the tokenizer splits prompt + it."""
        conts = [item.sep + (letter if target == "letters" else option)
                 for letter, option in item.req.options.items()]
        item.raw = self.encode(item.text)
        # Only the end of the prompt can merge with a continuation, so the continuations are tokenised
        # after the start of the question (a token boundary of the rendered prompt), not from the top.
        start = len(item.prefix_text) if item.prefix_text else 0
        tail = item.text[start:]
        specials = self.specials.add and start == 0
        tail_ids, *fulls = self.encode_many([tail, *(tail + c for c in conts)], specials=specials)
        for letter, full in zip(item.req.options, fulls, strict=True):
            k = common_prefix_len(tail_ids, full)
            targets = full[k:]
            if not targets:
                raise AdapterError(f"option {letter} of question {item.req.id} has an empty continuation")
            item.targets[letter] = (len(item.raw) - (len(tail_ids) - k), targets)
