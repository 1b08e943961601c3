"""The run configuration: everything that decides what a run's predictions are.

Its hash is written into every prediction line and into the run directory; a rerun with the same
hash resumes, a different hash refuses to mix into the same directory.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mmeval.prompting.render import prompts_digest

#: fields that do not change any single prediction, so they stay out of the hash
UNHASHED = frozenset({"limit", "strict", "runtime_options"})

_URL_USERINFO = re.compile(r"(://)[^/@\s]+@")
_SECRET_QUERY = re.compile(r"([?&][^=&\s]*(?:key|token|secret|password|sig)[^=&\s]*=)[^&\s]*", re.IGNORECASE)


def redact(value: Any) -> Any:
    """Strip credentials that may hide in option values (``https://user:pass@host``, ``?api_key=``)."""
    if isinstance(value, str):
        return _SECRET_QUERY.sub(r"\1***", _URL_USERINFO.sub(r"\1***@", value))
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="model spec, e.g. 'expert' or 'hf:PATH'")
    model_options: dict[str, Any] = Field(default_factory=dict)
    runtime_options: dict[str, Any] = Field(default_factory=dict, description="operational options, not hashed")
    data: str = Field(description="path of the mmad.json, or 'synthetic'")
    image_root: str | None = None
    shots: int = Field(0, ge=0)
    templates: Literal["random", "similar"] = "random"
    seed: int = 0
    shuffle: bool = True
    allow_unknown_types: bool = False
    circular: bool = Field(False, description="also ask every rotation of each question's options")
    probes: bool = Field(False, description="also ask defect-fabrication probes about normal images")
    limit: int | None = Field(None, ge=1)
    strict: bool = False
    prompts: str = Field(default_factory=prompts_digest, description="digest of the prompt templates")

    def hashed_fields(self) -> dict[str, Any]:
        return self.model_dump(exclude=set(UNHASHED))

    def adapter_options(self) -> dict[str, Any]:
        return {**self.model_options, **self.runtime_options}

    def public(self) -> dict[str, Any]:
        """The config as written to disk and reports: credentials in URLs redacted."""
        return redact(self.model_dump())

    def digest(self) -> str:
        blob = json.dumps(self.hashed_fields(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
