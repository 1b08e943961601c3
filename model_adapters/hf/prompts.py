"""Prompts through the checkpoint's own chat template, the shared prefix of an image's questions, and the
tokens of each answer option.

The neutral message becomes one user turn (:func:`~mmeval.prompting.messages.to_hf_conversation`) that
the processor's chat template renders; nothing here hand-builds image tokens. The token ids are those
``processor.apply_chat_template(..., tokenize=True)`` gives: the processor adds its special tokens only
where that call would (see :class:`~.processor.Specials`), and where the processor lays the text out
itself before tokenising (PaliGemma puts its BOS after the images and a newline after the prompt), the
laid-out text is what is tokenised here (:meth:`PromptBuilder.layout`). Three facts are worked out here
because the template alone does not state them:

- where the question starts: the part of a prompt before it (instruction, templates, query image:
  ``Message.prefix_len``) is the same for every question about one image, so it can run through the
  model once. The prefix is rendered a second time with a mark in place of the question, and the
  prompt is split where the mark sits;
- what an answer starts with after the generation prompt: the template is rendered once with an
  assistant turn, and whatever it writes between the generation prompt and the answer's text is the
  separator (nothing after ChatML's ``assistant\\n``, a space after ``ASSISTANT:``, the closing of an empty
  think block after Qwen3.5's open one). Only a template that does not render answers after its
  generation prompt falls back on a rule: a space unless the prompt ends with whitespace;
- how each option's continuation is tokenised: as the tokenizer really splits ``prompt + separator +
  continuation``, not as the option alone, so a letter scores what greedy generation's first step would
  give the token the tokenizer emits there (a letter of several tokens scores its whole sequence).

Every rendering sees the same day (``-M template_date``, :mod:`.template_clock`), so a template that writes
today's date into the prompt gives the same prompt whatever day the run is on.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from mmeval.model_adapters.base import AdapterError
from mmeval.model_adapters.hf.images import ImageCache
from mmeval.model_adapters.hf.loading import LoadedModel
from mmeval.model_adapters.hf.options import LikelihoodTarget
from mmeval.model_adapters.hf.template_clock import (
    DEFAULT_TEMPLATE_DATE,
    check_clock,
    stopped_clock,
    template_moment,
    writes_the_date,
)
from mmeval.prompting.messages import Part, Request, TextPart, to_hf_conversation

#: replaces the question in a second rendering of the prompt, to find where the shared prefix ends
SPLIT_MARK = "\u2063MMEVAL-QUESTION-STARTS-HERE\u2063"
#: an answer's text in a rendering of the template with an assistant turn, to find the separator before it
ANSWER_MARK = "\u2063MMEVAL-ANSWER\u2063"

#: rendered prefixes kept before the cache is emptied (a run visits its images one after another)
MARKED_CACHE_SIZE = 256

#: what identifies a message part when comparing prefixes: its kind and its text or image path
PartKey = tuple[str, str]


@dataclass(frozen=True)
class AnswerSeparator:
    """What goes between the generation prompt and an answer, and whether the template said so (or the rule did)."""

    text: str | None  # None: decided per prompt by the rule
    source: Literal["chat template", "rule"]


@dataclass
class Item:
    """One request, rendered."""

    req: Request
    text: str  # the whole prompt as the chat template renders it (what the processor is given)
    images: list[str]
    layout: str = ""  # the text the processor's tokenizer sees (``text`` unless the processor lays it out)
    prefix_text: str | None = None  # the prompt up to where the question starts (reusable prefix)
    prefix_layout: str | None = None  # the same as the processor lays it out, a prefix of ``layout``
    prefix_key: tuple[str, tuple[PartKey, ...]] | None = None
    sep: str = " "  # what goes between the prompt and an answer letter
    raw: list[int] = field(default_factory=list)  # token ids of the layout, image placeholders unexpanded
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

    def __init__(self, loaded: LoadedModel, images: ImageCache, template_args: dict[str, Any] | None = None,
                 template_date: date = DEFAULT_TEMPLATE_DATE) -> None:
        self.processor = loaded.processor
        self.tok = loaded.tok
        self.preset = loaded.preset
        self.specials = loaded.specials
        self.images = images
        #: extra variables the chat template is rendered with (``enable_thinking`` ...)
        self.template_args = dict(template_args or {})
        #: the day every rendering sees; ``dated``: whether the template writes it into mmeval's prompts
        self.template_date = template_date
        self._stops_clock = check_clock(self.processor)
        self.dated = writes_the_date(self.processor, self.template_args)
        self._marked: dict[tuple[PartKey, ...], str] = {}  # prefix parts -> prompt with the mark for the question
        self._lays_out = _lays_out_text(self.processor)
        self.separator = self._answer_separator()

    def _template(self, conversation: list[dict[str, Any]], generation: bool) -> str:
        clock = stopped_clock(template_moment(self.template_date)) if self._stops_clock else nullcontext()
        with clock:
            return self.processor.apply_chat_template(conversation, add_generation_prompt=generation,
                                                      tokenize=False, **self.template_args)

    def render(self, parts: Sequence[Part]) -> str:
        """The prompt text, generation prompt included, as the chat template writes it."""
        return self._template(to_hf_conversation(parts), True)

    def layout(self, text: str, images: list[str]) -> str:
        """The text the processor's tokenizer is given for this prompt (before images are expanded)."""
        if not self._lays_out:
            return text
        try:
            _, laid, *_ = self.processor.prepare_inputs_layout(
                images=[[self.images.get(p) for p in images]] if images else None, text=[text])
        except Exception:  # noqa: BLE001 - a layout it cannot state here is the processor's own call to make
            return text
        return str(laid[0])

    def encode(self, text: str, specials: bool) -> list[int]:
        return self.encode_many([text], specials)[0]

    def encode_many(self, texts: list[str], specials: bool) -> list[list[int]]:
        """Token ids as the processor would produce them for these texts (image placeholders unexpanded)."""
        batch = self.tok(texts, add_special_tokens=specials)["input_ids"]
        tail = self.specials.n_tail if specials else 0
        return [list(ids[: len(ids) - tail] if tail else ids) for ids in batch]

    def tokens(self, item: Item) -> list[int]:
        """The prompt's token ids (image placeholders unexpanded), kept on the item."""
        if not item.raw:
            item.raw = self.encode(item.layout, self.specials.add_for(item.text))
        return item.raw

    def prepare(self, req: Request) -> Item:
        """The rendered request, its reusable prefix found; OSError or ValueError when an image cannot be read."""
        text = self.render(req.message.parts)
        item = Item(req=req, text=text, images=[p.path for p in req.message.images])
        for path in item.images:  # an unreadable image fails this question only, here
            self.images.get(path)
        item.layout = self.layout(text, item.images)
        self._find_prefix(item)
        item.sep = self._sep_for(item.layout)
        return item

    def _find_prefix(self, item: Item) -> None:
        """Set the item's reusable prefix: the prompt up to its question, when the question is text only."""
        if self.preset.no_prefix_reuse:
            return
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
        if not (cut > 0 and marked[:cut] == item.text[:cut]):
            return
        prefix_layout = self.layout(item.text[:cut], item.images)
        if item.layout.startswith(prefix_layout):  # the processor lays the prefix out as it does the prompt
            item.prefix_text, item.prefix_layout = item.text[:cut], prefix_layout
            item.prefix_key = (item.text[:cut], key)

    def _answer_separator(self) -> AnswerSeparator:
        """What the template writes between its generation prompt and an answer (see the module's docstring)."""
        user = [{"role": "user", "content": [{"type": "text", "text": "Question?"}]}]
        for content in ([{"type": "text", "text": ANSWER_MARK}], ANSWER_MARK):
            try:
                prompt = self._template(user, True)
                answered = self._template([*user, {"role": "assistant", "content": content}], False)
            except Exception:  # noqa: BLE001 - a template that cannot render an answer: the rule decides
                continue
            at = answered.find(ANSWER_MARK, len(prompt))
            if answered.startswith(prompt) and at >= 0:
                return AnswerSeparator(answered[len(prompt):at], "chat template")
        return AnswerSeparator(None, "rule")

    def _sep_for(self, layout: str) -> str:
        if self.separator.text is not None:
            return self.separator.text
        return "" if layout[-1:].isspace() else " "

    def add_targets(self, item: Item, target: LikelihoodTarget) -> None:
        """Tokens of each option's continuation (its letter or its text), as the tokenizer splits prompt + it."""
        conts = [item.sep + (letter if target == "letters" else option)
                 for letter, option in item.req.options.items()]
        raw = self.tokens(item)
        # Only the end of the prompt can merge with a continuation, so the continuations are tokenised
        # after the start of the question (a token boundary of the rendered prompt), not from the top.
        start = len(item.prefix_layout) if item.prefix_layout else 0
        tail = item.layout[start:]
        specials = self.specials.add_for(item.text) and start == 0
        tail_ids, *fulls = self.encode_many([tail, *(tail + c for c in conts)], specials)
        for letter, full in zip(item.req.options, fulls, strict=True):
            k = common_prefix_len(tail_ids, full)
            targets = full[k:]
            if not targets:
                raise AdapterError(f"option {letter} of question {item.req.id} has an empty continuation")
            item.targets[letter] = (len(raw) - (len(tail_ids) - k), targets)


def _lays_out_text(processor: Any) -> bool:
    """Whether the processor rewrites a prompt's text before tokenising it (beyond expanding image placeholders)."""
    try:
        from transformers.processing_utils import ProcessorMixin
    except ImportError:  # pragma: no cover - transformers is there whenever a processor is
        return False
    own = getattr(type(processor), "prepare_inputs_layout", None)
    return own is not None and own is not ProcessorMixin.prepare_inputs_layout
