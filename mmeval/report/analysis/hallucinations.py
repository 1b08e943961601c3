"""Hallucination and self-inconsistency of a run's answers. Definitions, precisely:

Hallucination (:func:`hallucination`)
    *Overkill*: share of normal images' Anomaly Detection questions not answered "no defect"
    (an invalid answer counts, as in scores.csv). *Miss*: share of anomalous images' Anomaly
    Detection questions not answered "defect". *Fabrication*: among defect probes (variant
    ``probe``: a normal image, options = its category's defect types + "There is no defect.")
    answered with a valid letter, the share that picked a defect. Invalid probe answers are
    counted apart, not in the denominator.

Self-inconsistency (:func:`self_inconsistency`), per image, from the image's plain Anomaly
Detection answer(s) ("AD says no" = every valid AD answer of the image chose the option meaning
No / no defect; "AD says yes" likewise with Yes):
    *denied_but_described*: an anomalous image where AD says no, yet at least one of the image's
    defect questions (the tasks asked only about anomalous images: classification, localization,
    description, analysis) was answered correctly. Denominator: anomalous images where AD says no
    and at least one defect question was asked. The defect-question accuracy on such images is
    reported beside the accuracy on images where AD says yes: if they are alike, the AD answer is
    disconnected from what the model sees.
    *probe_contradiction*: a normal image where AD says no, yet the probe picked a defect.
    Denominator: normal images where AD says no with a valid probe answer.
    *probe_reverse*: a normal image where AD says yes (overkill), yet the probe answered "There is
    no defect.". Denominator: normal images where AD says yes with a valid probe answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from mmeval.predictions import Prediction
from mmeval.report.analysis.questions import PROBE, pct, probe_preds
from mmeval.scoring import Figure
from mmeval.tasks import defect_tasks, detection_task, option_polarity


class Fabrication(BaseModel):
    """Defect probes: how many were asked, answered with a valid letter, and answered with a defect."""

    model_config = ConfigDict(frozen=True)

    probes: int
    valid: int
    invalid: int
    fabricated: int
    rate: Figure  # % of the valid answers


class Inconsistency(BaseModel):
    """One self-inconsistency check: the images it applies to, those inconsistent, their share (%)."""

    model_config = ConfigDict(frozen=True)

    images: int
    inconsistent: int
    rate: Figure


class SelfInconsistency(BaseModel):
    """Contradictions between an image's AD answer and its other answers (module docstring)."""

    model_config = ConfigDict(frozen=True)

    denied_but_described: Inconsistency
    defect_accuracy_when_denied: Figure
    defect_questions_when_denied: int
    defect_accuracy_when_detected: Figure
    defect_questions_when_detected: int
    probe_contradiction: Inconsistency
    probe_reverse: Inconsistency
    all: Inconsistency


def says_defect(pred: Prediction) -> bool | None:
    """For an Anomaly Detection answer: True = chose Yes (defect), False = chose No, None = invalid/other."""
    if pred.choice is None or pred.choice not in pred.options:
        return None
    pol = option_polarity(pred.options[pred.choice])
    return None if pol is None else pol == "yes"


def _ad_by_image(preds: Sequence[Prediction]) -> dict[str, list[Prediction]]:
    ad = detection_task()
    out: dict[str, list[Prediction]] = defaultdict(list)
    for p in preds:
        if p.variant is None and p.task == ad:
            out[p.image].append(p)
    return out


def ad_verdict(answers: Sequence[Prediction]) -> bool | None:
    """An image's AD verdict: True when every valid answer says defect, False when every one says no."""
    said = [s for s in (says_defect(p) for p in answers) if s is not None]
    if not said:
        return None
    if all(said):
        return True
    if not any(said):
        return False
    return None


def fabrication(preds: Iterable[Prediction]) -> Fabrication:
    """Defect probes: how often a defect was picked on a normal image (of the valid answers)."""
    probes = probe_preds(preds)
    valid = [p for p in probes if p.choice is not None]
    fabricated = [p for p in valid if p.choice != p.answer]
    return Fabrication(probes=len(probes), valid=len(valid), invalid=len(probes) - len(valid),
                       fabricated=len(fabricated), rate=pct(len(fabricated), len(valid)))


