"""The run configuration: everything that decides what a run's predictions are, run.json, and status.json (how
complete the run's answers are).

Its hash is written into every prediction line and into the run directory; a rerun with the same
hash resumes, a different hash refuses to mix into the same directory. Operational settings (how
answers are fetched: batch size, concurrency, retries, caches) are kept apart and out of the hash.

A run can be described in a YAML or TOML file (``mmeval run --config FILE``) with the same keys as the
flags (see :data:`FILE_KEYS`); flags given on the command line override the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field

from mmeval import __version__
from mmeval.errors import InputError
from mmeval.jsonsafe import decode_utf8
from mmeval.prompting.render import prompts_digest
from mmeval.prompting.styles import DEFAULT_STYLE, PromptStyle, style_digest

#: fields that do not change any single prediction, so they stay out of the hash
UNHASHED = frozenset({"limit", "strict", "runtime_args", "boost_runtime_args", "batch_size", "concurrency",
                      "verify_images", "subset_path"})

#: version of the run.json layout (bumped when its fields change meaning)
RUN_SCHEMA_VERSION = 1

AnswerMode = Literal["generate", "likelihood"]

_URL_USERINFO = re.compile(r"(://)[^/@\s]+@")
_SECRET_QUERY = re.compile(r"([?&][^=&\s]*(?:key|token|secret|password|sig)[^=&\s]*=)[^&\s]*", re.IGNORECASE)


def redact(value: Any) -> Any:
    """Strip credentials that may hide in option values (``https://user:pass@host``, ``?api_key=``)."""
    if isinstance(value, str):
        return _SECRET_QUERY.sub(r"\1***", _URL_USERINFO.sub(r"\1***@", value))
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


class Weights(BaseModel):
    """Which training checkpoint a run evaluated, so that two steps (or two trainings) never share a run's identity.

    Set by ``mmeval watch`` and the Trainer callback; a plain ``mmeval run`` has none.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: int = Field(ge=0, description="the training step (0: the base, before training)")
    digest: str = Field(description="SHA-256 of the weight files (adapter, projector or full weights)")


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="model spec, e.g. 'expert' or 'hf:PATH'")
    model_args: dict[str, Any] = Field(default_factory=dict, description="the family's options that affect answers")
    runtime_args: dict[str, Any] = Field(default_factory=dict, description="the family's operational options")
    answer_mode: AnswerMode = "generate"
    boosts: tuple[str, ...] = Field(default=(), description="request transforms, applied in this order")
    boost_args: dict[str, dict[str, Any]] = Field(default_factory=dict, description="boost name -> its options")
    boost_runtime_args: dict[str, dict[str, Any]] = Field(default_factory=dict)
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
    subset: str | None = Field(None, description="digest of the sample of questions asked (--subset), if any")
    subset_path: str | None = Field(None, description="the subset.json it was read from (where, not what)")
    strict: bool = False
    verify_images: Literal["none", "header", "full"] = Field(
        "header", description="how images are checked when the data loads: header (cheap), full (decode), none")
    batch_size: int | None = Field(None, ge=1, description="requests handed to the adapter at once")
    concurrency: int | None = Field(None, ge=1, le=1024, description="requests in flight at once (API families)")
    prompts: str = Field(default_factory=prompts_digest, description="digest of the prompt templates")
    prompt_style: PromptStyle = Field(DEFAULT_STYLE, description="how questions are worded: mmeval's templates, or "
                                                                 "a reproduction of a reference script")
    reading: Literal["invalid", "closest"] | None = Field(
        None, description="how replies naming no option are read when the model family fixes it (None: as the prompt "
                          "style reads them)")
    weights: Weights | None = Field(None, description="the training step and weights digest (mmeval watch)")

    def hashed_fields(self) -> dict[str, Any]:
        fields = self.model_dump(exclude=set(UNHASHED))
        if fields["subset"] is None:  # runs on the whole data keep the hash they had before samples existed
            del fields["subset"]
        if fields["prompt_style"] == DEFAULT_STYLE:  # runs from before the style existed keep their hash
            del fields["prompt_style"]
        else:  # the style's own templates are part of what it is
            fields["prompt_style"] = f"{self.prompt_style}:{style_digest(self.prompt_style)}"
        if fields["reading"] is None:  # families that read replies as the prompt style does keep their hash
            del fields["reading"]
        if self.boosts:  # only where boosts run, so a plain run's hash never depends on the boosts there are
            del fields["boost_args"]  # the resolved options hold them: a default given or left out is one run
            fields["boost_identity"] = self.boost_identity()
        if fields["weights"] is None:  # runs of plain checkpoints keep the hash they had before the field existed
            del fields["weights"]
        return fields

    def boost_identity(self) -> dict[str, dict[str, Any]]:
        """Per boost run, what decides its output: its options resolved (defaults included) and the digest of
        its templates (:meth:`mmeval.boosts.Boost.identity`). A default or a wording changed in a later release
        changes the hash, so such a run never resumes into answers given under the old one."""
        from mmeval.boosts import boost_class

        return {name: boost_class(name).identity(self.boost_args.get(name, {})) for name in self.boosts}

    def adapter_options(self) -> dict[str, Any]:
        return {**self.model_args, **self.runtime_args}

    def options_of(self, boost: str) -> dict[str, Any]:
        return {**self.boost_args.get(boost, {}), **self.boost_runtime_args.get(boost, {})}

    def public(self) -> dict[str, Any]:
        """The config as written to disk and reports: credentials in URLs redacted."""
        return redact(self.model_dump(mode="json"))

    def digest(self) -> str:
        blob = json.dumps(self.hashed_fields(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class BoostRecord(BaseModel):
    """One applied boost as the run log records it (a boost may add facts of its own, e.g. what it read)."""

    model_config = ConfigDict(extra="allow")

    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    summary: str = ""


class RunRecord(BaseModel):
    """run.json: the resolved config of a run directory, its hash, its data source and its boosts."""

    model_config = ConfigDict(extra="allow")

    version: int = RUN_SCHEMA_VERSION
    mmeval: str = __version__
    digest: str
    config: RunConfig
    source: str = ""
    boosts: list[BoostRecord] = Field(default_factory=list)
    #: the production line cycle time given to the run (ms), so a later report keeps the latency verdict
    cycle_ms: float | None = None
    #: how the model adapter deviates from the model's own prompt format (a checkpoint without a chat template ...)
    model_notes: list[str] = Field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "file"
            raise InputError(f"{path}: not a run record of this mmeval version ({where}: {err['msg']}); "
                             "rerun into a new --out, or use the mmeval version that wrote it") from None

    def write(self, path: Path) -> None:
        """Written atomically (temp file + rename): a crash never leaves a torn run.json."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        tmp.replace(path)


class RunStatus(BaseModel):
    """status.json: how complete a run directory's answers are, as its last session left them.

    A run is complete when every question it asks has an answer: none ended in an error, none was never asked
    (a session that stopped early). ``mmeval run`` exits with its own code when it is not (see the CLI),
    and the report says so; a rerun of the same command retries the errors and asks the rest.
    """

    model_config = ConfigDict(frozen=True)

    version: int = 1
    questions: int = Field(description="questions this run asks (rotations and probes included)")
    answered: int = Field(description="questions with an answer (a valid or an invalid one)")
    errors: int = Field(description="questions whose last attempt ended in an error")
    retryable_errors: int = Field(0, description="errors a rerun may fix (timeouts, rate limits ...)")
    missing: int = Field(0, description="questions never asked")
    stopped: str | None = Field(None, description="why the session stopped before asking every question")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def complete(self) -> bool:
        return self.errors == 0 and self.missing == 0 and self.stopped is None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> str:
        """One sentence: how many questions have no answer, and why."""
        if self.complete:
            return f"complete: all {self.questions} question(s) answered"
        parts = []
        if self.errors:
            lasting = self.errors - self.retryable_errors
            why = [f"{n} {what}" for n, what in ((self.retryable_errors, "may succeed on a rerun"),
                                                 (lasting, "failed for a reason a rerun cannot fix")) if n]
            parts.append(f"{self.errors} ended in an error ({', '.join(why)})")
        if self.missing:
            parts.append(f"{self.missing} never asked")
        text = f"incomplete: {self.errors + self.missing} of {self.questions} question(s) have no answer"
        text += f": {' and '.join(parts)}" if parts else ""
        return text + (f"; the run stopped: {self.stopped}" if self.stopped else "")

    @classmethod
    def read(cls, path: Path) -> RunStatus | None:
        """The status a session left, or None (no file: a run from before status files, or one still running)."""
        try:
            return cls.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            return None

    def write(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        tmp.replace(path)


# ------------------------------------------------------------------------------------------ config files

#: keys a config file may hold (the names of the flags, with underscores)
FILE_KEYS = frozenset({
    "model", "model_args", "answer_mode", "boost", "boost_args", "data", "image_root", "shots", "templates", "seed",
    "shuffle", "allow_unknown_types", "circular", "probes", "limit", "strict", "batch_size", "concurrency", "out",
    "overwrite", "allow_other_files", "cycle_ms", "verify_images", "prompt_style", "columns", "subset",
})


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A run described in YAML (``.yaml``/``.yml``) or TOML (``.toml``): a mapping of flag names to values.

    The file is read as UTF-8 (what YAML and TOML specify); other bytes are an error naming the line."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"--config: no such file '{p}'")
    try:
        text = decode_utf8(p.read_bytes(), f"--config {p}")
    except OSError as exc:
        raise InputError(f"--config {p}: cannot read it ({exc.strerror or exc})") from None
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

            data: Any = tomllib.loads(text)
        elif p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise InputError(f"--config {p}: give a .yaml, .yml or .toml file")
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - yaml and toml raise their own error classes
        raise InputError(f"--config {p}: cannot parse it: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"--config {p}: expected a mapping of settings, got {type(data).__name__}")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - FILE_KEYS)
    if unknown:
        raise InputError(f"--config {p}: unknown setting(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(FILE_KEYS))})")
    for key in ("model_args", "boost_args"):
        if key in data and not isinstance(data[key], dict):
            raise InputError(f"--config {p}: {key} must be a mapping of option names to values")
    return data
