"""The run loop: prepared requests -> adapter -> chosen answers -> predictions.jsonl. Orchestration only.

Resumable by construction: predictions already on disk for this config are skipped, each new line is
flushed as it arrives, and error lines are retried. Under a multi-process launcher each process
answers its own share of the images into its own file and rank 0 merges them (:mod:`.shard`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

from tqdm import tqdm

from mmeval import boosts as boost_registry
from mmeval import heap, launch
from mmeval.answers import Fallback, choose_noted
from mmeval.config import BoostRecord, RunConfig, RunRecord, RunStatus
from mmeval.data import Benchmark, Question, load_benchmark, resolve
from mmeval.data.subset import read_subset, select
from mmeval.errors import AdapterError, InputError
from mmeval.home import mmeval_home
from mmeval.layout import ARTIFACTS, PROBE
from mmeval.model_adapters import build_adapter, implied_options
from mmeval.model_adapters.base import AdapterSettings, ModelAdapter
from mmeval.predictions import Prediction, PredictionWriter, latest_by_id, read_predictions, write_sorted
from mmeval.prompting.messages import Response
from mmeval.prompting.styles import ANSWER_FALLBACK
from mmeval.run import shard
from mmeval.run.prepare import Prepared, prepare
from mmeval.run.rundir import (
    PREDICTIONS,
    STATUS,
    TIMINGS,
    USAGE,
    RunDirLock,
    claim,
    ensure_writable,
    log_changes,
    planned_files,
    record_outputs,
    write_run_record,
    write_skipped,
)


def load(config: RunConfig) -> Benchmark:
    json_path, root = resolve(config.data, config.image_root)
    return load_benchmark(json_path, root, shots=config.shots, templates=config.templates,
                          strict=config.strict, allow_unknown_types=config.allow_unknown_types,
                          verify_images=config.verify_images)


def asked(config: RunConfig, bench: Benchmark) -> list[Question]:
    """The questions a run asks: the sample of ``--subset`` (checked against the digest in the config) or all,
    then the first ``--limit`` of them."""
    questions = bench.questions
    if config.subset:
        sample = read_subset(config.subset_path or "")
        if sample.digest != config.subset:
            raise InputError(f"--subset {config.subset_path}: the file now holds sample {sample.digest}, but this run "
                             f"was started on sample {config.subset}; give the file it was started with")
        questions = select(questions, sample, bench.skipped, where=f"--subset {config.subset_path}")
    return questions[: config.limit] if config.limit else questions


def build_boosts(config: RunConfig, bench: Benchmark) -> list[boost_registry.Boost]:
    context = boost_registry.BoostContext(data_root=bench.root, source=Path(bench.source), seed=config.seed,
                                          cache_dir=mmeval_home() / "boosts", model=config.model)
    built = boost_registry.build_boosts(config.boosts, {b: config.options_of(b) for b in config.boosts}, context)
    for boost in built:
        boost.prepare(bench.questions)
    return built


def to_prediction(p: Prepared, r: Response, model: str, digest: str, fallback: Fallback = "invalid") -> Prediction:
    """The prediction line of one answer; ``fallback``: how a reply naming no option is read (the family's or the
    prompt style's); a choice read as the closest option says so in ``note``."""
    q = p.question
    choice, how = choose_noted(r, p.request.options, fallback)
    note = "; ".join(n for n in (r.note, how) if n) or None
    return Prediction.model_validate({  # a dict validates faster than keywords through __init__
        "id": p.request.id, "image": q.image, "dataset": q.dataset, "category": q.category, "type": q.type_label,
        "task": q.task, "is_normal": q.is_normal, "question": q.question, "options": p.request.options,
        "answer": p.answer, "response": _text(r.text), "choice": choice,
        "scores": _finite(r.scores), "error": _text(r.error), "note": _text(note), "variant": p.variant,
        "base_id": p.base_id, "model": model, "config": digest, "question_digest": p.digest,
        "boost_notes": p.notes or None, "artifacts": r.artifacts, "retryable": r.retryable if r.error else None,
    })


@overload
def _text(text: str) -> str: ...
@overload
def _text(text: None) -> None: ...
def _text(text: str | None) -> str | None:
    """Text a predictions line can hold: half of a UTF-16 surrogate pair (a server may send the escape
    ``\\ud800``, which JSON allows) becomes U+FFFD, as UTF-8 cannot hold it."""
    if text is None or text.isascii():
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _finite(scores: dict[str, float] | None) -> dict[str, float | None] | None:
    """Scores as strict JSON can hold them: a non-finite value (impossible, unusable) becomes null."""
    if scores is None:
        return None
    return {k: v if math.isfinite(v) else None for k, v in scores.items()}


def batches(items: Sequence[Prepared], size: int) -> Iterator[list[Prepared]]:
    """Batches of whole images, up to ``size`` requests; an image larger than a batch is split.

    Keeping an image's questions in one batch lets adapters encode its shared prefix once.
    """
    size = max(1, size)
    batch: list[Prepared] = []
    for group in shard.by_image(items):
        if batch and len(batch) + len(group) > size:
            yield batch
            batch = []
        while len(group) > size:
            yield group[:size]
            group = group[size:]
        batch.extend(group)
    if batch:
        yield batch


def adapter_settings(config: RunConfig, out: Path | None = None) -> AdapterSettings:
    return AdapterSettings(seed=config.seed, answer_mode=config.answer_mode, batch_size=config.batch_size,
                           concurrency=config.concurrency, artifacts_dir=out / ARTIFACTS if out else None)


@dataclass
class RunResult:
    out: Path
    predictions: Path
    answered: int
    total: int
    errors: int
    skipped: int
    #: questions of this run that have no prediction at the end (should be none)
    missing: int = 0
    #: errors a rerun may fix (a timeout ...) and errors it cannot (a request the server refuses ...)
    retryable_errors: int = 0
    changed: int = 0
    removed: int = 0
    #: what the adapter reported about this session (usage, cache hits ...)
    adapter_info: dict[str, object] = field(default_factory=dict)
    #: predictions.jsonl as written (rank 0), so the report need not read it back
    written: list[Prediction] | None = field(default=None, repr=False)
    #: why the session stopped before asking every question (the model could no longer answer), else None
    stopped: str | None = None

    @property
    def status(self) -> RunStatus:
        """How complete the run is (status.json)."""
        return RunStatus(questions=self.total, answered=self.total - self.missing - self.errors, errors=self.errors,
                         retryable_errors=self.retryable_errors, missing=self.missing, stopped=self.stopped)


def reading(adapter: ModelAdapter, config: RunConfig) -> Fallback:
    """How replies that name no option are read: as the family declares (a model that never names a letter),
    else as the prompt style does."""
    return adapter.reading or ANSWER_FALLBACK[config.prompt_style]


def _check_adapter(own: ModelAdapter, config: RunConfig) -> None:
    if own.needs_templates and config.shots == 0:
        raise InputError(f"--model {config.model} compares the query with normal template images: give --shots 1 "
                         "or more (with --shots 0 every answer would be chance)")


def _record(config: RunConfig, bench: Benchmark, boosts: list[boost_registry.Boost],
            cycle_ms: float | None) -> RunRecord:
    records = [BoostRecord(name=b.name, args=config.boost_args.get(b.name, {}), summary=b.summary, **b.record())
               for b in boosts]
    return RunRecord(digest=config.digest(), config=RunConfig.model_validate(config.public()), source=bench.source,
                     boosts=records, cycle_ms=cycle_ms)


def _removed(on_disk: list[Prediction], bench: Benchmark) -> set[str]:
    """Predictions whose question left the data, or whose question changed (and is not asked again now)."""
    digests = {q.id: q.digest for q in bench.questions}
    images = {q.image for q in bench.questions}
    gone = set()
    for p in on_disk:
        base = p.base_id or p.id
        if p.variant == PROBE:
            if p.image not in images:
                gone.add(p.id)
        elif base not in digests or (p.question_digest is not None and p.question_digest != digests[base]):
            gone.add(p.id)
    return gone


def run(config: RunConfig, out: Path, *, overwrite: bool = False, allow_other_files: bool = False,
        progress: bool = True, adapter: ModelAdapter | None = None, lock: bool = True,
        cycle_ms: float | None = None) -> RunResult:
    """Answer every question of the benchmark that ``out`` has no good prediction for yet.

    ``lock=False`` when the caller already holds the directory's lock (the CLI holds it across the run
    and its report). The options the model implies are added to the config first (:func:`with_implied_options`),
    read off ``adapter`` where one is given.
    """
    with heap.records_kept():
        rank, world = launch.rank_and_world()
        started = time.time()
        if world > 1:
            shard.announce(out, rank)
        with heap.building():
            bench = load(config)
        questions = asked(config, bench)
        if not questions:
            raise InputError(f"--data {config.data}: no valid questions (skipped {len(bench.skipped)} record(s))")
        config = with_implied_options(config, adapter)
        held = RunDirLock(out) if rank == 0 and lock else None
        if held is not None:
            ensure_writable(out)
            held.acquire()
        try:
            return _run(config, out, bench, questions, rank, world, started, overwrite=overwrite,
                        allow_other_files=allow_other_files, progress=progress, adapter=adapter, cycle_ms=cycle_ms)
        finally:
            if held is not None:
                held.release()


def with_implied_options(config: RunConfig, adapter: ModelAdapter | None = None) -> RunConfig:
    """The config with the options its model implies added to its model options (a checkpoint whose chat template
    writes the date: the day it is fixed to), so that they are part of the run's identity from the start; read off
    ``adapter`` where one is built already, else off the model the config names."""
    found = adapter.options_implied() if adapter is not None else implied_options(config.model,
                                                                                  config.adapter_options())
    implied = {k: v for k, v in found.items() if k not in config.model_args}
    return config.model_copy(update={"model_args": {**config.model_args, **implied}}) if implied else config


def _run(config: RunConfig, out: Path, bench: Benchmark, questions: list[Question], rank: int, world: int,
         started: float, *, overwrite: bool, allow_other_files: bool, progress: bool, adapter: ModelAdapter | None,
         cycle_ms: float | None) -> RunResult:
    boosts = build_boosts(config, bench)
    if rank == 0:
        claim(out, config, overwrite=overwrite, allow_other_files=allow_other_files,
              data_paths=[Path(bench.source), bench.root])
        record_outputs(out, planned_files(world))
        shard.clear_stale_markers(out, started)
        write_run_record(out, _record(config, bench, boosts, cycle_ms))
        (out / STATUS).unlink(missing_ok=True)  # rewritten when this session ends; none while it runs
        write_skipped(out, [s.as_dict() for s in bench.skipped])
        if world > 1:
            shard.wait_for_partners(out, world, started)
            shard.mark(out, 0, "ready")
    else:
        shard.wait_for_rank0(out, started, world)
    digest = config.digest()
    pred_path = shard.own_file(out, rank, world)
    with heap.building():
        mine = {pred_path: read_predictions(pred_path, repair=True)}  # a torn last line is cut off the file
        prepared = prepare(questions, config, boosts)
        on_disk = latest_by_id(p for p in shard.read_all(out, known=mine) if p.config == digest)
    if rank == 0 and boosts:  # again, now with what the boosts did while preparing (images an expert analysed ...)
        write_run_record(out, _record(config, bench, boosts, cycle_ms))
    current = {p.request.id: p.digest for p in prepared}
    done = {i for i, p in on_disk.items() if p.error is None and current.get(i) == p.question_digest}
    changed = sorted(i for i, p in on_disk.items() if i in current and current[i] != p.question_digest)
    # each process's share is dealt from every question, not from those left: another process may already have
    # written answers that this one reads as done, and shares dealt from different lists would miss images
    pending = [p for p in shard.my_share(prepared, rank, world) if p.request.id not in done]
    own = adapter or build_adapter(config.model, config.adapter_options(), adapter_settings(config, out))
    if rank == 0 and own.notes():
        write_run_record(out, _record(config, bench, boosts, cycle_ms).model_copy(update={"model_notes": own.notes()}))
    info: dict[str, object] = {}
    written: dict[str, tuple[Prediction, str]] = {}
    stopped: str | None = None
    try:
        _check_adapter(own, config)
        try:
            _answer(own, pending, pred_path, out / (TIMINGS if world == 1 else f"timings.rank{rank}.jsonl"),
                    config.model, digest, progress and rank == 0, reading(own, config), written)
        except AdapterError as exc:
            if not written:  # it could not start (a missing file ...): a setup problem, nothing to report
                raise
            stopped = str(exc)  # it answered, then could no longer (a worker that keeps hanging ...): keep what is done
        info = own.run_info()
        if info:
            with open(out / USAGE, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"rank": rank, **info}, default=str) + "\n")
    finally:
        if adapter is None:
            own.close()
    if world > 1:
        shard.mark(out, rank, "done")
        if rank != 0:
            return RunResult(out, pred_path, 0, len(prepared), 0, len(bench.skipped))
        shard.wait_for_others(out, world, started)
    # one process: what is on disk is what was there plus what it wrote; several: read their files back
    known = {**on_disk, **{i: p for i, (p, _) in written.items()}} if world == 1 else None
    result = _merge(out, config, bench, prepared, world, changed, known, {i: line for i, (_, line) in written.items()})
    result.adapter_info = info
    result.stopped = stopped
    result.status.write(out / STATUS)
    return result


