"""The engine of every HTTP family: :class:`RemoteAdapter`.

The engine owns the infrastructure; a family implements the call and classifies its errors.

What the engine does
  * ``predict`` stays a plain generator: requests are answered on a background event-loop thread and
    each answer is yielded the moment it arrives. At most ``--concurrency N`` requests are in flight
    and at most 2 x N questions are being prepared (images encoded) at once, so a large batch does not
    hold every request body in memory. Unless ``--batch-size`` says otherwise the runner hands over
    16 x N questions at a time, so the end-of-batch drain costs little.
  * ``-M rpm=`` / ``-M tpm=`` limits (token buckets; tokens are estimated before a request and corrected
    after it), retries with exponential backoff and seeded jitter honouring ``Retry-After`` (a rate
    limit with a ``Retry-After`` pauses every request), and the verdicts of :mod:`.retry`: a question
    that exhausts ``-M max_retries=`` or gets a permanent failure is answered with
    ``Response(error=...)`` (recorded, never dropped, retried by the next run); a fatal failure stops
    the run with an :class:`~mmeval.model_adapters.base.AdapterError`.
  * The response cache (:mod:`.cache`): keyed by the endpoint and the exact JSON body, with each image named
    by its file's content and encoding settings instead of its bytes, so a hit decodes no image; answered replies
    are stored (refusals and empty replies included), errors never are; a hit sends nothing.
  * The key (:mod:`.secrets`): read from ``$api_key_env``; every error string and every returned text is
    scrubbed of it before it leaves the adapter.
  * Statistics and ``run_info()``: questions, requests, retries, errors, refusals, cache hits, token
    usage and an estimated cost from the family's price table.

What a family implements (one module, one subclass)
  ``family``, ``Options`` (a :class:`~.options.RemoteOptions` subclass), ``answer_modes`` and:

  * ``async build_request(req) -> dict``: the JSON body for one request (``await self.images.data_url(...)``
    encodes an image off the loop). An exception here records the question as an error. With the cache on it
    is called twice, first for the key (``data_url`` then names images), so it only builds the body.
  * ``async open()``: create the HTTP client (on the loop thread; heavy imports belong here), with
    ``self.key`` (empty for a loopback server when the variable is unset); ``async aclose()`` closes it.
  * ``async send(body, payload) -> reply``: one attempt. ``payload`` is ``body`` encoded as compact JSON,
    the bytes to send. Return the decoded reply; raise :class:`Malformed` when it is unusable.
  * ``classify(exc) -> Retry | Permanent | Fatal | None``: the verdict on any other exception ``send``
    raised (``self.http_failure(status, detail, headers)`` for HTTP statuses); None means unforeseen
    (the question is recorded with the exception).
  * ``to_response(req, reply) -> Response``: the answer; raise :class:`Malformed` when the reply is
    unusable (a bad cache entry is then ignored and the request sent). ``note="refusal"`` and
    ``note="empty"`` are counted in the statistics.

  Optional: ``usage(reply)`` (token counts), ``estimate_tokens(body, payload)`` (for ``tpm``),
  ``default_base_url``, ``prices``, ``default_concurrency``, ``resolve_key()``, and counters of its own in
  ``self.stats.counters`` (reported by ``run_info``). Then one line in the registry
  (``model_adapters/__init__.py``) makes it a ``--model`` family.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
import time
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast
from urllib.parse import urlsplit

from pydantic import BaseModel

from mmeval.model_adapters.base import AdapterError, AdapterSettings, ModelAdapter
from mmeval.model_adapters.remote.cache import ResponseCache, cache_key, default_cache_path
from mmeval.model_adapters.remote.images import ImageEncoder, naming_images
from mmeval.model_adapters.remote.options import RemoteOptions
from mmeval.model_adapters.remote.pricing import Price, estimated_cost, price_for
from mmeval.model_adapters.remote.ratelimit import TokenBucket
from mmeval.model_adapters.remote.retry import Failure, Fatal, Permanent, Retry, RetryPolicy, http_failure
from mmeval.model_adapters.remote.secrets import Scrubber, key_from_env
from mmeval.model_adapters.remote.urls import is_loopback, public_url
from mmeval.prompting.messages import Request, Response

__all__ = ["DEFAULT_CONCURRENCY", "Malformed", "RemoteAdapter", "Stats", "Usage"]

DEFAULT_CONCURRENCY = 8  # requests in flight at once unless --concurrency says otherwise
SHOWN_ERRORS = 3  # failures logged as warnings; later ones only at debug level (the runner reports the total)

OptionsT = TypeVar("OptionsT", bound=RemoteOptions)


class Malformed(Exception):
    """The server's reply cannot be used (not JSON, fields missing): retried; a cached one is ignored."""


