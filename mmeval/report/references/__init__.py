"""Reference figures shipped with mmeval: MMAD human baselines and published model results.

Source: Jiang et al., "MMAD: A Comprehensive Benchmark for Multimodal Large Language Models in
Industrial Anomaly Detection", ICLR 2025, arXiv:2410.09453; the ``all_result/`` folder of the MMAD
repository. See README.md in this package for the caveats. The human figures are approximate (read
off the paper's radar chart).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from mmeval.errors import InputError
from mmeval.scoring import AVERAGE, DETECTION_METRICS

SOURCE = ("MMAD (Jiang et al., ICLR 2025, arXiv:2410.09453), result files in the all_result/ folder "
          "of the MMAD repository")
HUMAN_CAVEAT = ("Human expert figures are approximate: read off the radar chart of the MMAD paper (Jiang et al., "
                "ICLR 2025, arXiv:2410.09453), about ±0.5 points (±1.5 for Defect Analysis). Per-task figures for "
                "ordinary (non-expert) people are unknown; their average is about 78.9.")

#: the datasets of MMAD (by the first component of its image paths; MVTec-AD holds a few after a data fix)
MMAD_DATASETS = frozenset({"DS-MVTec", "MVTec-AD", "MVTec-LOCO", "VisA", "GoodsAD"})
NOT_COMPARABLE = ("The human expert and published figures were measured on MMAD's questions; this run is on other "
                  "data, so they are shown for orientation only: the difference is not a gap to humans or to those "
                  "models.")


def measured_on_mmad(datasets: set[str] | frozenset[str] | list[str]) -> bool:
    """Whether a run's datasets are MMAD's, so that MMAD's reference figures are comparable with it."""
    return bool(datasets) and set(datasets) <= MMAD_DATASETS


HUMAN = "human"  # the expert baseline; also reachable as "human-expert" / "expert"
HUMAN_ORDINARY = "human-ordinary"
_ALIASES = {"human": HUMAN, "human-expert": HUMAN, "expert-human": HUMAN, "humans": HUMAN,
            "human-ordinary": HUMAN_ORDINARY, "ordinary": HUMAN_ORDINARY, "ordinary-human": HUMAN_ORDINARY}


class Reference(BaseModel):
    """One reference row of a model x task table: its scores and what it is."""

    model_config = ConfigDict(frozen=True)

    label: str
    kind: Literal["human", "published"]
    shots: int | None
    source: str
    note: str = ""
    scores: dict[str, float]  # task columns, Average and, for published models, the detection metrics

    def score(self, column: str) -> float:
        """The row's figure for ``column``; NaN when the reference does not give it."""
        return self.scores.get(column, float("nan"))

    def over(self, asked: Sequence[str]) -> dict[str, float]:
        """The row's figures for the tasks ``asked`` and an ``Average`` that averages what a run asking them
        averages: the published Average when they are the reference's own tasks, else the mean of its figures
        for them (NaN when it has no figure for one)."""
        own = [t for t in self.scores if t != AVERAGE and t not in DETECTION_METRICS]
        out = {t: self.scores[t] for t in asked if t in self.scores}
        if sorted(asked) == sorted(own):
            out[AVERAGE] = self.score(AVERAGE)
        elif asked and all(t in out for t in asked):
            out[AVERAGE] = sum(out[t] for t in asked) / len(asked)
        else:
            out[AVERAGE] = float("nan")
        return out


def _read(name: str) -> pd.DataFrame:
    text = resources.files("mmeval.report.references").joinpath(name).read_text(encoding="utf-8")
    return pd.read_csv(io.StringIO(text))


@lru_cache(maxsize=1)
def _human() -> pd.DataFrame:
    return _read("human_baseline.csv").set_index("task")


@lru_cache(maxsize=1)
def _published() -> pd.DataFrame:
    return _read("published_mmad.csv")


def human_baseline() -> pd.DataFrame:
    """Task (MMAD's seven tasks + ``Average``) -> expert, uncertainty, ordinary, note. Approximate, see
    HUMAN_CAVEAT."""
    return _human().copy()


def human_expert() -> dict[str, float]:
    """Task (and ``Average``) -> approximate expert accuracy in percent."""
    return {str(t): float(v) for t, v in _human()["expert"].items()}


def published() -> pd.DataFrame:
    """Long table: one row per (model, dataset) of the published MMAD result files."""
    return _published().copy()


def published_models() -> list[str]:
    return list(dict.fromkeys(_published()["model"]))


def known_names() -> list[str]:
    """Names ``--with`` accepts (matched case-insensitively)."""
    return [HUMAN, HUMAN_ORDINARY] + published_models()


def resolve(name: str) -> str:
    """The canonical reference name for ``name`` (case-insensitive); InputError listing the known ones."""
    key = name.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    for model in published_models():
        if model.lower() == key:
            return model
    raise InputError(f"unknown reference '{name}'; known: {', '.join(known_names())}")


def reference_row(name: str) -> Reference:
    """One row of a model x task table: the task columns, ``Average`` and what the row is.

    Published models give their ``Average`` (over datasets) row with every metric column; the human
    rows give only the task accuracies (ordinary people: only the average is known).
    """
    canon = resolve(name)
    if canon == HUMAN:
        return Reference(label="human expert (approx.)", kind="human", shots=None,
                         source="MMAD paper radar chart, approximate", scores=human_expert())
    if canon == HUMAN_ORDINARY:
        ordinary = _human()["ordinary"].astype(float)
        return Reference(label="human ordinary (approx., average only)", kind="human", shots=None,
                         source="MMAD paper text, relative to GPT-4o; approximate",
                         scores={"Average": float(ordinary["Average"])})
    pub = _published()
    rec = pub[(pub["model"] == canon) & (pub["dataset"] == "Average")].iloc[0]
    metrics = [str(c) for c in pub.columns if c not in ("model", "shots", "dataset", "source", "note")]
    return Reference(label=f"{canon} ({int(rec['shots'])}-shot, published)", kind="published",
                     shots=int(rec["shots"]), source=f"MMAD {rec['source']}",
                     note=rec["note"] if isinstance(rec["note"], str) else "",
                     scores={c: (float(rec[c]) if pd.notna(rec[c]) else float("nan")) for c in metrics})