def _merge(out: Path, config: RunConfig, bench: Benchmark, prepared: list[Prepared], world: int,
           changed: list[str], known: dict[str, Prediction] | None = None,
           lines: dict[str, str] | None = None) -> RunResult:
    """Rank 0: one predictions.jsonl in question order, without predictions of questions that left the data."""
    digest = config.digest()
    merged = known if known is not None else latest_by_id(p for p in shard.read_all(out) if p.config == digest)
    removed = _removed(list(merged.values()), bench) - {p.request.id for p in prepared}
    kept = {i: p for i, p in merged.items() if i not in removed}
    ordered = write_sorted(out / PREDICTIONS, kept, [p.request.id for p in prepared], lines)
    if world > 1:
        shard.clean_up(out, world)
    log_changes(out, [i for i in changed if i in kept], sorted(removed))
    record_outputs(out)
    answered = {p.request.id for p in prepared} & kept.keys()
    errors = [kept[i] for i in answered if kept[i].error]
    return RunResult(out, out / PREDICTIONS, len(kept), len(prepared), len(errors), len(bench.skipped),
                     missing=len(prepared) - len(answered), retryable_errors=sum(p.retryable is not False
                                                                                  for p in errors),
                     changed=len(changed), removed=len(removed), written=ordered)


def _timing_line(qid: str, seconds: float, batch_size: int) -> str:
    """One line of timings.jsonl, as ``json.dumps`` writes the same dict (composed directly: one per question)."""
    return f'{{"id": {json.dumps(qid)}, "seconds": {round(seconds, 6)!r}, "batch_size": {batch_size}}}\n'


