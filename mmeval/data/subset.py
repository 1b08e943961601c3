"""A fixed sample of a benchmark's questions: stratified per dataset x question type, seeded, named by a digest.

Why: a human panel cannot answer 40,000 questions, and a quick look at a checkpoint during training should
not either; both need the same few hundred questions every time, and every run on them must be
comparable. ``mmeval data subset`` draws up to ``per_type`` questions from every (dataset, type) stratum
with a seeded generator of its own (one per stratum, so a stratum's draw does not depend on the others),
and writes them as a :class:`Subset` (``subset.json``): the question ids in the data's order and the
digest of those ids. ``mmeval run --subset`` answers exactly those questions; the digest enters the run's
identity, so runs on the same sample share it and runs on another one never mix with them.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mmeval.data.loading import Question, Skipped
from mmeval.errors import InputError

#: version of the subset.json layout (bumped when its fields change meaning)
SUBSET_SCHEMA_VERSION = 1


def ids_digest(ids: Sequence[str]) -> str:
    """The digest naming a sample: of its question ids, sorted, so the order they are listed in does not matter."""
    blob = "\n".join(sorted(ids)).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


class Stratum(BaseModel):
    """One (dataset, question type) cell of the sample: how many questions it had and how many were drawn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    task: str
    available: int
    drawn: int


class Subset(BaseModel):
    """subset.json: a seeded, stratified sample of question ids and the digest that names it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = SUBSET_SCHEMA_VERSION
    digest: str = Field(description="digest of the question ids (sorted); enters the identity of runs on it")
    per_type: int = Field(ge=1, description="questions drawn per dataset x question type (fewer where a cell has "
                                            "fewer)")
    seed: int
    source: str = Field("", description="the mmad.json the sample was drawn from")
    strata: list[Stratum] = Field(default_factory=list)
    ids: list[str] = Field(description="the question ids, in the order of the data")

    @model_validator(mode="after")
    def _consistent(self) -> Subset:
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("a question id is listed twice")
        if not self.ids:
            raise ValueError("no question ids")
        if ids_digest(self.ids) != self.digest:
            raise ValueError(f"digest {self.digest} does not match its ids ({ids_digest(self.ids)}): "
                             "the file was edited")
        return self

    def write(self, path: Path) -> None:
        """Written atomically (temp file + rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.model_dump_json(indent=1), encoding="utf-8")
        tmp.replace(path)


def _rng(seed: int, dataset: str, task: str) -> random.Random:
    digest = hashlib.sha256(f"subset:{seed}:{dataset}:{task}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def draw(questions: Sequence[Question], per_type: int, seed: int, source: str = "") -> Subset:
    """Up to ``per_type`` questions of every (dataset, task) stratum, drawn with the stratum's own seeded generator."""
    if per_type < 1:
        raise InputError(f"--per-type must be at least 1, got {per_type}")
    cells: dict[tuple[str, str], list[str]] = defaultdict(list)
    for q in questions:
        cells[(q.dataset, q.task)].append(q.id)
    chosen: set[str] = set()
    strata = []
    for (dataset, task), ids in cells.items():
        picked = _rng(seed, dataset, task).sample(ids, min(per_type, len(ids)))
        chosen.update(picked)
        strata.append(Stratum(dataset=dataset, task=task, available=len(ids), drawn=len(picked)))
    ids = [q.id for q in questions if q.id in chosen]
    if not ids:
        raise InputError("the data holds no valid question to sample")
    return Subset(digest=ids_digest(ids), per_type=per_type, seed=seed, source=source, strata=strata, ids=ids)


def read_subset(path: Path | str) -> Subset:
    """A subset.json read and checked; an InputError naming the file and what is wrong with it."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"--subset: no such file '{p}' (write one with 'mmeval data subset DATA --out {p.name}')")
    try:
        return Subset.model_validate_json(p.read_bytes())
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "file"
        raise InputError(f"--subset {p}: not a subset file of this mmeval version ({where}: "
                         f"{err['msg'].removeprefix('Value error, ')})") from None


def select(questions: Sequence[Question], subset: Subset, skipped: Sequence[Skipped] = (),
           where: str = "--subset") -> list[Question]:
    """The questions the subset names, in the data's order; an InputError when it names any the data lacks
    (a sample of other data, or records that no longer load: those are listed with the reason they were skipped)."""
    wanted = set(subset.ids)
    kept = [q for q in questions if q.id in wanted]
    if len(kept) == len(wanted):
        return kept
    missing = sorted(wanted - {q.id for q in kept})
    reasons = {s.key: s.reason for s in skipped}
    shown = []
    for qid in missing[:5]:
        key = qid.rpartition("#")[0]
        shown.append(f"{qid} (its record was skipped: {reasons[key]})" if key in reasons else qid)
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    raise InputError(f"{where}: {len(missing)} of the {len(wanted)} question(s) of sample {subset.digest} are not in "
                     f"the data: {', '.join(shown)}{more}; was it drawn from other data"
                     + (f" ({subset.source})" if subset.source else "") + "?")
