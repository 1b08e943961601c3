"""The options every HTTP family shares: where the service is, where the key is, and how to fetch.

A family's ``Options`` subclasses :class:`RemoteOptions`, adds what changes its answers (token limits,
image size ...) and usually re-declares ``base_url`` (its description) and ``api_key_env`` (its
default variable) with :func:`key_env_field`. Every field here except ``base_url`` is operational: it
changes how answers are fetched, not what they are, and stays out of the run-config hash.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mmeval.model_adapters.base import OPERATIONAL
from mmeval.model_adapters.remote.secrets import check_env_name
from mmeval.model_adapters.remote.urls import check_http_url


def key_env_field(default: str) -> Any:
    """The ``api_key_env`` field, defaulting to the variable ``default`` (the family's usual one)."""
    return Field(default, json_schema_extra=OPERATIONAL,
                 description="NAME of the environment variable holding the API key (the key itself is never a flag "
                             "and never stored)")


class RemoteOptions(BaseModel):
    # hide_input_in_errors: a key pasted into the wrong option is never echoed back
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    base_url: str | None = Field(None, description="the service's endpoint URL (default: the family's own)")
    api_key_env: str = key_env_field("MMEVAL_API_KEY")
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
    revision: str | None = Field(None, description="what identifies the served checkpoint when its name does not "
                                                   "(e.g. a date or a commit): part of the run's identity and of "
                                                   "the cache key, so a new checkpoint never gets the old answers")
    max_connection_failures: int = Field(30, ge=1, json_schema_extra=OPERATIONAL,
                                         description="stop the run after this many requests in a row could not "
                                                     "reach the server (answers so far are kept)")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        return check_env_name(v)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return v if v is None else check_http_url(v)
