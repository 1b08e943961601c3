"""Descriptive questions written by a model: ``--writer openai:MODEL`` (any OpenAI-compatible server).

The descriptive types need text no label holds: Defect Description (what the defect looks like),
Defect Analysis (its effect) and Object Analysis (the structure and details of a normal product). A
model writes them through the OpenAI-compatible adapter (retries, rate limits, the response cache
and key scrubbing come with it), shown the image and, for a defect, its mask.

Each reply must be JSON (``{"question", "options": {A..D}, "answer"}``) and is validated: exactly one
correct option, four distinct options, an answer not guessable from length or wording (see
:func:`check_reply`). A rejected reply is asked again, with the reason, up to ``attempts`` times; each
attempt is its own request, so the cache replays the whole exchange and a rebuild costs nothing. A
question that never passes is left out and reported. The options are reshuffled with the build's seed
(the model's favourite answer letter tells nothing), and every question records the model, the digest
of its prompt and the attempts it took.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmeval import optionspec
from mmeval.builders.questions import DESCRIBE, EFFECT, Item, mcq, words
from mmeval.errors import InputError
from mmeval.jsonsafe import parse_json

TYPES = ("Defect Description", "Defect Analysis", "Object Analysis")
DEFAULT_ATTEMPTS = 3
#: options the writer's adapter gets unless -W says otherwise (JSON needs more than an answer letter)
DEFAULTS: dict[str, Any] = {"max_tokens": 600}
LONGER = 1.6  # the correct option may not be this many times longer (or shorter) than every other one
FORBIDDEN = ("all of the above", "none of the above", "both a and", "all of these")
MARKER = "Reply with JSON only"


class Rejected(Exception):
    """A reply that cannot be used; the message says why (and is shown to the model on the next attempt).

    ``kind`` names the rule it broke (the build report counts rejections by it); ``detail`` says where.
    """

    def __init__(self, kind: str, detail: str = "") -> None:
        self.kind = kind
        super().__init__(f"{kind} ({detail})" if detail else kind)


@dataclass(frozen=True)
class Job:
    """One question to write."""

    id: str
    key: str  # the image's key in the benchmark
    qtype: str
    image: Path
    mask: Path | None
    product: str
    defect: str | None = None
    context: str = ""


@dataclass
class Outcome:
    item: Item | None = None
    attempts: int = 0
    rejections: list[str] = field(default_factory=list)
    error: str | None = None


def prompt(job: Job, attempt: int = 1, max_attempts: int = DEFAULT_ATTEMPTS, last: str = "") -> str:
    """The request's text: what the images are, what to write, the rules, the JSON shape."""
    if job.qtype == "Object Analysis":
        lines = [f"The image shows a normal, defect-free {job.product}.",
                 "Write one multiple-choice question about its structure or details that can only be answered by "
                 "looking at this image (its parts, their number, arrangement, colour or shape), with four options: "
                 "one correct for this image and three wrong for it."]
        question = "your question"
    else:
        lines = [f"The {'first ' if job.mask else ''}image shows a {job.product} with a defect"
                 + (f" ({job.defect})" if job.defect else "")
                 + ("; the second image is the defect's mask (white marks the defect)." if job.mask else ".")]
        if job.qtype == "Defect Description":
            question = DESCRIBE
            lines.append(f'Write four options for the question "{question}": one that correctly describes what the '
                         "defect in this image looks like, and three that describe defects this image does not show.")
        else:
            question = EFFECT
            lines.append(f'Write four options for the question "{question}": one that states the likely effect of '
                         "this defect on the product (its function, safety or appearance), and three effects that do "
                         "not follow from it.")
    if job.context:
        lines.append(f"Background on this product (it may help): {job.context}")
    lines.append("Rules: exactly one option is correct; the four options are distinct and of similar length and "
                 "style; nobody may guess the correct one without the image (it must not repeat the question's words "
                 "more than the others, and no option may be 'all of the above' or 'none of the above').")
    lines.append(f'{MARKER}: {{"question": "{question}", "options": {{"A": "...", "B": "...", "C": "...", '
                 '"D": "..."}, "answer": "A"}')
    if attempt > 1:
        lines.append(f"Attempt {attempt} of {max_attempts}. Your previous reply was rejected: {last}. Reply again, "
                     "following every rule.")
    return "\n".join(lines)


