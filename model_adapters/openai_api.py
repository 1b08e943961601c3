"""OpenAI-compatible chat APIs (OpenAI, vLLM, SGLang, other OpenAI-compatible services).

``--model openai:gpt-4o`` answers every question with one chat-completion request through the official
``openai`` client (``AsyncOpenAI``). ``-M base_url=...`` points it at any other OpenAI-compatible server.

How it works
  * The neutral message maps, part by part and in order, to the content list of one user message:
    ``{"type": "text"}`` for text, ``{"type": "image_url"}`` for images, sent as base64 JPEG data URLs
    (quality 95) resized so the long side is at most ``-M max_image_side=...`` (512 as in MMAD).
  * Every request: ``temperature=0``, ``seed=--seed``, ``max_tokens`` from ``-M max_tokens=...`` (64). It is sent with
    the client's generic ``post`` (its documented route for raw bodies: same auth, base URL, timeout and
    error classes as ``chat.completions.create``) so the JSON body is encoded once, for the cache key too.
  * ``--concurrency N`` requests are in flight at once (an asyncio semaphore on a background event-loop
    thread; ``predict`` stays a plain generator and yields each answer the moment it arrives). The
    runner hands over 16 x N questions per batch, so the end-of-batch drain costs little; at most 2 x N
    of them are being prepared (images encoded) at a time. ``-M rpm=...`` / ``-M tpm=...`` add token-bucket limits
    on requests and (estimated, then corrected) tokens per minute.
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
    request: base URL, model, messages including the image bytes, and every parameter. Answered
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

import asyncio
import base64
import concurrent.futures
import hashlib
import inspect
import io
import json
import logging
import math
import os
import queue
import random
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mmeval.home import mmeval_home
from mmeval.model_adapters.base import OPERATIONAL, AdapterError, AdapterSettings, ModelAdapter
from mmeval.prompting.messages import Request, Response, to_openai_messages

log = logging.getLogger(__name__)

#: USD per 1M tokens (input, output), OpenAI list prices; an estimate (cached-input discounts ignored)
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-2024-05-13": (5.00, 15.00),
    "gpt-4o-mini": (0.15, 0.60),
    "chatgpt-4o-latest": (5.00, 15.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.5-preview": (75.00, 150.00),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
}

TOP_LOGPROBS = 20
FLOOR_MARGIN = 1.0  # nats below the lowest listed log-probability, for letters not listed
MAX_BACKOFF = 60.0  # seconds, cap of the exponential backoff
MAX_RETRY_AFTER = 120.0  # seconds, cap on a server's Retry-After
JPEG_QUALITY = 95
DUMMY_KEY = "EMPTY"  # what a local vLLM / SGLang server accepts when started without --api-key
RETRY_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
FATAL_STATUS = {401: "the API key was rejected", 403: "the API key has no access to this model",
                404: "model or endpoint not found (check the model name and -M base_url)"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_REFUSAL = re.compile(
    r"^\W*(?:i['’]?m sorry|i am sorry|sorry\b|i apologi[sz]e|unfortunately\b|"
    r"i (?:can(?:['’]?t|not)|won['’]?t|am unable to|am not able to|'m unable to|'m not able to)\b|"
    r"i['’]m (?:unable|not able) to\b|as an ai\b)",
    re.IGNORECASE,
)
_LETTER_TOKEN = re.compile(r"^[\s(\[{*\"'`]*([A-Z])[\s)\]}.:,*\"'`]*$")


DEFAULT_CONCURRENCY = 8  # requests in flight at once unless --concurrency says otherwise


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 for vLLM or SGLang "
                          "(default: the OpenAI API)")
    api_key_env: str = Field(
        "OPENAI_API_KEY", json_schema_extra=OPERATIONAL,
        description="NAME of the environment variable holding the API key (the key itself is never a flag "
                    "and never stored)")
    max_tokens: int = Field(64, ge=1, description="most tokens the API may generate per answer (generate mode)")
    image_detail: Literal["low", "high", "auto"] = Field("auto", description="the API's image 'detail' setting")
    max_image_side: int = Field(512, ge=16, description="images are resized so their long side is at most this "
                                                         "many pixels before upload (MMAD: 512)")
    rpm: float | None = Field(None, gt=0, json_schema_extra=OPERATIONAL, description="API requests-per-minute limit")
    tpm: float | None = Field(None, gt=0, json_schema_extra=OPERATIONAL,
                              description="API tokens-per-minute limit (estimated before, corrected after each "
                                          "request)")
    max_retries: int = Field(5, ge=0, le=50, json_schema_extra=OPERATIONAL,
                             description="API retries per question (429, 5xx, timeouts, connection errors, "
                                         "malformed replies) before it is recorded as an error for the next run "
                                         "to retry")
    retry_base_delay: float = Field(1.0, ge=0, json_schema_extra=OPERATIONAL,
                                    description="seconds before the first API retry; doubles each retry, with "
                                                "jitter (a longer Retry-After from the server wins)")
    request_timeout: float = Field(120.0, gt=0, json_schema_extra=OPERATIONAL,
                                   description="seconds before an API request times out (then retried)")
    cache: str | None = Field(None, json_schema_extra=OPERATIONAL,
                              description="sqlite file caching API responses by exact request (default: "
                                              "$MMEVAL_HOME/api_cache.sqlite, MMEVAL_HOME defaults to "
                                              "~/.cache/mmeval)")
    no_cache: bool = Field(False, json_schema_extra=OPERATIONAL,
                           description="do not read or write the API response cache")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        # the value never appears in the message: a user may have pasted the key itself here
        if not _ENV_NAME.match(v) or (len(v) >= 24 and any(c.isdigit() for c in v) and any(c.islower() for c in v)):
            raise ValueError("expects the NAME of an environment variable (like OPENAI_API_KEY), not a key; "
                             "put the key into that variable")
        return v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expects an http(s) URL such as http://127.0.0.1:8000/v1")
        return v


# ------------------------------------------------------------------------------------------------ helpers


def is_loopback(url: str | None) -> bool:
    if not url:
        return False
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def public_url(url: str | None) -> str | None:
    """The URL without user:password@ or a query string, for reports."""
    if not url:
        return url
    p = urlsplit(url)
    netloc = p.hostname or ""
    if p.port:
        netloc += f":{p.port}"
    return urlunsplit((p.scheme, netloc, p.path, "", ""))


def price_for(model: str) -> tuple[float, float] | None:
    """Exact name, else the longest known name the model name starts with (dated snapshots)."""
    name = model.lower().split("/")[-1]
    if name in PRICES:
        return PRICES[name]
    best = max((k for k in PRICES if name.startswith(k + "-")), key=len, default=None)
    return PRICES[best] if best else None


def encode_image(path: str, max_side: int) -> str:
    """A JPEG data URL of the image, its long side at most ``max_side`` pixels."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        img = im.convert("RGB") if im.mode != "RGB" else im.copy()
    w, h = img.size
    if max(w, h) > max_side:
        scale = max_side / max(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def letter_scores(top: list[dict[str, Any]], letters: Sequence[str]) -> dict[str, float] | None:
    """Option-letter log-probabilities from a top_logprobs list; None when no letter is listed."""
    found: dict[str, list[float]] = {}
    values = []
    for item in top:
        if not isinstance(item, dict):
            continue
        token, lp = item.get("token"), item.get("logprob")
        if not isinstance(token, str) or not isinstance(lp, (int, float)) or math.isnan(lp):
            continue
        values.append(float(lp))
        m = _LETTER_TOKEN.match(token)
        if m and m.group(1) in letters:
            found.setdefault(m.group(1), []).append(float(lp))
    if not found:
        return None
    floor = min(values) - FLOOR_MARGIN
    out = {}
    for letter in letters:
        lps = found.get(letter)
        if lps:
            peak = max(lps)
            out[letter] = min(0.0, peak + math.log(sum(math.exp(x - peak) for x in lps)))
        else:
            out[letter] = floor
    return out


def names_an_option(text: str, letters: Sequence[str]) -> bool:
    return any(re.search(rf"(?<![A-Za-z]){re.escape(k)}(?![A-Za-z])", text) for k in letters)


class _Scrubber:
    """Removes the key, and any 8-character piece of it, from strings."""

    def __init__(self, secret: str) -> None:
        self.secret = secret if secret and secret != DUMMY_KEY else ""
        n = 8
        self.pieces = {self.secret[i:i + n] for i in range(len(self.secret) - n + 1)}  # empty when shorter

    def __call__(self, text: str | None) -> str | None:
        if not text or not self.secret:
            return text
        text = text.replace(self.secret, "***")
        if any(p in text for p in self.pieces):
            mask = [False] * len(text)
            for p in self.pieces:
                start = text.find(p)
                while start >= 0:
                    for i in range(start, start + len(p)):
                        mask[i] = True
                    start = text.find(p, start + 1)
            out, prev = [], False
            for ch, hidden in zip(text, mask):
                if hidden:
                    if not prev:
                        out.append("***")
                else:
                    out.append(ch)
                prev = hidden
            text = "".join(out)
        return text


class _Bucket:
    """An async token bucket: ``per_minute`` units per minute, bursts of up to one second's worth."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, n: float) -> None:
        n = min(n, self.capacity)
        async with self.lock:
            while True:
                self._refill()
                if self.level >= n:
                    self.level -= n
                    return
                await asyncio.sleep((n - self.level) / self.rate)

    def adjust(self, delta: float) -> None:
        """Charge (or refund) the difference between estimated and actual use."""
        self._refill()
        self.level = min(self.capacity, self.level - delta)


class _Cache:
    """Responses by request hash in a sqlite file; safe to share between processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                              "created REAL NOT NULL, response TEXT NOT NULL)")
        except (OSError, sqlite3.Error) as exc:
            raise AdapterError(f"-M cache={path}: cannot use it as a sqlite cache ({exc}); "
                               "choose another path or pass -M no_cache=true") from None
        self.lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self.lock:
            row = self.conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            return None

    def put(self, key: str, model: str, data: dict[str, Any]) -> None:
        blob = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        with self.lock:
            self.conn.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", (key, model, time.time(), blob))

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class _Fatal(Exception):
    """Every question would fail the same way (bad key, unknown model): stop the run."""


