"""Rendering questions into neutral messages with the jinja2 templates in ``prompts/``.

Every block of text a model reads lives in a template file, so a wording change is a reviewed diff
(and the snapshot tests fail until it is accepted on purpose).

What a run's hash covers of the wording: :func:`prompts_digest` hashes the templates every run of the
default style reads (:data:`TEMPLATE_NAMES`: fixed, so that adding a template changes no existing run's
hash); a boost's own templates (``Boost.templates``) enter the hash through :func:`templates_digest` only
in the runs that use the boost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cache, lru_cache
from importlib import resources

import jinja2

from mmeval.home import template_cache
from mmeval.prompting.draft import BoostText, Draft, ExpertHint, Reference
from mmeval.prompting.fixed_texts import FIXED_TEXTS
from mmeval.prompting.messages import ImagePart, Message, Part, TextPart

#: the templates in every run's identity: the default style's own, and the first boosts' (knowledge, expert,
#: expert_text), which were hashed with every run before boosts named their templates and stay, with the text
#: they had then (:mod:`mmeval.prompting.fixed_texts`), so that those runs keep their hash. A new template
#: belongs to a boost (``Boost.templates``), never to this list.
TEMPLATE_NAMES = ("instruction", "knowledge", "fewshot", "query", "expert", "expert_text", "question")


def _load(name: str) -> str:
    return resources.files("mmeval.prompts").joinpath(f"{name}.j2").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: _load(name.removesuffix(".j2"))),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        bytecode_cache=template_cache(),
    )
    # prompt templates see only the values they are given: without jinja's default globals (range, dict,
    # cycler ...) each of tens of thousands of renders skips merging them into its context
    env.globals.clear()
    return env


def render_block(name: str, **context: object) -> str:
    """One template rendered; blocks that depend on few values (instruction, shots ...) are rendered once."""
    try:
        return _render_cached(name, tuple(sorted(context.items())))
    except TypeError:  # an unhashable value (the options of a question): render it each time
        return _render(name, context)


def _render(name: str, context: dict[str, object]) -> str:
    return _template(name).render(context).strip()


@cache
def _template(name: str) -> jinja2.Template:
    """A loaded template, whose globals are a plain empty dict: jinja gives each template a chain of its own
    and the environment's globals, which every render would otherwise walk (both are empty here)."""
    template = _env().get_template(f"{name}.j2")
    template.globals = {}
    return template


@lru_cache(maxsize=4096)
def _render_cached(name: str, items: tuple[tuple[str, object], ...]) -> str:
    return _render(name, dict(items))


def prompts_digest() -> str:
    """A hash of every run's templates (:data:`TEMPLATE_NAMES`): part of the run-config hash, so a wording
    change starts a new run. The three boost templates among them count with their text as fixed in
    :mod:`mmeval.prompting.fixed_texts` (their current text is in the identity of the runs using the boost)."""
    return _digest((name, FIXED_TEXTS.get(name) or _load(name)) for name in TEMPLATE_NAMES)


def templates_digest(names: tuple[str, ...]) -> str:
    """A hash of the named templates' current text (a boost's, in the runs that use it)."""
    return _digest((name, _load(name)) for name in names)


def _digest(texts: Iterable[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for name, text in texts:
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()[:16]


def render_draft(draft: Draft) -> Message:
    """Lay out one question: instruction, [knowledge], [boost texts], [templates], query, [references],
    [knowledge], [boost texts], question. Every slot of the draft has its place (a style that lacks one refuses
    the draft, see :mod:`mmeval.prompting.styles`).

    Everything before the question text depends only on the image, so questions about the same
    image share ``prefix_len`` leading parts (adapters may encode that prefix once). Knowledge a boost
    retrieved per question, and boost texts placed at ``"question"``, come after that prefix, with the question.
    """
    q = draft.question
    image_texts = tuple(t for t in draft.texts if t.place == "image")
    parts: list[Part] = list(_prefix(draft.image_knowledge, q.template_paths, q.query_path, draft.references,
                                     draft.hints, image_texts))
    prefix_len = len(parts)
    if draft.question_knowledge:
        parts.append(TextPart(text="\n" + render_block("knowledge", knowledge="\n\n".join(draft.question_knowledge))
                              + "\n"))
    for text in draft.texts:
        if text.place == "question":
            parts.append(TextPart(text="\n" + _boost_text(text) + "\n"))
    parts.append(TextPart(text="\n" + _question_block(q.question, tuple(draft.options.items()))))
    return Message(parts=parts, prefix_len=prefix_len)


def _boost_text(text: BoostText) -> str:
    """A boost's text, worded by its template with its values."""
    return render_block(text.template, **dict(text.values))


@lru_cache(maxsize=64)
def _prefix(image_knowledge: tuple[str, ...], template_paths: tuple[str, ...], query_path: str,
            references: tuple[Reference, ...], hints: tuple[ExpertHint, ...],
            texts: tuple[BoostText, ...]) -> tuple[Part, ...]:
    """The parts shared by an image's questions, built once per image (an image's questions are asked in a
    row) and shared: the parts are immutable."""
    shots = len(template_paths)
    head = render_block("instruction")
    if image_knowledge:
        head += "\n\n" + render_block("knowledge", knowledge="\n\n".join(image_knowledge))
    for text in texts:
        head += "\n\n" + _boost_text(text)
    parts: list[Part] = []
    if shots:
        parts.append(TextPart(text=head + "\n\n" + render_block("fewshot", shots=shots) + "\n"))
        parts.extend(ImagePart(path=p, role="template") for p in template_paths)
        parts.append(TextPart(text="\n" + render_block("query", shots=shots) + "\n"))
    else:
        parts.append(TextPart(text=head + "\n\n" + render_block("query", shots=0) + "\n"))
    parts.append(ImagePart(path=query_path, role="query"))
    for ref in references:
        parts.append(TextPart(text="\n" + render_block("expert", notation=ref.notation, marked=ref.marked,
                                                         defective=ref.defective) + "\n"))
        parts.append(ImagePart(path=ref.path, role="reference"))
    for hint in hints:
        parts.append(TextPart(text="\n" + render_block("expert_text", hint=hint)))
    return tuple(parts)


@lru_cache(maxsize=256)
def _question_block(question: str, options: tuple[tuple[str, str], ...]) -> str:
    """The question and its options. The most recent are remembered: MMAD asks the same Anomaly Detection
    question of every image, with its options in one of two orders. (Fewer than the bundled benchmark's
    questions, so the replicated benchmark of ``benchmarks/scale.py`` does not flatter it.)"""
    return _render("question", {"question": question, "options": dict(options)})