def _check(images: int, inconsistent: int) -> Inconsistency:
    return Inconsistency(images=images, inconsistent=inconsistent, rate=pct(inconsistent, images))


@dataclass(frozen=True)
class ImageFacts:
    """What self-inconsistency needs of one image with an Anomaly Detection answer."""

    verdict: bool | None  # see ad_verdict
    normal: bool
    defect_right: int  # of its plain defect questions, answered correctly ...
    defect_asked: int  # ... and asked
    probe_defect: bool | None  # its probe picked a defect; None: no probe or no valid probe answer


def image_facts(preds: Sequence[Prediction]) -> dict[str, ImageFacts]:
    """Per image with a plain AD answer, the facts the checks count (one pass; groups sum these)."""
    ad = _ad_by_image(preds)
    dtasks = set(defect_tasks())
    right: dict[str, int] = defaultdict(int)
    asked: dict[str, int] = defaultdict(int)
    probe: dict[str, Prediction] = {}
    for p in preds:
        if p.variant is None and p.task in dtasks:
            asked[p.image] += 1
            right[p.image] += p.correct
        elif p.variant == PROBE:
            probe[p.image] = p
    out = {}
    for image, answers in ad.items():
        pr = probe.get(image)
        out[image] = ImageFacts(verdict=ad_verdict(answers), normal=answers[0].is_normal,
                                 defect_right=right.get(image, 0), defect_asked=asked.get(image, 0),
                                 probe_defect=None if pr is None or pr.choice is None else pr.choice != pr.answer)
    return out


def _inconsistency(facts: Iterable[ImageFacts]) -> SelfInconsistency:
    denied_n = denied_hit = 0
    acc = {"denied": [0, 0], "detected": [0, 0]}  # correct, asked
    contra_n = contra_hit = reverse_n = reverse_hit = 0
    for f in facts:
        if f.verdict is None:
            continue
        if not f.normal and f.defect_asked:
            bucket = acc["detected" if f.verdict else "denied"]
            bucket[0] += f.defect_right
            bucket[1] += f.defect_asked
            if not f.verdict:
                denied_n += 1
                denied_hit += f.defect_right > 0
        if f.normal and f.probe_defect is not None:
            if not f.verdict:
                contra_n += 1
                contra_hit += f.probe_defect
            else:
                reverse_n += 1
                reverse_hit += not f.probe_defect
    total_n = denied_n + contra_n + reverse_n
    total_hit = denied_hit + contra_hit + reverse_hit
    return SelfInconsistency(
        denied_but_described=_check(denied_n, denied_hit),
        defect_accuracy_when_denied=pct(*acc["denied"]), defect_questions_when_denied=acc["denied"][1],
        defect_accuracy_when_detected=pct(*acc["detected"]), defect_questions_when_detected=acc["detected"][1],
        probe_contradiction=_check(contra_n, contra_hit), probe_reverse=_check(reverse_n, reverse_hit),
        all=_check(total_n, total_hit))


def self_inconsistency(preds: Iterable[Prediction],
                       facts: dict[str, ImageFacts] | None = None) -> SelfInconsistency:
    """Contradictions between an image's AD answer and its other answers (module docstring).

    ``facts``: :func:`image_facts` of the same predictions, when the caller has them already.
    """
    return _inconsistency((image_facts(list(preds)) if facts is None else facts).values())


#: the counts of a hallucination row, in column order; each sums over the row's questions or images
_COUNTS = ("normal_questions", "overkill_n", "anomalous_questions", "miss_n", "ad_invalid", "probes", "probes_valid",
           "fabricated_n", "denied_but_described_n", "denied_images", "probe_contradiction_n",
           "probe_contradiction_images")