class _Malformed(Exception):
    pass


class _Stats:
    def __init__(self) -> None:
        self.questions = self.requests = self.retries = self.errors = self.cache_hits = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.refusals = self.empty = self.rate_limited = self.likelihood_fallbacks = 0
        self.max_in_flight = self.in_flight = 0


# ------------------------------------------------------------------------------------------------ adapter


class OpenAIAdapter(ModelAdapter):
    """Chat-completions API client; see the module docstring."""

    family = "openai"
    Options = OpenAIOptions
    answer_modes = ("generate", "likelihood")

    def __init__(self, name: str, options: BaseModel | None = None, settings: AdapterSettings | None = None) -> None:
        super().__init__(name, options, settings)
        o: OpenAIOptions = self.options  # type: ignore[assignment]
        self.opts = o
        self.model = name
        # the runner waits for a whole batch before handing over the next, so the pipeline drains at each
        # batch end: a batch of 16 x concurrency keeps that tail to a sixteenth (requests wait cheaply)
        self.concurrency = self.settings.concurrency or DEFAULT_CONCURRENCY
        if self.settings.batch_size is None:
            self.batch_size = min(max(16 * self.concurrency, 64), 4096)
        env = o.api_key_env
        key = os.environ.get(env, "").strip()
        self.dummy_key = False
        if not key:
            if not is_loopback(o.base_url):
                raise AdapterError(f"no API key: the environment variable {env} is not set; export {env}=... "
                                   "(or name another variable with -M api_key_env)")
            key, self.dummy_key = DUMMY_KEY, True
        self._key = key  # never stored in options, config or reports
        self._scrub = _Scrubber(key)
        self._cache: _Cache | None = None
        self.cache_path = None if o.no_cache else (
            Path(o.cache).expanduser() if o.cache else mmeval_home() / "api_cache.sqlite")
        if self.cache_path is not None:
            self._cache = _Cache(self.cache_path)
        self.stats = _Stats()
        self._rng = random.Random(f"openai-backoff-{self.seed}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="mmeval-img")
        self._images: OrderedDict[str, asyncio.Future] = OrderedDict()  # path -> data URL, most recent last
        self._pause_until = 0.0

    def __repr__(self) -> str:  # no key in reprs either
        return f"OpenAIAdapter(model={self.model!r}, base_url={public_url(self.opts.base_url)!r})"

    # -------------------------------------------------------------------------------- the event loop

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            self._thread = threading.Thread(target=run, name="mmeval-openai-loop", daemon=True)
            self._thread.start()
            ready.wait()
            self._loop = loop
            asyncio.run_coroutine_threadsafe(self._setup(), loop).result()
        return self._loop

    async def _setup(self) -> None:
        import openai

        try:  # openai >= 3 is built on httpx2, older releases on httpx
            import httpx2 as http
        except ImportError:
            import httpx as http  # type: ignore[no-redef]

        o = self.opts
        self._raw_type = http.Response
        self._client = openai.AsyncOpenAI(api_key=self._key, base_url=o.base_url, max_retries=0,
                                          timeout=o.request_timeout)
        # send the pre-encoded body where the client accepts raw content (openai >= 2), else the dict
        self._raw_content = "content" in inspect.signature(self._client.post).parameters
        self._sem = asyncio.Semaphore(self.concurrency)
        self._prep = asyncio.Semaphore(2 * self.concurrency)
        self._rpm = _Bucket(o.rpm) if o.rpm else None
        self._tpm = _Bucket(o.tpm) if o.tpm else None

    def close(self) -> None:
        if self._loop is not None:
            loop = self._loop
            if self._client is not None:
                try:
                    asyncio.run_coroutine_threadsafe(self._client.close(), loop).result(timeout=10)
                except Exception:  # closing is best effort
                    pass
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            if not loop.is_running():
                loop.close()
            self._loop = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    # -------------------------------------------------------------------------------- predict

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        if not batch:
            return
        loop = self._ensure_loop()
        done: queue.SimpleQueue[asyncio.Task] = queue.SimpleQueue()  # tasks, in the order they finish
        tasks = asyncio.run_coroutine_threadsafe(self._start(batch, done), loop).result()
        try:
            for _ in tasks:
                while True:
                    try:
                        task = done.get(timeout=0.5)
                        break
                    except queue.Empty:
                        continue
                try:
                    yield task.result()
                except _Fatal as exc:
                    raise AdapterError(str(exc)) from None
        finally:  # the consumer stopped early (Ctrl-C, an error): whatever is not sent yet never will be
            if not loop.is_closed():
                loop.call_soon_threadsafe(lambda: [t.cancel() for t in tasks if not t.done()])

    async def _start(self, batch: Sequence[Request], done: queue.SimpleQueue) -> list[asyncio.Task]:
        """One task per request, created in the loop thread in one go (one cross-thread wake-up per batch)."""
        def finished(task: asyncio.Task) -> None:
            if not task.cancelled():
                task.exception()  # retrieved here: a fatal error not consumed after the run stopped stays quiet
            done.put(task)

        tasks = []
        for req in batch:
            task = asyncio.ensure_future(self._answer(req))
            task.add_done_callback(finished)
            tasks.append(task)
        return tasks

    async def _answer(self, req: Request) -> Response:
        # at most 2 x concurrency requests are being prepared or sent at once, so a large batch does not
        # hold every encoded request body in memory; the rest wait here, before any work is done
        async with self._prep:
            try:
                return await self._answer_one(req)
            except _Fatal:
                raise
            except Exception as exc:  # anything unforeseen still answers the question, with an error
                self.stats.errors += 1
                error = self._scrub(f"unexpected {type(exc).__name__}: {exc}")[:500]  # type: ignore[index]
                self._log_error(req.id, error)
                return Response(id=req.id, error=error)

    async def _answer_one(self, req: Request) -> Response:
        self.stats.questions += 1
        try:
            body = await self._body(req)
        except Exception as exc:  # an unreadable image: record it, the next run retries
            self.stats.errors += 1
            error = self._scrub(f"cannot prepare the request: {type(exc).__name__}: {exc}") or ""
            self._log_error(req.id, error)
            return Response(id=req.id, error=error)
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()  # sent as is
        key = self._cache_key(payload) if self._cache is not None else ""
        if self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                try:
                    resp = self._to_response(req, hit)
                    self.stats.cache_hits += 1
                    return resp
                except _Malformed:
                    pass
        data, error = await self._call(body, payload)
        if error is not None:
            self.stats.errors += 1
            self._log_error(req.id, error)
            return Response(id=req.id, error=error)
        resp = self._to_response(req, data)  # validated in _call, cannot raise
        usage = data.get("usage") or {}
        self.stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.stats.completion_tokens += int(usage.get("completion_tokens") or 0)
        if resp.note == "refusal":
            self.stats.refusals += 1
        elif resp.note == "empty":
            self.stats.empty += 1
        if self._cache is not None:
            try:
                self._cache.put(key, self.model, data)
            except sqlite3.Error as exc:
                log.warning("openai: could not write the API cache: %s", exc)
        return resp

    def _log_error(self, qid: str, error: str) -> None:
        """The first few failures are shown; the rest only counted (the runner reports the total)."""
        if self.stats.errors <= 3:
            log.warning("openai: question %s got no answer: %s%s", qid, error,
                        "; further failures are not shown" if self.stats.errors == 3 else "")
        else:
            log.debug("openai: question %s got no answer: %s", qid, error)

    # -------------------------------------------------------------------------------- request building

    async def _image_url(self, path: str) -> str:
        key = path  # one adapter serves one run: an image file does not change under it
        fut = self._images.get(key)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = asyncio.ensure_future(loop.run_in_executor(self._pool, encode_image, path, self.opts.max_image_side))
            self._images[key] = fut
            while len(self._images) > 256:
                self._images.popitem(last=False)
        else:
            self._images.move_to_end(key)
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            return fut.result()
        try:
            return await asyncio.shield(fut)
        except Exception:
            self._images.pop(key, None)
            raise

    async def _body(self, req: Request) -> dict[str, Any]:
        o = self.opts
        urls = [await self._image_url(p.path) for p in req.message.images]
        body: dict[str, Any] = {"model": self.model,
                                "messages": to_openai_messages(req.message.parts, urls, o.image_detail),
                                "temperature": 0, "seed": self.seed}
        if self.answer_mode == "likelihood":
            body.update(max_tokens=1, logprobs=True, top_logprobs=TOP_LOGPROBS)
        else:
            body["max_tokens"] = o.max_tokens
        return body

    def _cache_key(self, payload: bytes) -> str:
        """The exact request: endpoint plus the JSON body (model, messages with the image bytes, parameters)."""
        h = hashlib.sha256((self.opts.base_url or "https://api.openai.com/v1").rstrip("/").encode() + b"\n")
        h.update(payload)
        return h.hexdigest()

    def _estimate_tokens(self, body: dict[str, Any]) -> int:
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

    def _backoff(self, retry: int) -> float:
        base = self.opts.retry_base_delay * (2 ** (retry - 1))
        return min(MAX_BACKOFF, base) * (0.5 + self._rng.random())

    async def _call(self, body: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], None] | tuple[None, str]:
        """The parsed completion, or (None, reason) after the retry budget or a non-retryable error."""
        import openai

        o = self.opts
        attempts = o.max_retries + 1
        reason = "no attempt made"
        estimate = self._estimate_tokens(body) if self._tpm else 0
        for attempt in range(attempts):
            retry_after: float | None = None
            while (wait := self._pause_until - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            async with self._sem:
                if self._rpm:
                    await self._rpm.take(1)
                if self._tpm:
                    await self._tpm.take(estimate)
                self.stats.requests += 1
                self.stats.in_flight += 1
                self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
                try:
                    # the client's generic post (its documented way to send a raw body): the same auth,
                    # base URL, timeout and error classes as chat.completions.create, without re-walking
                    # and re-encoding the message list (a third of the client's CPU per call)
                    if self._raw_content:
                        http = await self._client.post("/chat/completions", content=payload, cast_to=self._raw_type,
                                                       options={"headers": {"Content-Type": "application/json"}})
                    else:
                        http = await self._client.post("/chat/completions", body=body, cast_to=self._raw_type)
                    await http.aread()
                    data = self._parse(http.text)
                    if self._tpm:
                        used = (data.get("usage") or {}).get("total_tokens")
                        if isinstance(used, int):
                            self._tpm.adjust(used - estimate)
                    return data, None
                except openai.APIStatusError as exc:
                    status = exc.status_code
                    detail = self._scrub(_error_detail(exc))
                    if status in FATAL_STATUS:
                        where = public_url(o.base_url) or "api.openai.com"
                        hint = f"; the key comes from ${o.api_key_env}" if status in (401, 403) else ""
                        raise _Fatal(f"openai:{self.model} at {where}: HTTP {status}: {FATAL_STATUS[status]} "
                                     f"({detail}){hint}") from None
                    reason = f"HTTP {status}: {detail}"
                    if status not in RETRY_STATUS:
                        return None, self._scrub(f"{reason} (not retried)")  # type: ignore[return-value]
                    retry_after = _retry_after(exc.response.headers)
                    if status == 429:
                        self.stats.rate_limited += 1
                        if retry_after:
                            self._pause_until = max(self._pause_until, time.monotonic() + retry_after)
                except openai.APITimeoutError:
                    reason = f"timed out after {o.request_timeout:g} s"
                except openai.APIConnectionError as exc:
                    cause = exc.__cause__
                    reason = f"connection error: {type(cause).__name__ if cause else ''} {cause or exc}".strip()
                except _Malformed as exc:
                    reason = f"malformed response: {exc}"
                finally:
                    self.stats.in_flight -= 1
            if attempt + 1 < attempts:
                self.stats.retries += 1
                delay = max(self._backoff(attempt + 1), retry_after or 0.0)
                log.debug("openai: retry %d/%d in %.2f s: %s", attempt + 1, o.max_retries, delay, self._scrub(reason))
                await asyncio.sleep(delay)
        return None, self._scrub(f"gave up after {attempts} attempt(s): {reason}")  # type: ignore[return-value]

    @staticmethod
    def _parse(text: str) -> dict[str, Any]:
        try:
            data = json.loads(text)
        except ValueError:
            raise _Malformed(f"not JSON ({text[:60]!r})") from None
        _check(data)
        return data

    def _to_response(self, req: Request, data: dict[str, Any]) -> Response:
        _check(data)
        choice = data["choices"][0]
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
                self.stats.likelihood_fallbacks += 1
        note = None
        if (isinstance(refusal, str) and refusal.strip()) or choice.get("finish_reason") == "content_filter":
            note = "refusal"
            text = text or (refusal if isinstance(refusal, str) else "")
        elif scores is None and not text.strip():
            note = "empty"
        elif (scores is None and text.strip() not in letters and _REFUSAL.search(text[:200])
              and not names_an_option(text, letters)):
            note = "refusal"
        usage = data.get("usage") or {}
        use = {k: int(usage[k]) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
               if isinstance(usage.get(k), int)}
        return Response(id=req.id, text=self._scrub(text) or "", scores=scores, note=note, usage=use or None)

    # -------------------------------------------------------------------------------- report

    def run_info(self) -> dict[str, object]:
        s = self.stats
        price = price_for(self.model)
        cost = None
        if price is not None:
            cost = round((s.prompt_tokens * price[0] + s.completion_tokens * price[1]) / 1e6, 6)
        return {
            "adapter": "openai",
            "model": self.model,
            "base_url": public_url(self.opts.base_url) or "https://api.openai.com/v1",
            "api_key_env": self.opts.api_key_env,
            "api_key": "placeholder (loopback server, variable unset)" if self.dummy_key else "from environment",
            "answer_mode": self.answer_mode,
            "concurrency": self.concurrency,
            "questions": s.questions,
            "requests": s.requests,
            "retries": s.retries,
            "rate_limited": s.rate_limited,
            "errors": s.errors,
            "refusals": s.refusals,
            "empty": s.empty,
            "likelihood_fallbacks": s.likelihood_fallbacks,
            "cache_hits": s.cache_hits,
            "cache": str(self.cache_path) if self.cache_path else None,
            "max_in_flight": s.max_in_flight,
            "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens,
            "total_tokens": s.prompt_tokens + s.completion_tokens,
            "price_usd_per_1m_tokens": {"input": price[0], "output": price[1]} if price else None,
            "estimated_cost_usd": cost,
        }


def _check(data: object) -> None:
    """Raise _Malformed unless ``data`` looks like a chat completion with one answer."""
    if not isinstance(data, dict):
        raise _Malformed(f"expected a JSON object, got {type(data).__name__}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _Malformed("no 'choices'")
    msg = choices[0].get("message")
    if not isinstance(msg, dict):
        raise _Malformed("no 'message' in the first choice")


def _error_detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    msg = None
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else str(err)
    text = str(msg or getattr(exc, "message", "") or exc)
    return text[:300]


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds; an HTTP date is ignored)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value:
            try:
                seconds = float(value) / scale
            except ValueError:
                continue
            if seconds >= 0:
                return min(seconds, MAX_RETRY_AFTER)
    return None
