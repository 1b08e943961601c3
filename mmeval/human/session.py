"""A human panel's folder: ``human.json`` (what the people are shown), ``subset.json`` (the sample),
``.tokens.json`` (one secret per annotator) and one run directory per annotator (``human-NAME/``).

The folder is the panel's identity: serving it again with other data, seed, shots or sample is refused
(the answers already given were to other stimuli), while annotators may be added at any time. The
sample lives in the folder, so a model run with ``--subset FOLDER/subset.json`` is asked the same
questions, and its report finds the panel beside the sample.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mmeval.config import RunConfig
from mmeval.data.subset import Subset, read_subset
from mmeval.errors import InputError
from mmeval.layout import HUMAN_MODEL, HUMAN_PANEL_MODEL

#: version of the human.json layout (bumped when its fields change meaning)
SESSION_SCHEMA_VERSION = 1
SESSION_FILE = "human.json"
SUBSET_FILE = "subset.json"
TOKENS_FILE = ".tokens.json"
PRACTICE_DIR = "practice"
#: the run directory of an annotator is RUN_PREFIX + name; the majority-vote panel's is RUN_PREFIX + PANEL
RUN_PREFIX = "human-"
PANEL = HUMAN_PANEL_MODEL.removeprefix(HUMAN_MODEL)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def parse_annotators(text: str) -> list[str]:
    """``alice,bob`` -> ["alice", "bob"]: names that are safe in a folder name and a URL, without repeats."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError("--annotators: give at least one name, e.g. --annotators alice,bob")
    for name in names:
        if not _NAME.match(name):
            raise InputError(f"--annotators: '{name}' is not a usable name (letters, digits, '_', '-' and '.', "
                             "starting with a letter or digit, at most 40 characters)")
        if name.lower() == PANEL:
            raise InputError(f"--annotators: '{name}' is reserved for the majority-vote panel's run")
    if len({n.lower() for n in names}) < len(names):
        raise InputError(f"--annotators: a name is given twice ({text})")
    return names


class HumanSession(BaseModel):
    """human.json: the stimuli of a panel (the run config every annotator's run shares but for the model)."""

    model_config = ConfigDict(extra="forbid")

    version: int = SESSION_SCHEMA_VERSION
    data: str
    image_root: str | None = None
    source: str = Field("", description="the mmad.json the questions were read from")
    shots: int = Field(ge=0)
    templates: Literal["random", "similar"] = "random"
    seed: int
    subset: str = Field(description="digest of the sample (subset.json beside this file)")
    practice: int = Field(ge=0, description="practice questions (outside the sample) before the real ones")
    annotators: list[str]
    created: str = Field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    def identity(self) -> tuple[str, str | None, int, str, int, str]:
        return self.data, self.image_root, self.shots, self.templates, self.seed, self.subset

    def run_config(self, annotator: str, folder: Path) -> RunConfig:
        """The run config of one annotator's answers: a model run's, with the model ``human:NAME``."""
        return RunConfig(model=HUMAN_MODEL + annotator, data=self.data, image_root=self.image_root, shots=self.shots,
                         templates=self.templates, seed=self.seed, subset=self.subset,
                         subset_path=str((folder / SUBSET_FILE).resolve()))

    @classmethod
    def read(cls, folder: Path) -> HumanSession | None:
        path = folder / SESSION_FILE
        if not path.is_file():
            return None
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise InputError(f"{path}: not a human panel file of this mmeval version ({exc.errors()[0]['msg']})") \
                from None

    def write(self, folder: Path) -> None:
        tmp = folder / (SESSION_FILE + ".tmp")
        tmp.write_text(self.model_dump_json(indent=1), encoding="utf-8")
        tmp.replace(folder / SESSION_FILE)


def settle(folder: Path, wanted: HumanSession, sample: Subset) -> HumanSession:
    """The session to serve: ``wanted`` for a new folder; for an existing one, its own, with new annotators
    added (an InputError when the stimuli would differ from those the answers on disk were given to)."""
    folder.mkdir(parents=True, exist_ok=True)
    old = HumanSession.read(folder)
    if old is not None and old.identity() != wanted.identity():
        fields = ("data", "image root", "shots", "templates", "seed", "sample")
        diff = [f"{name}: {a} -> {b}" for name, a, b in zip(fields, old.identity(), wanted.identity(), strict=True)
                if a != b]
        raise InputError(f"{folder} holds a panel shown other questions ({'; '.join(diff)}); serve it with its own "
                         f"settings, or choose another --out")
    session = wanted if old is None else old.model_copy(
        update={"annotators": old.annotators + [a for a in wanted.annotators if a not in old.annotators],
                "practice": wanted.practice})
    sample.write(folder / SUBSET_FILE)
    session.write(folder)
    return session


def tokens(folder: Path, annotators: list[str]) -> dict[str, str]:
    """Each annotator's secret for URLs served beyond this machine; kept in ``.tokens.json`` (owner-only), so a
    restarted server accepts the URLs it printed before."""
    path = folder / TOKENS_FILE
    known: dict[str, str] = {}
    if path.is_file():
        try:
            known = {str(k): str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
        except (ValueError, AttributeError):
            known = {}
    missing = [a for a in annotators if a not in known]
    if missing:
        known.update({a: secrets.token_urlsafe(18) for a in missing})
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(known, fh, indent=1)
        tmp.replace(path)
    return {a: known[a] for a in annotators}


def sample_of(folder: Path, subset: str | None, drawn: Subset | None) -> Subset:
    """The panel's sample: the one given (``--subset`` file or freshly drawn), else the folder's own."""
    if subset:
        return read_subset(subset)
    if drawn is not None:
        return drawn
    if (folder / SUBSET_FILE).is_file():
        return read_subset(folder / SUBSET_FILE)
    raise InputError("give --per-type N (a sample is drawn per dataset x question type) or --subset FILE (written by "
                     "'mmeval data subset')")
