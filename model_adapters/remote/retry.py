"""When to retry a failed request, and how long to wait before the next attempt.

A family turns each failure of its HTTP client into one of three verdicts:

- :class:`Retry`: a passing fault (429, 5xx, a timeout, a dropped connection, a malformed reply); the
  engine tries again after an exponential backoff with seeded jitter, or after the server's
  ``Retry-After`` when that is longer. A rate-limit verdict with a ``Retry-After`` pauses every
  request, not only the one that got it.
- :class:`Permanent`: this question cannot be answered (a 400 for its request body ...); recorded as
  an error at once, without retrying (the next run tries it again).
- :class:`Fatal`: every question would fail the same way (bad key, unknown model): the run stops.

:func:`http_failure` gives the usual verdict for an HTTP status code, so a family only maps its
client's exception classes onto it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_BACKOFF = 60.0  # seconds, cap of the exponential backoff
MAX_RETRY_AFTER = 120.0  # seconds, cap on a server's Retry-After

#: statuses worth another attempt: timeouts, conflicts, too early, rate limits and every server error
RETRY_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
#: statuses that stop the run: every other question would get the same answer
FATAL_STATUS = {401: "the API key was rejected", 403: "the API key has no access to this model",
                404: "model or endpoint not found (check the model name and -M base_url)"}


@dataclass(frozen=True)
class Retry:
    """Try again; ``retry_after`` (seconds) is the least wait the server asked for."""

    reason: str
    retry_after: float | None = None
    #: the server said "too many requests": counted, and its ``retry_after`` pauses every request
    rate_limited: bool = False
    #: the server could not be reached (refused, reset, timed out): many in a row mean it is down
    connection: bool = False


@dataclass(frozen=True)
class Permanent:
    """This question gets no answer from this request; record the error, do not retry."""

    reason: str


@dataclass(frozen=True)
class Fatal:
    """Every question would fail the same way; stop the run with this message."""

    reason: str


Failure = Retry | Permanent | Fatal


def retry_after(headers: Mapping[str, str] | Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds; an HTTP date is ignored), capped."""
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


def http_failure(status: int, detail: str, headers: Mapping[str, str] | Any = None, *, where: str,
                 key_hint: str = "") -> Failure:
    """The usual verdict for an HTTP error status.

    ``where`` names the model and endpoint in a fatal message; ``key_hint`` (where the key comes from)
    is added to it for 401 and 403.
    """
    if status in FATAL_STATUS:
        hint = key_hint if status in (401, 403) else ""
        return Fatal(f"{where}: HTTP {status}: {FATAL_STATUS[status]} ({detail}){hint}")
    reason = f"HTTP {status}: {detail}"
    if status not in RETRY_STATUS:
        return Permanent(reason)
    return Retry(reason, retry_after(headers), rate_limited=status == 429)


class RetryPolicy:
    """``max_retries`` further attempts, the n-th after ``base_delay * 2**(n-1)`` seconds (capped at
    :data:`MAX_BACKOFF`) times a jitter factor in [0.5, 1.5) drawn from a generator seeded by ``seed``."""

    def __init__(self, max_retries: int, base_delay: float, seed: str) -> None:
        self.max_retries = max_retries
        self.base_delay = base_delay
        self._rng = random.Random(seed)

    @property
    def attempts(self) -> int:
        return self.max_retries + 1

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first); a longer Retry-After wins."""
        base = self.base_delay * (2 ** (retry - 1))
        return max(min(MAX_BACKOFF, base) * (0.5 + self._rng.random()), retry_after or 0.0)
