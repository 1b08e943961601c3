"""Local image-text-to-text models through transformers: ``--model hf:PATH_OR_HUB_ID``.

The checkpoint's own processor and chat template build every prompt: the neutral message becomes one
user turn whose content list holds ``{"type": "text"}`` and ``{"type": "image"}`` items in reading
order, and the images (PIL, RGB) go to ``processor(images=[...], text=...)``, which inserts the
model's image tokens itself. Nothing here hand-builds image tokens.

Two answer modes (``--answer-mode``):

- ``generate``: greedy decoding of a short answer; the engine extracts the letter from the text.
- ``likelihood``: the option whose continuation (its letter, or its full text with
  ``-M likelihood_target=options``) is most probable after the prompt wins; the response carries
  ``scores = {letter: log-prob}``. The continuation is scored as the tokenizer really splits
  ``prompt + continuation`` (so ``" A"`` after ``ASSISTANT:``, ``"A"`` after a newline).

Speed: questions are batched (``--batch-size``). With ``-M prefix_reuse=true`` (default) the part every
question about one image shares (instruction, templates, query image: ``Message.prefix_len``) is run
through the model once, vision tower included, and its KV cache is expanded over that image's
questions, so each question only costs its own few tokens. Without it, whole prompts are batched
(right padding for scoring, left padding for generation, sorted by length).

Presets (``-M preset=...``, or ``--model llava:PATH``; see ``model_adapters/hf/presets.py``) pin the model
class and the conventions of a family; ``auto`` picks one from the checkpoint's ``model_type``.

The adapter only composes the parts of this package: :mod:`.loading` (the checkpoint, once),
:mod:`.runtime` (model calls, counted and timed), :mod:`.prompts` (rendering and tokenising),
:mod:`.likelihood` and :mod:`.generation` (the two answer modes, built per batch from the current options).
Heavy imports (torch, transformers) happen inside functions: the CLI imports this module for --help.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from mmeval.model_adapters.base import AdapterSettings, ModelAdapter
from mmeval.model_adapters.hf.generation import Generator
from mmeval.model_adapters.hf.images import ImageCache
from mmeval.model_adapters.hf.likelihood import LikelihoodScorer
from mmeval.model_adapters.hf.loading import Checkpoint, LoadedModel, load, load_processor_only
from mmeval.model_adapters.hf.options import HFOptions
from mmeval.model_adapters.hf.prompts import Item, PromptBuilder
from mmeval.model_adapters.hf.runtime import Batching, Runtime
from mmeval.model_adapters.hf.template_clock import writes_the_date
from mmeval.prompting.messages import Request, Response

__all__ = ["HFAdapter", "HFOptions"]


def template_args(opts: HFOptions) -> dict[str, Any]:
    """The variables the chat template is rendered with, from the options (``enable_thinking`` when set)."""
    return {} if opts.enable_thinking is None else {"enable_thinking": opts.enable_thinking}


class HFAdapter(ModelAdapter):
    """Any transformers image-text-to-text model with a processor and a chat template."""

    family: ClassVar[str] = "hf"
    Options: ClassVar[type[BaseModel]] = HFOptions
    answer_modes = ("generate", "likelihood")
    default_batch_size = 8
    #: presets this family may use (None: all); ``auto`` only picks among them
    preset_names: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, name: str, options: BaseModel | None = None, settings: AdapterSettings | None = None,
                 loaded: LoadedModel | None = None) -> None:
        """``loaded``: a model already in memory (see :mod:`.in_process`); by default the checkpoint ``name``."""
        super().__init__(name, options, settings)
        if not isinstance(self.options, HFOptions):
            raise TypeError(f"the '{self.family}' family takes HFOptions, not {type(self.options).__name__}")
        #: read afresh by every predict call, so options changed between calls take effect
        self.opts: HFOptions = self.options
        self.loaded = loaded if loaded is not None else load(Checkpoint(self.family, name, self.opts,
                                                                        self.preset_names))
        images = ImageCache()
        self.runtime = Runtime(self.loaded, images)
        self.prompts = PromptBuilder(self.loaded, images, template_args=template_args(self.opts),
                                     template_date=self.opts.template_date)

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        """A request whose image cannot be read fails alone, before any model work; the rest are answered."""
        items: list[Item] = []
        for req in batch:
            try:
                items.append(self.prompts.prepare(req))
            except (OSError, ValueError) as exc:
                yield Response(id=req.id, error=f"{type(exc).__name__}: {exc}")
        batching = Batching(size=self.batch_size, invariant=self.opts.batch_invariant)
        with self.grad_off():
            if self.answer_mode == "likelihood":
                scorer = LikelihoodScorer(self.runtime, self.prompts, batching, reuse=self.opts.prefix_reuse,
                                          target=self.opts.likelihood_target)
                yield from scorer.score(items)
            else:
                generator = Generator(self.runtime, self.prompts, batching, reuse=self.opts.prefix_reuse,
                                      max_new_tokens=self.opts.max_new_tokens)
                yield from generator.generate(items)

    def grad_off(self) -> Any:
        """The autograd context of the model calls: inference mode, the fastest (an in-process model: no_grad)."""
        import torch

        return torch.inference_mode()

    def run_info(self) -> dict[str, object]:
        m = self.loaded
        sep = self.prompts.separator
        return {"model": self.name, "preset": m.preset.name, "class": type(m.model).__name__,
                "prompt_format": m.prompt.source,
                "answer_separator": repr(sep.text) if sep.text is not None else "a space unless the prompt ends "
                                                                                "with whitespace",
                "answer_separator_from": sep.source, "prefix_reuse_possible": m.preset.no_prefix_reuse is None,
                "device": str(m.device), "dtype": str(m.dtype).removeprefix("torch."),
                "quantize": self.opts.quantize, "answer_mode": self.answer_mode,
                "prefix_reuse": self.opts.prefix_reuse, "model_seconds": round(self.runtime.timer.seconds, 3),
                "transformers": m.transformers_version, **self.runtime.stats}

    @classmethod
    def describe(cls) -> str:
        from mmeval.model_adapters.hf.architectures import describe

        return describe()

    @classmethod
    def implied_options(cls, name: str, options: dict[str, Any]) -> dict[str, Any]:
        """``template_date`` where the checkpoint's chat template writes the date into the prompt and none was
        given: the day is then part of what the run is, and of its identity (not for other checkpoints, whose runs
        keep the identity they had). Only the processor is loaded here, not the weights."""
        if "template_date" in options:
            return {}
        opts = HFOptions.model_validate(options)
        processor = load_processor_only(Checkpoint(cls.family, name, opts, cls.preset_names))
        if writes_the_date(processor, template_args(opts)):
            return {"template_date": opts.template_date.isoformat()}
        return {}

    def options_implied(self) -> dict[str, Any]:
        """``template_date`` where this adapter's prompts carry the fixed day."""
        return {"template_date": self.opts.template_date.isoformat()} if self.prompts.dated else {}

    def notes(self) -> list[str]:
        """How the prompts deviate from the checkpoint's own: its prompt format (no chat template in the checkpoint),
        and the day fixed for a template that writes today's date."""
        notes = [self.loaded.prompt.note] if self.loaded.prompt.note else []
        if self.prompts.dated:
            notes.append(f"the chat template writes today's date into the prompt: mmeval fixes it to "
                         f"{self.prompts.template_date.isoformat()} (-M template_date), so every day gives the same "
                         "prompt")
        return notes

    def close(self) -> None:
        self.runtime.close()
