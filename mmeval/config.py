"""The run configuration: everything that decides what a run's predictions are.

Its hash is written into every prediction line and into the run directory; a rerun with the same
hash resumes, a different hash refuses to mix into the same directory.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mmeval.render import prompts_digest

#: fields that do not change any single prediction, so they stay out of the hash
UNHASHED = frozenset({"limit", "strict", "progress"})


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="model spec, e.g. 'expert' or 'hf:PATH'")
    model_options: dict[str, Any] = Field(default_factory=dict)
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

    def digest(self) -> str:
        blob = json.dumps(self.hashed_fields(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