def _json_object(text: str) -> dict[str, Any]:
    body = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", body, re.DOTALL)
    if fence:
        body = fence.group(1).strip()
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        raise Rejected("the reply is not JSON", "no object found")
    try:
        data = parse_json(body[start:end + 1], "the reply")
    except InputError as exc:
        raise Rejected("the reply is not JSON", str(exc).removeprefix("the reply: ")) from None
    if not isinstance(data, dict):
        raise Rejected("the reply is not JSON", "not an object")
    return data


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def check_reply(text: str, job: Job) -> tuple[str, str, list[str]]:
    """(question, correct option, three wrong options) from a reply; raises Rejected with the reason."""
    data = _json_object(text)
    options = data.get("options")
    if isinstance(options, list):
        options = {chr(65 + i): v for i, v in enumerate(options)}
    if not isinstance(options, dict) or not options:
        raise Rejected("'options' is missing or not an object of lettered options")
    options = {str(k).strip().upper(): v for k, v in options.items()}
    if sorted(options) != ["A", "B", "C", "D"]:
        raise Rejected("expected exactly four options A-D", f"got {', '.join(sorted(options)) or 'none'}")
    if not all(isinstance(v, str) and v.strip() for v in options.values()):
        raise Rejected("every option must be non-empty text")
    answer = data.get("answer")
    letters = [a for a in (answer if isinstance(answer, list) else re.split(r"[\s,;/&]+|\band\b", str(answer or "")))
               if isinstance(a, str) and a.strip()]
    letters = [a.strip().strip(".()").upper() for a in letters]
    if len(letters) != 1:
        if not letters:
            raise Rejected("'answer' is missing")
        raise Rejected("exactly one option must be correct", f"the answer names {len(letters)}: {', '.join(letters)}")
    if letters[0] not in options:
        raise Rejected("the answer is not one of the options A-D", f"it is '{letters[0]}'")
    texts = {k: v.strip() for k, v in options.items()}
    seen: dict[str, str] = {}
    for k in sorted(texts):
        n = _norm(texts[k])
        if n in seen:
            raise Rejected("two options say the same thing (two correct or duplicate options)", f"{seen[n]} and {k}")
        seen[n] = k
    for k, v in texts.items():
        if any(f in v.lower() for f in FORBIDDEN):
            raise Rejected("an option is 'all/none of the above'", f"option {k}")
    if job.qtype == "Object Analysis":
        question = str(data.get("question") or "").strip()
        if not question or not question.endswith("?"):
            raise Rejected("'question' must be a question (ending with '?')")
    else:
        question = DESCRIBE if job.qtype == "Defect Description" else EFFECT
    correct = texts[letters[0]]
    wrong = [texts[k] for k in sorted(texts) if k != letters[0]]
    lengths = [len(w) for w in wrong]
    if len(correct) > LONGER * max(lengths) and len(correct) - max(lengths) > 15:
        raise Rejected("the correct option is much longer than every other one (guessable from its length)")
    if len(correct) * LONGER < min(lengths) and min(lengths) - len(correct) > 15:
        raise Rejected("the correct option is much shorter than every other one (guessable from its length)")
    asked = words(question)
    if len(words(correct) & asked) - max(len(words(w) & asked) for w in wrong) >= 2:
        raise Rejected("the correct option repeats the question's words more than the others (guessable from "
                       "its wording)")
    return question, correct, wrong


class Writer:
    """Writes questions through the OpenAI-compatible adapter; one instance per build."""

    def __init__(self, spec: str, args: list[str] | None = None, *, seed: int = 0, attempts: int = DEFAULT_ATTEMPTS,
                 concurrency: int | None = None) -> None:
        from mmeval.model_adapters import build_adapter, split_model
        from mmeval.model_adapters.base import AdapterSettings

        family, _ = split_model(spec)
        if family.name != "openai":
            raise InputError(f"--writer {spec}: questions are written through an OpenAI-compatible API; give "
                             "--writer openai:MODEL (with -W base_url=... for a local server)")
        if attempts < 1:
            raise InputError("--writer-attempts must be at least 1")
        options = {**DEFAULTS, **optionspec.parse_pairs(args, "--writer-arg")}
        family.load().split_options(options)  # unknown or invalid options: an error naming --writer-arg
        self.spec = spec
        self.attempts = attempts
        self.adapter = build_adapter(spec, options, AdapterSettings(seed=seed, concurrency=concurrency))
        self.rejections: dict[str, int] = {}

    def write(self, jobs: list[Job], rngs: dict[str, np.random.Generator]) -> dict[str, Outcome]:
        """Every job's outcome: a validated question, or why it could not be written."""
        from mmeval.prompting.messages import ImagePart, Message, Request, TextPart

        outcomes = {job.id: Outcome() for job in jobs}
        pending = {job.id: job for job in jobs}
        last: dict[str, str] = {}
        for attempt in range(1, self.attempts + 1):
            if not pending:
                break
            texts: dict[str, str] = {}
            batch = []
            for job in pending.values():
                text = prompt(job, attempt, self.attempts, last.get(job.id, ""))
                texts[job.id] = text
                parts: list[Any] = [TextPart(text=text), ImagePart(path=str(job.image), role="query")]
                if job.mask is not None:
                    parts.append(ImagePart(path=str(job.mask), role="reference"))
                batch.append(Request(id=f"{job.id}@{attempt}", task=job.qtype, image=job.key, options={},
                                     message=Message(parts=parts)))
            for resp in self.adapter.predict(batch):
                job_id = resp.id.rsplit("@", 1)[0]
                job, out = pending[job_id], outcomes[job_id]
                out.attempts = attempt
                if resp.error:
                    out.error = f"the writer gave no reply ({resp.error})"
                    continue
                try:
                    question, correct, wrong = check_reply(resp.text, job)
                except Rejected as exc:
                    out.rejections.append(str(exc))
                    last[job_id] = str(exc)
                    self.rejections[exc.kind] = self.rejections.get(exc.kind, 0) + 1
                    continue
                origin = {"method": "writer", "model": self.spec, "attempts": attempt,
                          "prompt_digest": hashlib.sha256(texts[job_id].encode()).hexdigest()[:16]}
                out.item = mcq(question, correct, wrong, job.qtype, rngs[job_id], origin)
            pending = {k: j for k, j in pending.items() if outcomes[k].item is None and outcomes[k].error is None}
        for job_id in pending:
            out = outcomes[job_id]
            out.error = f"rejected {len(out.rejections)} time(s); last: {out.rejections[-1]}"
        return outcomes

    def stats(self) -> dict[str, Any]:
        info = self.adapter.run_info()
        keep = ("model", "base_url", "requests", "retries", "errors", "cache_hits", "prompt_tokens",
                "completion_tokens", "estimated_cost_usd", "cache")
        return {**{k: info.get(k) for k in keep}, "model": self.spec,
                "rejected_replies": dict(sorted(self.rejections.items()))}

    def close(self) -> None:
        self.adapter.close()