def _answer(adapter: ModelAdapter, pending: list[Prepared], pred_path: Path, timing_path: Path,
            model: str, digest: str, progress: bool, fallback: Fallback,
            written: dict[str, tuple[Prediction, str]]) -> None:
    """Ask the adapter, writing each answer the moment it comes into the file and into ``written`` (id ->
    prediction, line), which holds what was written even when the adapter stops the run half way."""
    by_id = {p.request.id: p for p in pending}
    bar = tqdm(total=len(pending), desc=f"{model}", unit="q", disable=not progress, dynamic_ncols=True)
    with PredictionWriter(pred_path) as writer, open(timing_path, "a", encoding="utf-8") as timing:
        for batch in batches(pending, adapter.batch_size):
            start = last = time.perf_counter()
            for response in adapter.predict([p.request for p in batch]):
                prep = by_id.get(response.id)
                if prep is None:
                    raise RuntimeError(f"adapter {model} answered an unknown question id {response.id!r}")
                pred = to_prediction(prep, response, model, digest, fallback)
                written[pred.id] = (pred, writer.write(pred))
                now = time.perf_counter()
                timing.write(_timing_line(response.id, now - last, len(batch)))
                last = now
                bar.update(1)
            timing.write(json.dumps({"batch_of": batch[0].request.id, "batch_size": len(batch),
                                     "batch_seconds": round(time.perf_counter() - start, 6)}) + "\n")
            timing.flush()
    bar.close()
