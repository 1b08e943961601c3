"""Shared machinery of HTTP-based model families: retry, rate limits, response cache, secrets, pricing.

The framework owns the infrastructure (concurrency, rate limits, retries, caching, secret scrubbing,
statistics); a family implements the call and classifies its errors. Adding an HTTP family is one
module with one :class:`RemoteAdapter` subclass (see :mod:`.engine` for the methods it implements;
``model_adapters/openai_api.py`` is the worked example) and one line in the model registry.

Modules
  engine     RemoteAdapter: the event-loop thread, semaphores, the retry loop, cache lookup and store,
             scrubbing, statistics, ``predict`` and ``run_info``
  options    RemoteOptions: base_url, api_key_env and the operational options every family shares
  retry      the verdicts (Retry, Permanent, Fatal), HTTP status policy, Retry-After, backoff with jitter
  ratelimit  the async token bucket (requests and tokens per minute)
  cache      the sqlite response cache, safe across processes
  secrets    the key from its environment variable, the scrubber
  pricing    price tables and the cost estimate
  images     JPEG data URLs, encoded off the event loop and reused
  urls       URL validation, loopback detection, URLs fit for reports
"""

from mmeval.model_adapters.remote.engine import Malformed, RemoteAdapter, Stats, Usage
from mmeval.model_adapters.remote.options import RemoteOptions, key_env_field
from mmeval.model_adapters.remote.retry import Failure, Fatal, Permanent, Retry

__all__ = ["Failure", "Fatal", "Malformed", "Permanent", "RemoteAdapter", "RemoteOptions", "Retry", "Stats", "Usage",
           "key_env_field"]