def _question_counts(preds: Iterable[Prediction]) -> dict[tuple[str, str], dict[str, int]]:
    """Per (dataset, category): the counts of its Anomaly Detection questions and its probes (one pass)."""
    ad = detection_task()
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for p in preds:
        c = counts.get((p.dataset, p.category))
        if c is None:
            c = counts[(p.dataset, p.category)] = dict.fromkeys(_COUNTS, 0)
        if p.variant is None and p.task == ad:
            if p.is_normal:
                c["normal_questions"] += 1
                c["overkill_n"] += not p.correct
            else:
                c["anomalous_questions"] += 1
                c["miss_n"] += not p.correct
            c["ad_invalid"] += p.choice is None
        elif p.variant == PROBE:
            c["probes"] += 1
            if p.choice is not None:
                c["probes_valid"] += 1
                c["fabricated_n"] += p.choice != p.answer
    return counts


def _add_image_counts(counts: dict[tuple[str, str], dict[str, int]], preds: Iterable[Prediction],
                      facts: dict[str, ImageFacts]) -> None:
    """Add each group's self-inconsistency counts, from the facts of its images."""
    group_of = {p.image: (p.dataset, p.category) for p in preds}
    by_group: dict[tuple[str, str], list[ImageFacts]] = defaultdict(list)
    for image, f in facts.items():
        by_group[group_of[image]].append(f)
    for group, group_facts in by_group.items():
        inc = _inconsistency(group_facts)
        c = counts[group]
        c["denied_but_described_n"] += inc.denied_but_described.inconsistent
        c["denied_images"] += inc.denied_but_described.images
        c["probe_contradiction_n"] += inc.probe_contradiction.inconsistent
        c["probe_contradiction_images"] += inc.probe_contradiction.images


def _hallucination_row(c: dict[str, int]) -> dict[str, Any]:
    return {
        "normal_questions": c["normal_questions"], "overkill_n": c["overkill_n"],
        "overkill": pct(c["overkill_n"], c["normal_questions"]),
        "anomalous_questions": c["anomalous_questions"], "miss_n": c["miss_n"],
        "miss": pct(c["miss_n"], c["anomalous_questions"]),
        "ad_invalid": c["ad_invalid"],
        "probes": c["probes"], "probes_valid": c["probes_valid"], "fabricated_n": c["fabricated_n"],
        "fabrication": pct(c["fabricated_n"], c["probes_valid"]),
        "denied_but_described_n": c["denied_but_described_n"], "denied_images": c["denied_images"],
        "denied_but_described": pct(c["denied_but_described_n"], c["denied_images"]),
        "probe_contradiction_n": c["probe_contradiction_n"],
        "probe_contradiction_images": c["probe_contradiction_images"],
        "probe_contradiction": pct(c["probe_contradiction_n"], c["probe_contradiction_images"]),
    }


def _summed(groups: Iterable[dict[str, int]]) -> dict[str, int]:
    total = dict.fromkeys(_COUNTS, 0)
    for c in groups:
        for k in _COUNTS:
            total[k] += c[k]
    return total


def hallucination(preds: Iterable[Prediction], facts: dict[str, ImageFacts] | None = None) -> pd.DataFrame:
    """Per dataset and category, then per dataset (category ``*``) and overall (``*``, ``*``).

    Every figure is a ratio of counts, and an image belongs to one dataset and category: the counts are
    taken once per category and summed for the dataset and overall rows. ``facts``: as in
    :func:`self_inconsistency`.
    """
    preds = list(preds)
    counts = _question_counts(preds)
    _add_image_counts(counts, preds, image_facts(preds) if facts is None else facts)
    rows: list[dict[str, Any]] = []
    for ds in dict.fromkeys(d for d, _ in counts):
        mine = {cat: c for (d, cat), c in counts.items() if d == ds}
        rows.extend({"dataset": ds, "category": cat, **_hallucination_row(c)} for cat, c in mine.items())
        rows.append({"dataset": ds, "category": "*", **_hallucination_row(_summed(mine.values()))})
    rows.append({"dataset": "*", "category": "*", **_hallucination_row(_summed(counts.values()))})
    return pd.DataFrame(rows)
