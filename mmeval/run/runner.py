"""The run loop: questions -> rendered requests -> adapter -> extracted answers -> predictions.jsonl.

Resumable by construction: predictions already on disk for this config are skipped, each new line is
flushed as it arrives, and error lines are retried. Under a multi-process launcher (``accelerate
launch``, ``torchrun``: RANK/WORLD_SIZE in the environment) each process answers its own shard into
its own file and rank 0 merges them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mmeval import launch
from mmeval import tasks as task_registry
from mmeval.answers import extract_choice
from mmeval.config import RunConfig
from mmeval.data import Benchmark, Question, load_benchmark, locate
from mmeval.errors import InputError
from mmeval.model_adapters import build_adapter
from mmeval.model_adapters.base import ModelAdapter
from mmeval.predictions import (
    Prediction,
    PredictionWriter,
    latest_by_id,
    read_predictions,
    write_sorted,
)
from mmeval.prompting.messages import Request, Response
from mmeval.prompting.render import render_message
from mmeval.prompting.shuffle import shuffle_options

PREDICTIONS = "predictions.jsonl"
RUN_FILE = "run.json"
SKIPPED = "skipped.json"
TIMINGS = "timings.jsonl"
LAUNCH_SKEW_S = 120.0  # processes of one launch start within this many seconds of each other
USAGE = "usage.jsonl"  # one line per process and session: adapter.run_info() (tokens, cost ...)


@dataclass
class Prepared:
    question: Question
    request: Request
    answer: str
    variant: str | None = None
    base_id: str | None = None


def resolve_data(config: RunConfig) -> tuple[Path, Path]:
    """``synthetic[:SCALE]`` builds (once) and uses the bundled benchmark; anything else is a path."""
    from mmeval.data.synthetic.cache import ensure_synthetic, synthetic_scale

    if scale := synthetic_scale(config.data):
        json_path = ensure_synthetic(scale)
        return json_path, Path(config.image_root).resolve() if config.image_root else json_path.parent
    return locate(config.data, config.image_root)


def load(config: RunConfig) -> Benchmark:
    json_path, root = resolve_data(config)
    return load_benchmark(json_path, root, shots=config.shots, templates=config.templates,
                          strict=config.strict, allow_unknown_types=config.allow_unknown_types)


def _request(q: Question, qid: str, options: dict[str, str]) -> Request:
    return Request(id=qid, task=q.task, image=q.image, options=options, message=render_message(q, options))


def prepare(questions: Sequence[Question], config: RunConfig) -> list[Prepared]:
    """Shuffle and render every question, plus its rotations and the probes when asked for.

    Each image's questions stay adjacent (probes right after the image's own questions), which
    adapters that reuse an image's encoded prefix rely on.
    """
    probes: dict[str, Question] = {}
    if config.probes:
        from mmeval.prompting.variants import probe_questions

        classification = task_registry.get("Defect Classification").name
        probes = {p.image: p for p in probe_questions(questions, config.seed, classification)}
    out: list[Prepared] = []
    for i, q in enumerate(questions):
        if config.shuffle:
            options, answer = shuffle_options(q.options, q.answer, config.seed, q.id)
        else:
            options, answer = dict(q.options), q.answer
        out.append(Prepared(q, _request(q, q.id, options), answer))
        if config.circular:
            from mmeval.prompting.variants import rotate

            for k in range(1, len(options)):
                rot_options, rot_answer = rotate(options, answer, k)
                rid = f"{q.id}@rot{k}"
                out.append(Prepared(q, _request(q, rid, rot_options), rot_answer, f"rot{k}", q.id))
        last_of_image = i + 1 == len(questions) or questions[i + 1].image != q.image
        if last_of_image and q.image in probes:
            p = probes[q.image]
            out.append(Prepared(p, _request(p, p.id, p.options), p.answer, "probe"))
    return out


def decide(response: Response, options: dict[str, str], task: str) -> str | None:
    """Option scores decide when the model gave them; otherwise the text is parsed."""
    if response.error:
        return None
    if response.scores:
        known = {k: v for k, v in response.scores.items() if k in options}
        if known:
            best = max(known.values())
            winners = [k for k, v in known.items() if v == best]
            return winners[0] if len(winners) == 1 else None
    tdef = task_registry.resolve(task)
    return extract_choice(response.text, options, yes_no=bool(tdef and tdef.yes_no))


def to_prediction(p: Prepared, r: Response, model: str, digest: str) -> Prediction:
    q = p.question
    return Prediction(
        id=p.request.id, image=q.image, dataset=q.dataset, category=q.category, type=q.type_label, task=q.task,
        is_normal=q.is_normal, question=q.question, options=p.request.options, answer=p.answer, response=r.text,
        choice=decide(r, p.request.options, q.task), scores=r.scores, error=r.error, note=r.note, variant=p.variant, base_id=p.base_id,
        model=model, config=digest,
    )


def check_run_dir(out: Path, config: RunConfig, overwrite: bool) -> None:
    """Refuse to mix predictions of two different configs in one directory."""
    run_file = out / RUN_FILE
    if run_file.exists():
        old = json.loads(run_file.read_text(encoding="utf-8"))
        if old.get("digest") != config.digest():
            if not overwrite:
                raise InputError(
                    f"--out {out} holds a run with a different config (digest {old.get('digest')} vs "
                    f"{config.digest()}); choose another --out, or pass --overwrite to discard it")
            for name in os.listdir(out):
                path = out / name
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def by_image(items: Sequence[Prepared]) -> list[list[Prepared]]:
    """Consecutive runs of requests about the same image (file order keeps them adjacent)."""
    groups: list[list[Prepared]] = []
    for p in items:
        if groups and groups[-1][0].request.image == p.request.image:
            groups[-1].append(p)
        else:
            groups.append([p])
    return groups


def my_share(items: Sequence[Prepared], rank: int, world: int) -> list[Prepared]:
    """This process's questions: whole images dealt round-robin, so no image is encoded twice."""
    return [p for i, group in enumerate(by_image(items)) if i % world == rank for p in group]


