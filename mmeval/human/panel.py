"""The panel's majority vote, written as one more run directory (``human-panel/``, model ``human:panel``).

Per question, the letter most annotators chose among those who answered it (an "unsure" is no vote); a
tie is broken by a draw seeded with the panel's seed and the question id, so the same answers always give
the same panel. A question every annotator who reached it answered "unsure" gets no choice (scored
wrong). A vote takes no time of its own: the panel's run has no timings (its annotators' runs do). Its
config names the annotators, so a panel of other people is another run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmeval.config import RunRecord
from mmeval.human.session import PANEL, RUN_PREFIX, HumanSession
from mmeval.layout import PREDICTIONS
from mmeval.predictions import Prediction, write_sorted
from mmeval.prompting.shuffle import question_rng
from mmeval.run.rundir import RunDirLock, claim, ensure_writable, planned_files, record_outputs, write_run_record


def majority(votes: Sequence[str | None], seed: int, qid: str) -> str | None:
    """The most chosen letter (None votes left out); a tie drawn with a generator seeded by ``seed`` and ``qid``."""
    counts = Counter(v for v in votes if v is not None)
    if not counts:
        return None
    best = max(counts.values())
    tied = sorted(letter for letter, n in counts.items() if n == best)
    return tied[0] if len(tied) == 1 else question_rng(seed, qid, "panel").choice(tied)


def write_panel(folder: Path, session: HumanSession, answers: Mapping[str, Sequence[Prediction]],
                source: str) -> Path:
    """``folder/human-panel``: the majority vote of ``answers`` (annotator -> predictions) as a run directory."""
    out = folder / (RUN_PREFIX + PANEL)
    names = sorted(answers)
    config = session.run_config(PANEL, folder).model_copy(
        update={"model_args": {"annotators": names, "rule": "majority"}})
    digest = config.digest()
    by_question: dict[str, list[Prediction]] = {}
    order: list[str] = []
    for name in names:
        for p in answers[name]:
            if p.variant is None:
                if p.id not in by_question:
                    order.append(p.id)
                by_question.setdefault(p.id, []).append(p)
    preds: dict[str, Prediction] = {}
    for qid, given in by_question.items():
        votes = [p.choice for p in given]
        choice = majority(votes, session.seed, qid)
        tally = ", ".join(f"{letter}: {n}" for letter, n in sorted(Counter(v or "unsure" for v in votes).items()))
        preds[qid] = given[0].model_copy(update={
            "choice": choice, "response": f"majority of {len(votes)} ({tally})", "note": None if choice else "unsure",
            "model": config.model, "config": digest, "scores": None, "error": None})
    ensure_writable(out)
    with RunDirLock(out):
        claim(out, config, overwrite=True, allow_other_files=False, data_paths=[Path(source)])
        record_outputs(out, planned_files(1))
        write_run_record(out, RunRecord(digest=digest, config=config, source=source))
        write_sorted(out / PREDICTIONS, preds, order)
        record_outputs(out)
    return out