class _Stop(Exception):
    """A fatal verdict: every question would fail the same way. Carries the scrubbed message."""


@dataclass(frozen=True)
class Usage:
    """Tokens one reply used, as the server counted them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: the total the server reported (corrects the tokens-per-minute estimate); None when not reported
    total_tokens: int | None = None


@dataclass
class Stats:
    questions: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    errors: int = 0
    refusals: int = 0
    empty: int = 0
    cache_hits: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: the family's own counters, reported by run_info after the shared ones
    counters: dict[str, int] = field(default_factory=dict)


class RemoteAdapter(ModelAdapter, Generic[OptionsT]):
    """Base class of the HTTP families; see the module docstring for what a subclass implements."""

    Options: ClassVar[type[BaseModel]] = RemoteOptions
    default_concurrency: ClassVar[int] = DEFAULT_CONCURRENCY
    #: the endpoint used when ``-M base_url`` is not given; empty: the option is required
    default_base_url: ClassVar[str] = ""
    #: USD per 1M tokens (input, output) by model name, for the cost estimate (see pricing.price_for)
    prices: ClassVar[Mapping[str, Price]] = {}

    def __init__(self, name: str, options: BaseModel | None = None, settings: AdapterSettings | None = None) -> None:
        super().__init__(name, options, settings)
        if not isinstance(self.options, RemoteOptions):
            raise TypeError(f"{type(self).__name__}.Options must subclass RemoteOptions")
        self.opts: OptionsT = cast(OptionsT, self.options)
        o = self.opts
        self.model = name
        self.log = logging.getLogger(type(self).__module__)
        self.base_url = o.base_url or self.default_base_url
        if not self.base_url:
            raise AdapterError(f"model family '{self.family}' needs -M base_url=URL (the service's endpoint)")
        # the runner waits for a whole batch before handing over the next, so the pipeline drains at each
        # batch end: a batch of 16 x concurrency keeps that tail to a sixteenth (requests wait cheaply)
        self.concurrency = self.settings.concurrency or self.default_concurrency
        if self.settings.batch_size is None:
            self.batch_size = min(max(16 * self.concurrency, 64), 4096)
        key = self.resolve_key()
        self.key = key  # never stored in options, config or reports
        self.keyless = not key
        self._scrub = Scrubber(key)
        self._cache: ResponseCache | None = None
        self.cache_path: Path | None = None if o.no_cache else (
            Path(o.cache).expanduser() if o.cache else default_cache_path())
        if self.cache_path is not None:
            self._cache = ResponseCache(self.cache_path)
        self.stats = Stats()
        self.retry = RetryPolicy(o.max_retries, o.retry_base_delay, seed=f"{self.family}-backoff-{self.seed}")
        self.images = ImageEncoder()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._opened = False
        self._pause_until = 0.0
        self._connection_failures = 0
        self.identity: dict[str, Any] | None = None
        self._cache_scope = self.base_url

    def __repr__(self) -> str:  # no key in reprs either
        return f"{type(self).__name__}(model={self.model!r}, base_url={public_url(self.opts.base_url)!r})"

    # ------------------------------------------------------------------------------ what a family implements

    @abstractmethod
    async def build_request(self, req: Request) -> dict[str, Any]:
        """The JSON body for one request."""

    async def server_identity(self) -> dict[str, Any] | None:
        """What the server says it serves (model id, weights path ...), when it says; part of the cache key."""
        return None

    async def open(self) -> None:
        """Create the HTTP client; runs once on the loop thread before the first request."""

    async def aclose(self) -> None:
        """Close the HTTP client; runs on the loop thread when the adapter is closed."""

    @abstractmethod
    async def send(self, body: dict[str, Any], payload: bytes) -> Any:
        """One attempt: send ``payload`` (``body`` as compact JSON) and return the decoded reply.

        Raise :class:`Malformed` when the reply is unusable; any other exception goes to :meth:`classify`.
        """

    @abstractmethod
    def classify(self, exc: Exception) -> Failure | None:
        """The verdict on an exception :meth:`send` raised; None: unforeseen (recorded as such, not retried)."""

    @abstractmethod
    def to_response(self, req: Request, reply: Any) -> Response:
        """The answer in ``reply``; raise :class:`Malformed` when it is unusable. The engine scrubs the text."""

    def usage(self, reply: Any) -> Usage:
        """The tokens ``reply`` used (for the statistics, the cost and the ``tpm`` limit)."""
        return Usage()

    def estimate_tokens(self, body: dict[str, Any], payload: bytes) -> int:
        """Tokens a request will use, charged to the ``tpm`` limit before it is sent (corrected after)."""
        return len(payload) // 4

    def resolve_key(self) -> str:
        """The API key from ``$api_key_env``; empty (no key) is allowed for a loopback ``base_url`` only."""
        env = self.opts.api_key_env
        key = key_from_env(env)
        if not key and not is_loopback(self.opts.base_url):
            raise AdapterError(f"no API key: the environment variable {env} is not set; export {env}=... "
                               "(or name another variable with -M api_key_env)")
        return key

    # ------------------------------------------------------------------------------ helpers for families

    @property
    def where(self) -> str:
        """``family:model at host`` (no credentials), for messages."""
        host = public_url(self.opts.base_url) or urlsplit(self.base_url).hostname or self.base_url
        return f"{self.family}:{self.model} at {host}"

    def http_failure(self, status: int, detail: str, headers: Any = None) -> Failure:
        """The usual verdict for an HTTP error status (see retry.http_failure), naming this model and key."""
        return http_failure(status, detail, headers, where=self.where,
                            key_hint=f"; the key comes from ${self.opts.api_key_env}")

    # ------------------------------------------------------------------------------ the event loop

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            self._thread = threading.Thread(target=run, name=f"mmeval-{self.family}-loop", daemon=True)
            self._thread.start()
            ready.wait()
            self._loop = loop
            asyncio.run_coroutine_threadsafe(self._setup(), loop).result()
        return self._loop

    async def _setup(self) -> None:
        o = self.opts
        self._sem = asyncio.Semaphore(self.concurrency)
        self._prep = asyncio.Semaphore(2 * self.concurrency)
        self._rpm = TokenBucket(o.rpm) if o.rpm else None
        self._tpm = TokenBucket(o.tpm) if o.tpm else None
        self._opened = True
        await self.open()
        try:
            self.identity = await self.server_identity()
        except Exception:  # noqa: BLE001 - a server that cannot say is fine: the cache key then has less in it
            self.identity = None
        facts = {k: v for k, v in (("revision", o.revision), ("server", self.identity)) if v}
        self._cache_scope = self.base_url + (f"\n{json.dumps(facts, sort_keys=True)}" if facts else "")

    def close(self) -> None:
        if self._loop is not None:
            loop = self._loop
            if self._opened:
                try:
                    asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(timeout=10)
                except Exception:  # closing is best effort
                    pass
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            if not loop.is_running():
                loop.close()
            self._loop = None
        self.images.close()
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    # ------------------------------------------------------------------------------ predict

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        if not batch:
            return
        loop = self._ensure_loop()
        done: queue.SimpleQueue[asyncio.Task[Response]] = queue.SimpleQueue()  # tasks, in the order they finish
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
                except _Stop as exc:
                    raise AdapterError(str(exc)) from None
        finally:  # the consumer stopped early (Ctrl-C, an error): whatever is not sent yet never will be
            if not loop.is_closed():
                loop.call_soon_threadsafe(lambda: [t.cancel() for t in tasks if not t.done()])

    async def _start(self, batch: Sequence[Request],
                     done: queue.SimpleQueue[asyncio.Task[Response]]) -> list[asyncio.Task[Response]]:
        """One task per request, created in the loop thread in one go (one cross-thread wake-up per batch)."""
        def finished(task: asyncio.Task[Response]) -> None:
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
            except _Stop:
                raise
            except Exception as exc:  # anything unforeseen still answers the question, with an error
                return self._failed(req, f"unexpected {type(exc).__name__}: {exc}", limit=500)

    async def _answer_one(self, req: Request) -> Response:
        self.stats.questions += 1
        key = ""
        try:
            if self._cache is not None:
                key = await self._cache_key(req)
        except Exception as exc:  # an unreadable image: record it, the next run retries
            return self._unprepared(req, exc)
        if self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                try:
                    resp = self._respond(req, hit)
                    self.stats.cache_hits += 1
                    return resp
                except Malformed:
                    pass
        try:
            body = await self.build_request(req)
        except Exception as exc:
            return self._unprepared(req, exc)
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()  # sent as is
        reply, error = await self._call(body, payload)
        if error is not None:
            return self._failed(req, error)
        resp = self._respond(req, reply)
        use = self._usage(reply)
        self.stats.prompt_tokens += use.prompt_tokens
        self.stats.completion_tokens += use.completion_tokens
        if resp.note == "refusal":
            self.stats.refusals += 1
        elif resp.note == "empty":
            self.stats.empty += 1
        if self._cache is not None:
            try:
                self._cache.put(key, self.model, self._scrubbed(reply))
            except sqlite3.Error as exc:
                self.log.warning("%s: could not write the API cache: %s", self.family, exc)
        return resp

    async def _cache_key(self, req: Request) -> str:
        """The request's key in the response cache: its body with each image named by what decides its encoded
        bytes (:func:`~.images.image_name`) instead of the bytes, so that a hit decodes no image."""
        with naming_images():
            named = await self.build_request(req)
        return cache_key(self._cache_scope, json.dumps(named, separators=(",", ":"), ensure_ascii=False).encode())

    def _unprepared(self, req: Request, exc: Exception) -> Response:
        return self._failed(req, f"cannot prepare the request: {type(exc).__name__}: {exc}")

    def _usage(self, reply: Any) -> Usage:
        """Token counts are best effort: a reply whose usage cannot be read still answers its question."""
        try:
            return self.usage(reply)
        except (TypeError, ValueError, AttributeError, KeyError):
            return Usage()

    def _scrubbed(self, reply: Any) -> Any:
        """The reply without the key in it, for the cache (a server may echo the key in a normal reply)."""
        if not self._scrub.secret:
            return reply
        try:
            return json.loads(self._scrub.text(json.dumps(reply)) or "null")
        except (TypeError, ValueError):
            return reply

    def _respond(self, req: Request, reply: Any) -> Response:
        resp = self.to_response(req, reply)
        text = self._scrub.text(resp.text)
        return resp if text == resp.text else resp.model_copy(update={"text": text})

    def _failed(self, req: Request, error: str, limit: int | None = None) -> Response:
        """The question's answer when it got none: the error, recorded (the first few also logged)."""
        self.stats.errors += 1
        error = self._scrub.text(error)[:limit]
        if self.stats.errors <= SHOWN_ERRORS:
            self.log.warning("%s: question %s got no answer: %s%s", self.family, req.id, error,
                             "; further failures are not shown" if self.stats.errors == SHOWN_ERRORS else "")
        else:
            self.log.debug("%s: question %s got no answer: %s", self.family, req.id, error)
        return Response(id=req.id, error=error)

    # ------------------------------------------------------------------------------ the call

    async def _call(self, body: dict[str, Any], payload: bytes) -> tuple[Any, None] | tuple[None, str]:
        """The decoded reply, or (None, reason) after the retry budget or a permanent failure."""
        attempts = self.retry.attempts
        reason = "no attempt made"
        estimate = self.estimate_tokens(body, payload) if self._tpm else 0
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
                    reply = await self.send(body, payload)
                    self._connection_failures = 0
                    if self._tpm:
                        used = self._usage(reply).total_tokens
                        if used is not None:
                            self._tpm.adjust(used - estimate)
                    return reply, None
                except Malformed as exc:
                    reason = f"malformed response: {exc}"
                except Exception as exc:
                    verdict = self.classify(exc)
                    if verdict is None:
                        raise
                    if isinstance(verdict, Fatal):
                        raise _Stop(self._scrub.text(verdict.reason)) from None
                    if isinstance(verdict, Permanent):
                        return None, f"{verdict.reason} (not retried)"
                    assert isinstance(verdict, Retry)
                    reason, retry_after = verdict.reason, verdict.retry_after
                    if verdict.connection:
                        self._connection_failures += 1
                        if self._connection_failures >= self.opts.max_connection_failures:
                            raise _Stop(self._scrub.text(
                                f"{self.family}:{self.model} at {public_url(self.base_url)}: "
                                f"{self._connection_failures} requests in a row could not reach the server (last: "
                                f"{reason}); is it running? Answers so far are kept: rerun to continue")) from None
                    if verdict.rate_limited:
                        self.stats.rate_limited += 1
                        if retry_after:
                            self._pause_until = max(self._pause_until, time.monotonic() + retry_after)
                finally:
                    self.stats.in_flight -= 1
            if attempt + 1 < attempts:
                self.stats.retries += 1
                delay = self.retry.delay(attempt + 1, retry_after)
                self.log.debug("%s: retry %d/%d in %.2f s: %s", self.family, attempt + 1, self.retry.max_retries,
                               delay, self._scrub.text(reason))
                await asyncio.sleep(delay)
        return None, f"gave up after {attempts} attempt(s): {reason}"

    # ------------------------------------------------------------------------------ report

    def run_info(self) -> dict[str, object]:
        s = self.stats
        price = price_for(self.model, self.prices)
        return {
            "adapter": self.family,
            "model": self.model,
            "base_url": public_url(self.base_url),
            "api_key_env": self.opts.api_key_env,
            "api_key": "placeholder (loopback server, variable unset)" if self.keyless else "from environment",
            "answer_mode": self.answer_mode,
            "concurrency": self.concurrency,
            "questions": s.questions,
            "requests": s.requests,
            "retries": s.retries,
            "rate_limited": s.rate_limited,
            "errors": s.errors,
            "refusals": s.refusals,
            "empty": s.empty,
            **s.counters,
            "cache_hits": s.cache_hits,
            "server_model": self.identity,
            "revision": self.opts.revision,
            "cache": str(self.cache_path) if self.cache_path else None,
            "max_in_flight": s.max_in_flight,
            "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens,
            "total_tokens": s.prompt_tokens + s.completion_tokens,
            "price_usd_per_1m_tokens": {"input": price[0], "output": price[1]} if price else None,
            "estimated_cost_usd": estimated_cost(price, s.prompt_tokens, s.completion_tokens),
        }