def batches(items: Sequence[Prepared], size: int) -> Iterator[list[Prepared]]:
    """Batches of whole images, up to ``size`` requests; an image larger than a batch is split.

    Keeping an image's questions in one batch lets adapters encode its shared prefix once.
    """
    size = max(1, size)
    batch: list[Prepared] = []
    for group in by_image(items):
        if batch and len(batch) + len(group) > size:
            yield batch
            batch = []
        while len(group) > size:
            yield group[:size]
            group = group[size:]
        batch.extend(group)
    if batch:
        yield batch


@dataclass
class RunResult:
    out: Path
    predictions: Path
    answered: int
    total: int
    errors: int
    skipped: int


def run(config: RunConfig, out: Path, *, overwrite: bool = False, progress: bool = True,
        adapter: ModelAdapter | None = None) -> RunResult:
    bench = load(config)
    questions = bench.questions[: config.limit] if config.limit else bench.questions
    if not questions:
        raise InputError(f"--data {config.data}: no valid questions (skipped {len(bench.skipped)} record(s))")
    rank, world = launch.rank_and_world()
    started = time.time()
    if rank == 0:
        check_run_dir(out, config, overwrite)
        for stale in out.glob(".rank*.*"):  # markers of an earlier multi-process run that died
            stale.unlink()
        (out / RUN_FILE).write_text(json.dumps({"digest": config.digest(), "config": config.public(),
                                                "source": bench.source}, indent=2, default=str), encoding="utf-8")
        (out / SKIPPED).write_text(json.dumps([s.as_dict() for s in bench.skipped], indent=1), encoding="utf-8")
        if world > 1:
            (out / ".rank0.ready").write_text("ok")
    else:
        # ranks start together; a marker much older than this process is a leftover, not rank 0's
        _wait_for(out / ".rank0.ready", newer_than=started - LAUNCH_SKEW_S)
    digest = config.digest()
    pred_path = out / (PREDICTIONS if world == 1 else f"predictions.rank{rank}.jsonl")
    read_predictions(pred_path, repair=True)  # cut a torn last line off this process's own file
    done = {p.id: p for p in _read_all(out) if p.config == digest and p.error is None}
    prepared = prepare(questions, config)
    pending = my_share([p for p in prepared if p.request.id not in done], rank, world)
    own = adapter or build_adapter(config.model, config.adapter_options(), seed=config.seed)
    try:
        _answer(own, pending, pred_path, out / (TIMINGS if world == 1 else f"timings.rank{rank}.jsonl"),
                config.model, digest, progress and rank == 0)
        info = own.run_info()
        if info:
            with open(out / USAGE, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"rank": rank, **info}, default=str) + "\n")
    finally:
        if adapter is None:
            own.close()
    if world > 1:
        (out / f".rank{rank}.done").write_text("ok")
        if rank != 0:
            return RunResult(out, pred_path, 0, len(prepared), 0, len(bench.skipped))
        for r in range(1, world):
            _wait_for(out / f".rank{r}.done", newer_than=started - LAUNCH_SKEW_S)
    merged = latest_by_id(p for p in _read_all(out) if p.config == digest)
    write_sorted(out / PREDICTIONS, merged, [p.request.id for p in prepared])
    if world > 1:
        for r in range(world):
            for name in (f"predictions.rank{r}.jsonl", f".rank{r}.done", f".rank{r}.ready"):
                (out / name).unlink(missing_ok=True)
    final = read_predictions(out / PREDICTIONS)
    errors = sum(1 for p in final if p.error)
    return RunResult(out, out / PREDICTIONS, len(final), len(prepared), errors, len(bench.skipped))


