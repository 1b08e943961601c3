"""OpenAI-compatible chat APIs (OpenAI, vLLM, SGLang, other OpenAI-compatible services).

``--model openai:gpt-4o`` answers every question with one chat-completion request through the official
``openai`` client (``AsyncOpenAI``). ``-M base_url=...`` points it at any other OpenAI-compatible server.

This module holds what is OpenAI's; concurrency, rate limits, retries, the response cache, key
scrubbing and statistics come from the shared engine of HTTP families (``model_adapters/remote/``).

How it works
  * The neutral message maps, part by part and in order, to the content list of one user message:
    ``{"type": "text"}`` for text, ``{"type": "image_url"}`` for images, sent as base64 JPEG data URLs
    (quality 95) resized so the long side is at most ``-M max_image_side=...`` (512 as in MMAD).
  * Every request: ``temperature=0``, ``seed=--seed``, ``max_tokens`` from ``-M max_tokens=...`` (64). It is sent with
    the client's generic ``post`` (its documented route for raw bodies: same auth, base URL, timeout and
    error classes as ``chat.completions.create``) so the JSON body is encoded once, for the cache key too.
  * The client's transport is aiohttp (``openai.DefaultAioHttpClient``) when aiohttp is installed and no
    proxy is set for the endpoint in the environment, else its default httpx (``-M transport=...``).
  * ``--concurrency N`` requests are in flight at once (8 by default); ``predict`` yields each answer the
    moment it arrives. ``-M rpm=...`` / ``-M tpm=...`` add token-bucket limits on requests and
    (estimated, then corrected) tokens per minute.
  * Faults: 429, 408/409, 5xx, timeouts, connection errors and malformed bodies are retried with
    exponential backoff and seeded jitter, honouring ``Retry-After`` (a 429 pauses every request, not
    only the one that got it). The client's own retries are off (``max_retries=0``). After
    ``-M max_retries=...`` retries the question is answered with ``Response(error=...)``: recorded, never
    dropped, and retried by the next run. Other 4xx errors (bad request ...) are recorded at once;
    401/403/404 (bad key, no access, unknown model or wrong ``-M base_url=...``) stop the run with an
    AdapterError, since every question would fail the same way.
  * Refusals (``message.refusal``, ``finish_reason == "content_filter"``, or a reply that opens with
    "I'm sorry / I can't ..." and names no option) come back as text with ``note="refusal"``; an empty
    reply with ``note="empty"``.
  * ``--answer-mode likelihood`` asks for one token with ``logprobs`` / ``top_logprobs=20`` and scores
    each option letter by the log-probability of its token (``"A"``, ``" A"``, ``"(A"`` ... summed); a
    letter absent from the top-20 list gets a floor one nat below the lowest listed log-probability.
    When the server sends no usable logprobs the generated token is parsed like any text.
  * A sqlite response cache (``-M cache=...``, default ``$MMEVAL_HOME/api_cache.sqlite`` with
    MMEVAL_HOME defaulting to ``~/.cache/mmeval``; ``-M no_cache=true`` disables it) is keyed by the exact
    request: base URL, model, messages, and every parameter, each image named by its file's SHA-256 and what
    decides its encoding (size limit, quality, Pillow and libjpeg versions), so a hit decodes no image. Answered
    requests (refusals and empty replies included) are cached; errors never are.
  * ``run_info()`` reports requests, retries, cache hits, token usage and an estimated cost from a
    small price table (USD per million tokens, OpenAI list prices; ``null`` for unknown models).

Options marked ``affects_predictions: False`` (concurrency, limits, retries, timeout, cache, key variable)
change how answers are fetched, not what they are.

Not handled: reasoning models that reject ``temperature``/``max_tokens`` (o1, o3, gpt-5 ...), streaming,
and the Batch API.

The API key
  Read from the environment variable named by ``-M api_key_env=...`` (default ``OPENAI_API_KEY``); the option
  holds only the variable's *name*, so the key never enters the run config, ``run.json``, predictions,
  the cache or the report. Every error string and every returned text is scrubbed of the key (and of
  any 8-character piece of it) before it leaves the adapter. If the variable is unset: an AdapterError
  naming the variable, except for a loopback ``-M base_url=...`` (127.0.0.1, localhost, ::1), where a local
  vLLM/SGLang server usually needs no key and the placeholder ``EMPTY`` is sent.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from mmeval.errors import InputError
from mmeval.jsonsafe import parse_json
from mmeval.model_adapters.base import OPERATIONAL, AdapterError, AdapterSettings
from mmeval.model_adapters.remote.engine import DEFAULT_CONCURRENCY, Malformed, RemoteAdapter, Usage
from mmeval.model_adapters.remote.images import JPEG_QUALITY, encode_image
from mmeval.model_adapters.remote.options import RemoteOptions, key_env_field
from mmeval.model_adapters.remote.pricing import OPENAI_PRICES as PRICES
from mmeval.model_adapters.remote.pricing import price_for
from mmeval.model_adapters.remote.retry import Failure, Retry
from mmeval.model_adapters.remote.urls import environment_proxy, is_loopback, public_url
from mmeval.prompting.messages import Request, Response, log_sum_exp, to_openai_messages

__all__ = ["DEFAULT_CONCURRENCY", "DUMMY_KEY", "JPEG_QUALITY", "PRICES", "TOP_LOGPROBS", "OpenAIAdapter",
           "OpenAIOptions", "encode_image", "is_loopback", "letter_scores", "names_an_option", "price_for",
           "public_url"]

OPENAI_URL = "https://api.openai.com/v1"
TOP_LOGPROBS = 20
FLOOR_MARGIN = 1.0  # nats below the lowest listed log-probability, for letters not listed
DUMMY_KEY = "EMPTY"  # what a local vLLM / SGLang server accepts when started without --api-key
_REFUSAL = re.compile(
    r"^\W*(?:i['’]?m sorry|i am sorry|sorry\b|i apologi[sz]e|unfortunately\b|"
    r"i (?:can(?:['’]?t|not)|won['’]?t|am unable to|am not able to|'m unable to|'m not able to)\b|"
    r"i['’]m (?:unable|not able) to\b|as an ai\b)",
    re.IGNORECASE,
)
_LETTER_TOKEN = re.compile(r"^[\s(\[{*\"'`]*([A-Z])[\s)\]}.:,*\"'`]*$")


class OpenAIOptions(RemoteOptions):
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 for vLLM or SGLang "
                          "(default: the OpenAI API)")
    api_key_env: str = key_env_field("OPENAI_API_KEY")
    max_tokens: int = Field(64, ge=1, description="most tokens the API may generate per answer (generate mode)")
    image_detail: Literal["low", "high", "auto"] = Field("auto", description="the API's image 'detail' setting")
    max_image_side: int = Field(512, ge=16, description="images are resized so their long side is at most this "
                                                         "many pixels before upload (MMAD: 512)")
    transport: Literal["auto", "aiohttp", "httpx"] = Field(
        "auto", json_schema_extra=OPERATIONAL,
        description="the client's HTTP transport: aiohttp (the openai client's aiohttp option, about half the CPU "
                    "per request) or its default httpx; auto takes aiohttp when it is installed and no proxy is "
                    "set in the environment (aiohttp ignores HTTP(S)_PROXY)")


# ------------------------------------------------------------------------------------------------ helpers


def letter_scores(top: list[dict[str, Any]], letters: Sequence[str]) -> dict[str, float] | None:
    """Option-letter log-probabilities from a top_logprobs list; None when no letter is listed.

    A letter's tokens (" B", "B", "(B") are combined by :func:`log_sum_exp`: a ``-inf`` entry is impossible, a
    NaN entry makes the letter unusable (and with it the answer, as :func:`top_option` reads scores)."""
    found: dict[str, list[float]] = {}
    values = []
    for item in top:
        if not isinstance(item, dict):
            continue
        token, lp = item.get("token"), item.get("logprob")
        if not isinstance(token, str) or not isinstance(lp, (int, float)) or isinstance(lp, bool):
            continue
        if math.isfinite(lp):
            values.append(float(lp))
        m = _LETTER_TOKEN.match(token)
        if m and m.group(1) in letters:
            found.setdefault(m.group(1), []).append(float(lp))
    if not found:
        return None
    # letters the list leaves out lie below its lowest finite entry (impossible when it has none)
    floor = min(values) - FLOOR_MARGIN if values else -math.inf
    out = {}
    for letter in letters:
        lps = found.get(letter)
        if lps:  # -inf: impossible; NaN and +inf: unusable (see log_sum_exp), kept so (min() reads NaN as 0.0)
            combined = log_sum_exp(lps)
            out[letter] = combined if math.isnan(combined) or combined == math.inf else min(0.0, combined)
        else:
            out[letter] = floor
    return out


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _timed_out(exc: BaseException) -> bool:
    """Whether a timeout error really is one: the aiohttp transport reports refused connections as timeouts."""
    root = _root_cause(exc)
    return root is exc or isinstance(root, TimeoutError) or "timeout" in type(root).__name__.lower()


def names_an_option(text: str, letters: Sequence[str]) -> bool:
    return any(re.search(rf"(?<![A-Za-z]){re.escape(k)}(?![A-Za-z])", text) for k in letters)


# ------------------------------------------------------------------------------------------------ adapter


class OpenAIAdapter(RemoteAdapter[OpenAIOptions]):
    """Chat-completions API client; see the module docstring."""

    family = "openai"
    Options = OpenAIOptions
    answer_modes = ("generate", "likelihood")
    default_base_url = OPENAI_URL
    prices = PRICES

    def __init__(self, name: str, options: BaseModel | None = None, settings: AdapterSettings | None = None) -> None:
        super().__init__(name, options, settings)
        self.dummy_key = self.keyless  # a loopback server without a key gets the placeholder
        self.stats.counters["likelihood_fallbacks"] = 0
        self._client: Any = None

    # -------------------------------------------------------------------------------- the client

    async def open(self) -> None:
        import openai

        try:  # openai >= 3 is built on httpx2, older releases on httpx
            import httpx2 as http
        except ImportError:
            http = importlib.import_module("httpx")

        o = self.opts
        self._raw_type = http.Response
        self._client = openai.AsyncOpenAI(api_key=self.key or DUMMY_KEY, base_url=o.base_url, max_retries=0,
                                          timeout=o.request_timeout, http_client=self._http_client(openai))
        # send the pre-encoded body where the client accepts raw content (openai >= 2), else the dict
        self._raw_content = "content" in inspect.signature(self._client.post).parameters

    def _http_client(self, openai: Any) -> Any:
        """The openai client's aiohttp transport where chosen and possible, else None (its default, httpx)."""
        choice = self.opts.transport
        if choice == "httpx":
            return None
        # the openai releases with this option define DefaultAioHttpClient, and refuse to build it without aiohttp
        available = importlib.util.find_spec("aiohttp") is not None and hasattr(openai, "DefaultAioHttpClient")
        if choice == "auto":
            return openai.DefaultAioHttpClient() if available and not environment_proxy(self.base_url) else None
        if not available:
            raise AdapterError("-M transport=aiohttp needs aiohttp and an openai release with its aiohttp option: "
                               "pip install -U 'openai[aiohttp]'")
        return openai.DefaultAioHttpClient()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    # -------------------------------------------------------------------------------- request building

    async def build_request(self, req: Request) -> dict[str, Any]:
        o = self.opts
        urls = [await self.images.data_url(p.path, o.max_image_side) for p in req.message.images]
        body: dict[str, Any] = {"model": self.model,
                                "messages": to_openai_messages(req.message.parts, urls, o.image_detail),
                                "temperature": 0, "seed": self.seed}
        if self.answer_mode == "likelihood":
            body.update(max_tokens=1, logprobs=True, top_logprobs=TOP_LOGPROBS)
        else:
            body["max_tokens"] = o.max_tokens
        return body

    def estimate_tokens(self, body: dict[str, Any], payload: bytes) -> int:
        chars, images = 0, 0
        for item in body["messages"][0]["content"]:
            if item["type"] == "text":
                chars += len(item["text"])
            else:
                images += 1
        tiles = max(1, math.ceil(self.opts.max_image_side / 512)) ** 2  # OpenAI: 85 + 170 per 512-px tile
        per_image = 85 if self.opts.image_detail == "low" else 85 + 170 * tiles
        return chars // 4 + images * per_image + int(body.get("max_tokens") or 0)

    # -------------------------------------------------------------------------------- the call

    async def send(self, body: dict[str, Any], payload: bytes) -> dict[str, Any]:
        # the client's generic post (its documented way to send a raw body): the same auth, base URL,
        # timeout and error classes as chat.completions.create, without re-walking and re-encoding the
        # message list (a third of the client's CPU per call)
        if self._raw_content:
            http = await self._client.post("/chat/completions", content=payload, cast_to=self._raw_type,
                                           options={"headers": {"Content-Type": "application/json"}})
        else:
            http = await self._client.post("/chat/completions", body=body, cast_to=self._raw_type)
        await http.aread()
        try:
            data = parse_json(http.text, "the reply")
        except InputError as exc:
            raise Malformed(f"not JSON ({http.text[:60]!r}: {exc})") from None
        _check(data)
        return data

    def classify(self, exc: Exception) -> Failure | None:
        import openai

        if isinstance(exc, openai.APIStatusError):
            return self.http_failure(exc.status_code, _error_detail(exc), exc.response.headers)
        if isinstance(exc, openai.APITimeoutError) and _timed_out(exc):
            return Retry(f"timed out after {self.opts.request_timeout:g} s", connection=True)
        if isinstance(exc, openai.APIConnectionError):
            cause = _root_cause(exc) if isinstance(exc, openai.APITimeoutError) else exc.__cause__
            return Retry(f"connection error: {type(cause).__name__ if cause else ''} {cause or exc}".strip(),
                         connection=True)
        return None

    def usage(self, reply: dict[str, Any]) -> Usage:
        use = _usage_counts(reply)
        return Usage(use.get("prompt_tokens", 0), use.get("completion_tokens", 0), use.get("total_tokens"))

    async def server_identity(self) -> dict[str, Any] | None:
        """The served model as the server lists it (``GET /models``): its id and, from vLLM, the weights' path."""
        page = await self._client.models.list()
        for entry in getattr(page, "data", []) or []:
            if getattr(entry, "id", None) == self.model:
                found = {"id": entry.id, "root": getattr(entry, "root", None), "parent": getattr(entry, "parent", None)}
                return {k: v for k, v in found.items() if v is not None}
        return None

    def to_response(self, req: Request, reply: dict[str, Any]) -> Response:
        _check(reply)
        choice = reply["choices"][0]
        msg = choice.get("message") or {}
        content = msg.get("content")
        if isinstance(content, list):  # some servers send content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        text = content if isinstance(content, str) else ""
        refusal = msg.get("refusal")
        letters = sorted(req.options)
        scores = None
        if self.answer_mode == "likelihood":
            lp = choice.get("logprobs") or {}
            items = lp.get("content") if isinstance(lp, dict) else None
            if items and isinstance(items[0], dict):
                first = items[0]
                top = list(first.get("top_logprobs") or [])
                listed = {t.get("token") for t in top if isinstance(t, dict)}
                if "token" in first and first.get("token") not in listed:
                    top.append({"token": first.get("token"), "logprob": first.get("logprob")})
                scores = letter_scores(top, letters)
            if scores is None:
                self.stats.counters["likelihood_fallbacks"] += 1
        note = None
        if (isinstance(refusal, str) and refusal.strip()) or choice.get("finish_reason") == "content_filter":
            note = "refusal"
            text = text or (refusal if isinstance(refusal, str) else "")
        elif scores is None and not text.strip():
            note = "empty"
        elif (scores is None and text.strip() not in letters and _REFUSAL.search(text[:200])
              and not names_an_option(text, letters)):
            note = "refusal"
        use = _usage_counts(reply)
        return Response(id=req.id, text=text, scores=scores, note=note, usage=use or None)


def _usage_counts(reply: dict[str, Any]) -> dict[str, int]:
    """The token counts a reply reports, best effort: a missing or malformed usage block counts nothing."""
    usage = reply.get("usage")
    if not isinstance(usage, dict):
        return {}
    return {k: int(v) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            if isinstance(v := usage.get(k), (int, float)) and not isinstance(v, bool) and v >= 0 and v == v}


def _check(data: object) -> None:
    """Raise Malformed unless ``data`` looks like a chat completion with one answer."""
    if not isinstance(data, dict):
        raise Malformed(f"expected a JSON object, got {type(data).__name__}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Malformed("no 'choices'")
    msg = choices[0].get("message")
    if not isinstance(msg, dict):
        raise Malformed("no 'message' in the first choice")


def _error_detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    msg = None
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else str(err)
    text = str(msg or getattr(exc, "message", "") or exc)
    return text[:300]
