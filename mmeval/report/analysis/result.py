"""The result of analysing one run (:class:`Analysis`) and analysis.json (:class:`AnalysisRecord`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from mmeval import scoring
from mmeval.jsonsafe import json_safe
from mmeval.report.analysis.anomaly_maps import Localisation
from mmeval.report.analysis.boosts import BoostEffects
from mmeval.report.analysis.bootstrap import BootstrapSettings
from mmeval.report.analysis.hallucinations import Fabrication, SelfInconsistency
from mmeval.report.analysis.option_scores import Calibration, DetectionScores
from mmeval.report.analysis.timings import Latency

#: version of the analysis.json layout (bumped when its fields change meaning)
ANALYSIS_SCHEMA_VERSION = 1

Records = list[dict[str, Any]]


@dataclass(frozen=True)
class Analysis:
    """Every analysis of one run; tables stay DataFrames (their columns: see the function making each)."""

    table: pd.DataFrame  # the score table, as scores.csv (:func:`mmeval.scoring.score_table`)
    counts: scoring.Counts
    ci: pd.DataFrame  # bootstrap CIs, long: dataset, metric, value, lo, hi, images
    human_gap: pd.DataFrame  # per task: run, lo, hi, human_expert, human_uncertainty, gap, gpt-4o
    hallucination: pd.DataFrame  # per dataset and category: overkill, miss, fabrication ...
    self_inconsistency: SelfInconsistency
    fabrication: Fabrication
    invalid: pd.DataFrame  # per task: questions, invalid, errors, invalid_rate
    position_bias: pd.DataFrame  # per task and letter: chosen, correct, their shares, ratio
    detection_scores: DetectionScores
    calibration: Calibration
    latency: Latency
    circular: pd.DataFrame  # per task: plain vs CircularEval accuracy
    bootstrap: BootstrapSettings
    boosts: BoostEffects
    #: anomaly maps against the ground-truth masks, when the run has maps
    localisation: Localisation = field(default_factory=lambda: Localisation(available=False))

    def overall_hallucination(self) -> dict[str, Any]:
        """The hallucination row over every dataset and category (empty without questions)."""
        hall = self.hallucination
        hit = hall[(hall["dataset"] == "*") & (hall["category"] == "*")] if not hall.empty else hall
        return {str(k): v for k, v in hit.iloc[0].items()} if not hit.empty else {}

    def ci_of(self, dataset: str, metric: str) -> tuple[float, float]:
        """The (lo, hi) interval of one score-table cell; NaN when the cell has none."""
        ci = self.ci
        hit = ci[(ci["dataset"] == dataset) & (ci["metric"] == metric)] if not ci.empty else ci
        return (float(hit["lo"].iloc[0]), float(hit["hi"].iloc[0])) if not hit.empty else (float("nan"), float("nan"))

    def gap_series(self, label: str) -> dict[str, Any]:
        """The run's per-task accuracy with its CI, as one series of :func:`mmeval.report.figures.bars_vs_human`."""
        gap = self.human_gap.set_index("task")
        return {"label": label, "values": gap["run"].to_dict(), "lo": gap["lo"].to_dict(), "hi": gap["hi"].to_dict()}

    def record(self, title: str) -> AnalysisRecord:
        """analysis.json: the tables as lists of records (the score table: dataset -> metric -> value)."""
        def records(df: pd.DataFrame) -> Records:
            return [{str(k): v for k, v in row.items()} for row in df.to_dict(orient="records")]

        return AnalysisRecord(
            title=title, table={str(k): {str(c): v for c, v in row.items()}
                                for k, row in self.table.to_dict(orient="index").items()},
            counts=self.counts, ci=records(self.ci), human_gap=records(self.human_gap),
            hallucination=records(self.hallucination), self_inconsistency=self.self_inconsistency,
            fabrication=self.fabrication, invalid=records(self.invalid), position_bias=records(self.position_bias),
            detection_scores=self.detection_scores, calibration=self.calibration, latency=self.latency,
            circular=records(self.circular), bootstrap=self.bootstrap, boosts=self.boosts,
            localisation=self.localisation if self.localisation.available else None)


class AnalysisRecord(BaseModel):
    """analysis.json. Figures not measured (no option scores, no timings, no cycle time) are left out."""

    model_config = ConfigDict(frozen=True)

    version: int = ANALYSIS_SCHEMA_VERSION
    title: str
    table: dict[str, dict[str, Any]]
    counts: scoring.Counts
    ci: Records
    human_gap: Records
    hallucination: Records
    self_inconsistency: SelfInconsistency
    fabrication: Fabrication
    invalid: Records
    position_bias: Records
    detection_scores: DetectionScores
    calibration: Calibration
    latency: Latency
    circular: Records
    bootstrap: BootstrapSettings
    boosts: BoostEffects = BoostEffects()
    #: only for runs with anomaly maps (from the model or from --boost agent)
    localisation: Localisation | None = None

    def jsonable(self, *, exclude: set[str] | None = None) -> dict[str, Any]:
        """Strict-JSON data: NaN and infinities become null, figures not measured are left out."""
        return json_safe(self.model_dump(exclude_none=True, exclude=exclude))
