"""The score files: scores.csv, scores.json (:class:`ScoresRecord` and its kinds) and heatmap.svg."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mmeval import scoring
from mmeval.config import RunRecord, RunStatus
from mmeval.jsonsafe import json_safe
from mmeval.report.csvsafe import write_csv
from mmeval.report.figures import heatmap

#: version of the scores.json layout (bumped when its fields change meaning)
SCORES_SCHEMA_VERSION = 1

#: usage fields that are counts or money, so adding them over processes and resumed sessions makes sense
ADDITIVE_USAGE = ("questions", "requests", "retries", "rate_limited", "errors", "refusals", "empty", "cache_hits",
                  "prompt_tokens", "completion_tokens", "total_tokens", "estimated_cost_usd", "model_seconds",
                  "answered_by_detector", "answered_by_chance")


class ScoresRecord(BaseModel):
    """scores.json: the score table (dataset -> metric -> value, null where nothing was asked) and the counts."""

    model_config = ConfigDict(frozen=True)

    version: int = SCORES_SCHEMA_VERSION
    title: str
    scores: dict[str, dict[str, scoring.Figure]]
    counts: scoring.Counts

    @staticmethod
    def table_scores(table: pd.DataFrame) -> dict[str, dict[str, float]]:
        return {str(k): {str(c): float(v) for c, v in row.items()} for k, row in table.to_dict(orient="index").items()}


class Skipped(BaseModel):
    """The data records the run skipped (skipped.json)."""

    count: int
    records: list[dict[str, Any]]


class Usage(BaseModel):
    """Token usage, requests and cost summed over every process and resumed session of a run."""

    totals: dict[str, int | float | None]
    sessions: int


class RunScores(ScoresRecord):
    """scores.json of a run directory: also its run.json, skipped records, usage and completeness."""

    run: RunRecord
    skipped: Skipped
    usage: Usage
    #: how complete the scored answers are: an incomplete run's scores cover the questions answered so far (an error
    #: counts as a wrong answer, a question never asked not at all); None when the run directory does not say
    status: RunStatus | None = None


class OfficialScores(ScoresRecord):
    """scores.json of a re-scored official answers file."""

    source: str = Field(description="the answers file")
    drop_invalid: bool
    official_quirks: bool = False


def usage_totals(sessions: list[dict[str, Any]]) -> Usage:
    """Token usage, requests and estimated cost summed over every process and resumed session."""
    totals: dict[str, int | float | None] = {}
    for info in sessions:
        for key in ADDITIVE_USAGE:
            value = info.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                totals[key] = (totals.get(key) or 0) + value
    if any(info.get("estimated_cost_usd", 0) is None for info in sessions):
        totals["estimated_cost_usd"] = None  # an unknown price anywhere makes the total unknown
    return Usage(totals=totals, sessions=len(sessions))


def write_tables(table: pd.DataFrame, record: ScoresRecord, out: Path) -> str:
    """scores.csv (the table), scores.json (the record) and heatmap.svg in ``out``; returns the heatmap's SVG."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(table, out / "scores.csv", float_format="%.4f")
    payload = json_safe(record.model_dump(mode="json"))
    (out / "scores.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return heatmap(table, out / "heatmap.svg", record.title)