def _read_all(out: Path) -> list[Prediction]:
    """Predictions of the merged file and of every process's part (others' torn lines are skipped)."""
    files = [out / PREDICTIONS] + sorted(out.glob("predictions.rank*.jsonl"))
    preds: list[Prediction] = []
    for f in files:
        preds.extend(read_predictions(f))
    return preds


def _wait_for(path: Path, newer_than: float = 0.0, timeout: float = 24 * 3600) -> None:
    """Wait for another process's marker file (written no earlier than ``newer_than``)."""
    start = time.monotonic()
    while not (path.exists() and path.stat().st_mtime >= newer_than):
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"gave up waiting for {path}")
        time.sleep(0.2)


def _answer(adapter: ModelAdapter, pending: list[Prepared], pred_path: Path, timing_path: Path,
            model: str, digest: str, progress: bool) -> None:
    by_id = {p.request.id: p for p in pending}
    bar = tqdm(total=len(pending), desc=f"{model}", unit="q", disable=not progress, dynamic_ncols=True)
    with PredictionWriter(pred_path) as writer, open(timing_path, "a", encoding="utf-8") as timing:
        for batch in batches(pending, adapter.batch_size):
            start = last = time.perf_counter()
            for response in adapter.predict([p.request for p in batch]):
                prep = by_id.get(response.id)
                if prep is None:
                    raise RuntimeError(f"adapter {model} answered an unknown question id {response.id!r}")
                writer.write(to_prediction(prep, response, model, digest))
                now = time.perf_counter()
                timing.write(json.dumps({"id": response.id, "seconds": round(now - last, 6),
                                         "batch_size": len(batch)}) + "\n")
                last = now
                bar.update(1)
            timing.write(json.dumps({"batch_of": batch[0].request.id, "batch_size": len(batch),
                                     "batch_seconds": round(time.perf_counter() - start, 6)}) + "\n")
            timing.flush()
    bar.close()
