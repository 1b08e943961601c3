"""What a build is asked to do (:class:`BuildOptions`) and what it did (:class:`BuildResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval.builders.sources import Skip

REPORT = "build_report.json"
BUILT_BY = "mmeval build"
#: the question types in the order they are asked about one image (MMAD's order)
ORDER = ("Anomaly Detection", "Defect Classification", "Defect Localization", "Defect Description",
         "Defect Analysis", "Object Classification", "Object Analysis")


@dataclass
class BuildOptions:
    seed: int = 0
    template_count: int = 4  # templates listed per image in similar_templates and random_templates
    link: bool = True  # hard-link images where possible (else copy)
    knowledge: Path | None = None
    writer: str | None = None  # "openai:MODEL"
    writer_args: list[str] = field(default_factory=list)
    writer_attempts: int = 3
    writer_concurrency: int | None = None


@dataclass
class BuildResult:
    out: Path
    json_path: Path
    images: int
    questions: int
    counts: dict[str, int]
    skipped: list[Skip]
    writer: dict[str, Any] | None = None
