"""Analyses of a run beyond the score table: hallucination, uncertainty, calibration, latency, robustness.

Every function takes predictions (:class:`mmeval.predictions.Prediction`) or a run directory and
returns numbers, small typed results (pydantic models) or DataFrames (tables); nothing here writes
files. :func:`analyse` runs every analysis of one run into an :class:`Analysis`, whose
:meth:`Analysis.record` is analysis.json. The analyses live in modules named after what they hold,
each with its definitions, precisely, in its docstring:

- :mod:`mmeval.report.analysis.questions`: which predictions are which (plain questions, defect probes);
  percentages. (Which task is detection and what an option's Yes / No means: :mod:`mmeval.tasks`.)
- :mod:`mmeval.report.analysis.hallucinations`: overkill, miss, fabrication, self-inconsistency.
- :mod:`mmeval.report.analysis.answer_patterns`: invalid answers, position bias.
- :mod:`mmeval.report.analysis.bootstrap`: bootstrap confidence intervals of the score table.
- :mod:`mmeval.report.analysis.significance`: McNemar's test between two runs, Holm's adjustment.
- :mod:`mmeval.report.analysis.option_scores`: P(defect), AUROC / AUPR, calibration (ECE).
- :mod:`mmeval.report.analysis.timings`: latency and throughput.
- :mod:`mmeval.report.analysis.robustness`: CircularEval.
- :mod:`mmeval.report.analysis.baselines`: the gap to the human expert (and GPT-4o).
- :mod:`mmeval.report.analysis.anomaly_maps`: anomaly maps (a model's, or the agent boost's expert's)
  against the ground-truth masks: image AUROC, pixel AUROC, AUPRO.
- :mod:`mmeval.report.analysis.run_data`: a run directory read back (:class:`RunData`, :func:`load_run`).
- :mod:`mmeval.report.analysis.result`: :class:`Analysis` and analysis.json (:class:`AnalysisRecord`).

Every public name of those modules can be imported from :mod:`mmeval.report.analysis` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mmeval import scoring
from mmeval.predictions import Prediction
from mmeval.report.analysis.anomaly_maps import (
    PIXEL_BUDGET,
    Localisation,
    MapSource,
    MaskLookup,
    localisation,
    masks_of,
)
from mmeval.report.analysis.answer_patterns import invalid_rates, position_bias
from mmeval.report.analysis.baselines import human_gap
from mmeval.report.analysis.boosts import BoostEffects, ExpertUse, KnowledgeLeak, boost_effects
from mmeval.report.analysis.bootstrap import BootstrapSettings, bootstrap_ci
from mmeval.report.analysis.hallucinations import (
    Fabrication,
    Inconsistency,
    SelfInconsistency,
    ad_verdict,
    fabrication,
    hallucination,
    image_facts,
    says_defect,
    self_inconsistency,
)
from mmeval.report.analysis.option_scores import (
    Calibration,
    CalibrationBin,
    DetectionScores,
    auroc,
    average_precision,
    calibration,
    chosen_confidence,
    detection_scores,
    ece,
    p_defect,
    softmax,
)
from mmeval.report.analysis.questions import PROBE, pct, plain_preds, probe_preds
from mmeval.report.analysis.result import ANALYSIS_SCHEMA_VERSION, Analysis, AnalysisRecord
from mmeval.report.analysis.robustness import circular
from mmeval.report.analysis.run_data import RunData, load_run
from mmeval.report.analysis.significance import MCNEMAR_EXACT_BELOW, holm, mcnemar, paired_mcnemar
from mmeval.report.analysis.timings import Latency, latency, percentile, read_timings

__all__ = [
    "ANALYSIS_SCHEMA_VERSION", "MCNEMAR_EXACT_BELOW", "PIXEL_BUDGET", "PROBE", "Analysis", "AnalysisRecord",
    "BoostEffects", "BootstrapSettings", "Calibration", "CalibrationBin", "DetectionScores", "ExpertUse", "Fabrication",
    "Inconsistency", "KnowledgeLeak", "Latency", "Localisation", "MapSource", "MaskLookup", "RunData",
    "SelfInconsistency", "ad_verdict", "analyse", "auroc", "average_precision", "boost_effects", "bootstrap_ci",
    "calibration", "chosen_confidence", "circular", "detection_scores", "ece", "fabrication", "hallucination", "holm",
    "human_gap", "image_facts", "invalid_rates", "latency", "load_run", "localisation", "masks_of", "mcnemar",
    "p_defect", "paired_mcnemar", "pct", "percentile", "plain_preds", "position_bias", "probe_preds", "read_timings",
    "says_defect", "self_inconsistency", "softmax",
]


def analyse(preds: Sequence[Prediction], *, run_dir: Path | None = None, cycle_ms: float | None = None,
            n_boot: int = 1000, seed: int = 0, masks: MaskLookup | None = None,
            image_root: Path | None = None) -> Analysis:
    """Every analysis of one run. ``masks`` and ``image_root`` serve the localisation section (runs with maps)."""
    df = scoring.frame(preds)
    table = scoring.score_table(df)
    ci = bootstrap_ci(df, n_boot=n_boot, seed=seed)
    per_q, batches = read_timings(run_dir) if run_dir is not None else ({}, [])
    image_of = {p.id: p.image for p in preds}
    facts = image_facts(preds)
    return Analysis(
        table=table, counts=scoring.counts(df), ci=ci, human_gap=human_gap(table, ci),
        hallucination=hallucination(preds, facts), self_inconsistency=self_inconsistency(preds, facts),
        fabrication=fabrication(preds), invalid=invalid_rates(preds), position_bias=position_bias(preds),
        detection_scores=detection_scores(preds), calibration=calibration(preds),
        latency=latency(per_q, batches, image_of, cycle_ms), circular=circular(preds),
        bootstrap=BootstrapSettings(resamples=n_boot, seed=seed), boosts=boost_effects(list(preds)),
        localisation=localisation(preds, table, run_dir=run_dir, masks=masks, image_root=image_root))
