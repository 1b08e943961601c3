"""Model families that run in another Python environment, through a worker process.

:class:`WorkerAdapter` is the base: a family says how to start its worker (:meth:`WorkerAdapter.worker_spec`)
and, if it needs to, what to send for a request and in which frame its anomaly maps are; the base starts
the worker on the first request, sends the requests one by one, watches over the worker and turns its
replies into responses. The ``worker`` family (:class:`GenericWorkerAdapter`) wraps any backend module a
user writes.

What goes to the worker for one request (``request`` of the ``predict`` message)::

    {"id", "task", "image", "options": {letter: text}, "parts": [{"type": "text", "text"} |
     {"type": "image", "path", "role": "template" | "query" | "reference"}, ...], "prefix_len",
     "answer_mode": "generate" | "likelihood", "seed": per-request seed, "settings": the family's settings}

What a backend may return: ``text``, ``scores`` (option letter -> log-probability), ``map`` (a 2-D array,
higher = more anomalous; NaN where unknown), ``image_score``. Maps are written by the worker as ``.npy``,
put into the full image frame (:meth:`WorkerAdapter.map_frame`) and kept compressed, one per image, at
``artifacts/maps/<image path>.npz`` in the run directory (arrays ``map``, ``score``, ``rows``, ``cols``: the
centres of the map's rows and columns as fractions of the image height and width). A prediction's
``artifacts`` then hold ``{"map": that path relative to the run directory, "image_score": ...}``.

Faults: a worker that crashes or does not answer within ``request_timeout`` seconds is stopped; the
request is recorded as an error a rerun retries, and the worker is started again for the next request.
After ``max_restarts`` failures in a row the run stops with a message (the answers so far are kept). A
backend's own error for one request is recorded as that request's error, and the worker goes on.

Under a multi-process launch each process starts its own worker, with its own log, on the GPU of its
``LOCAL_RANK`` (unless ``CUDA_VISIBLE_DEVICES`` is set already).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mmeval import launch
from mmeval.home import atomic_write
from mmeval.model_adapters.base import OPERATIONAL, AdapterError, AdapterSettings, ModelAdapter
from mmeval.model_adapters.remote.retry import RetryPolicy
from mmeval.model_adapters.worker.client import WorkerFailure, WorkerProcess, WorkerSpec
from mmeval.optionspec import OptionDoc
from mmeval.prompting.messages import ImagePart, Request, Response

#: the folder of the run's artifacts where maps go, and where the worker logs go
MAPS = "maps"
LOGS = "logs"


class WorkerOptions(BaseModel):
    """Options every worker family has: where its environment is, and the watchdog's limits."""

    model_config = ConfigDict(extra="forbid")

    python: str | None = Field(None, json_schema_extra=OPERATIONAL,
                               description="the Python interpreter of the model's own environment "
                                           "(PATH_TO_ENV/bin/python); mmeval runs the model there, in a worker")
    load_timeout: float = Field(3600.0, gt=0, json_schema_extra=OPERATIONAL,
                                description="seconds the worker may take to load the model")
    request_timeout: float = Field(600.0, gt=0, json_schema_extra=OPERATIONAL,
                                   description="seconds one answer may take; a worker that takes longer is stopped, "
                                               "the question recorded as an error and the worker started again")
    max_restarts: int = Field(3, ge=0, le=100, json_schema_extra=OPERATIONAL,
                              description="failed answers in a row (crash or timeout) after which the run stops")
    restart_delay: float = Field(1.0, ge=0, json_schema_extra=OPERATIONAL,
                                 description="seconds before a restart, doubled each time in a row (with jitter)")
    save_maps: bool = Field(True, json_schema_extra=OPERATIONAL,
                            description="keep the anomaly maps in the run directory (artifacts/maps/), for the "
                                        "report's localisation section")


def _log_probs(scores: Any) -> dict[str, float] | None:
    """A backend's option scores as floats: ``-inf`` (JSON ``-Infinity``) stays impossible; a value that is no number
    (null, text) becomes NaN, unusable, so the answer is invalid rather than read from the other letters alone."""
    if not isinstance(scores, dict) or not scores:
        return None
    return {str(k): float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
            for k, v in scores.items()}


def request_seed(seed: int, request_id: str) -> int:
    """The sampling seed of one request: from the run's seed and the question, whatever the order or batching."""
    digest = hashlib.sha256(f"{seed}\0{request_id}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def tiling_centres(n: int) -> np.ndarray:
    """Centres of ``n`` cells that tile a side evenly, as fractions of it."""
    return (np.arange(n) + 0.5) / n


class WorkerAdapter(ModelAdapter):
    """Base of the families whose model runs in a worker process (see the module docstring)."""

    Options: ClassVar[type[BaseModel]] = WorkerOptions
    default_batch_size = 8
    #: the model's name in messages
    display_name: str = "worker"

    def __init__(self, name: str, options: BaseModel | None = None, settings: AdapterSettings | None = None) -> None:
        super().__init__(name, options, settings)
        o: WorkerOptions = self.options  # type: ignore[assignment]
        self.opts = o
        self._worker: WorkerProcess | None = None
        self._failures = 0  # failed answers in a row
        self._policy = RetryPolicy(o.max_restarts, o.restart_delay, f"{self.family}:{self.seed}")
        self.stats: dict[str, Any] = {"answered": 0, "errors": 0, "worker_restarts": 0, "maps": 0}

    # ------------------------------------------------------------------------------------------ family hooks

    @abstractmethod
    def worker_spec(self) -> WorkerSpec:
        """How to start this family's worker and what it loads."""

    def settings_for_worker(self) -> dict[str, Any]:
        """The family's settings sent with every request (generation settings ...)."""
        return {}

    def check_request(self, request: Request) -> str | None:
        """Why this request cannot be sent to the model (it is then recorded as an error), or None."""
        return None

    def map_frame(self, request: Request, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The worker's map in the frame of the whole query image: (map, row centres, column centres).

        By default the map covers the whole image, its cells tiling it evenly.
        """
        return grid, tiling_centres(grid.shape[0]), tiling_centres(grid.shape[1])

    # ------------------------------------------------------------------------------------------ the worker

    def log_path(self) -> Path | None:
        folder = self.settings.artifacts_dir
        if folder is None:
            return None
        rank, world = launch.rank_and_world()
        return folder / LOGS / (f"{self.family}.rank{rank}.log" if world > 1 else f"{self.family}.log")

    def require_python(self) -> str:
        if not self.opts.python:
            raise AdapterError(f"{self.display_name} runs in its own Python environment: give its interpreter with "
                               f"-M python=PATH_TO_ENV/bin/python (mmeval models show {self.family})")
        return self.opts.python

    def _start(self) -> WorkerProcess:
        spec = self.worker_spec()
        local = os.environ.get("LOCAL_RANK")
        if launch.rank_and_world()[1] > 1 and local is not None and "CUDA_VISIBLE_DEVICES" not in os.environ:
            spec = replace(spec, env={"CUDA_VISIBLE_DEVICES": local, **spec.env})  # one GPU per process
        worker = WorkerProcess(spec)
        worker.start()
        self._worker = worker
        return worker

    def _incoming_dir(self) -> Path | None:
        if not self.opts.save_maps or self.settings.artifacts_dir is None:
            return None
        folder = self.settings.artifacts_dir / MAPS / ".incoming"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def worker_request(self, request: Request) -> dict[str, Any]:
        parts = [asdict(p) for p in request.message.parts]
        return {"id": request.id, "task": request.task, "image": request.image, "options": dict(request.options),
                "parts": parts, "prefix_len": request.message.prefix_len, "answer_mode": self.answer_mode,
                "seed": request_seed(self.seed, request.id), "settings": self.settings_for_worker()}

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        for request in batch:
            response = self._answer(request)
            self.stats["errors" if response.error else "answered"] += 1
            yield response

    def _answer(self, request: Request) -> Response:
        problem = self.check_request(request)
        if problem:
            return Response(id=request.id, error=f"{self.display_name}: {problem}", retryable=False)
        if self._worker is not None and not self._worker.alive:  # it ended between two questions
            self._worker.stop()
            self._worker = None
            self.stats["worker_restarts"] += 1
        worker = self._worker if self._worker is not None else self._start()
        incoming = self._incoming_dir()
        map_out = str(incoming / f"{request_seed(0, request.id)}.npy") if incoming else None
        message = {"op": "predict", "id": request.id, "request": self.worker_request(request), "map_out": map_out}
        try:
            reply = worker.request(message, self.opts.request_timeout)
        except WorkerFailure as exc:
            return self._failed(request, worker, exc)
        self._failures = 0
        if reply.get("error"):
            return Response(id=request.id, error=f"{self.display_name}: {reply['error']}",
                            retryable=bool(reply.get("retryable", True)))
        return Response(id=request.id, text=str(reply.get("text") or ""), scores=_log_probs(reply.get("scores")),
                        artifacts=self._artifacts(request, reply))

    def _failed(self, request: Request, worker: WorkerProcess, exc: WorkerFailure) -> Response:
        worker.kill()
        worker.stop()
        self._worker = None
        self._failures += 1
        if self._failures > self.opts.max_restarts:
            raise AdapterError(
                f"{self.display_name}: the worker failed {self._failures} times in a row, the last time on "
                f"{request.id}: {exc}\nThe run stops here; the answers so far are kept and reported, and a rerun "
                "retries the rest (-M max_restarts=N allows more restarts in a row).")
        self.stats["worker_restarts"] += 1
        time.sleep(self._policy.delay(self._failures))
        return Response(id=request.id, error=f"{self.display_name} worker {exc.kind}: {exc}", retryable=True)

    # ------------------------------------------------------------------------------------------ maps

    def _artifacts(self, request: Request, reply: dict[str, Any]) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        score = reply.get("image_score")
        if isinstance(score, (int, float)):
            out["image_score"] = round(float(score), 6)
        map_path = reply.get("map_path")
        if map_path:
            path = Path(map_path)
            try:
                grid = np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
                saved = self._save_map(request, grid, out.get("image_score"))
            except (OSError, ValueError) as exc:  # the answer stands without its map
                saved = None
                out["map_error"] = f"{type(exc).__name__}: {exc}"
            finally:
                path.unlink(missing_ok=True)
            if saved is not None:
                out["map"] = saved
        return out or None

    def _save_map(self, request: Request, grid: np.ndarray, score: float | None) -> str | None:
        grid = np.squeeze(grid)
        if grid.ndim != 2 or self.settings.artifacts_dir is None:
            return None
        full, rows, cols = self.map_frame(request, grid)
        if score is None:
            finite = full[np.isfinite(full)]
            score = float(finite.max()) if finite.size else float("nan")
        rel = PurePosixPath(request.image)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            rel = PurePosixPath(hashlib.sha256(request.image.encode()).hexdigest()[:24])
        target = self.settings.artifacts_dir / MAPS / Path(*rel.parts).with_suffix(".npz")
        with atomic_write(target) as fh:
            np.savez_compressed(fh, map=full.astype(np.float32), score=np.float64(score),
                                rows=rows.astype(np.float64), cols=cols.astype(np.float64))
        self.stats["maps"] += 1
        return (PurePosixPath(self.settings.artifacts_dir.name) / MAPS / PurePosixPath(*rel.parts)
                ).with_suffix(".npz").as_posix()

    # ------------------------------------------------------------------------------------------ the rest

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        incoming = self.settings.artifacts_dir / MAPS / ".incoming" if self.settings.artifacts_dir else None
        if incoming is not None and incoming.is_dir():
            for leftover in incoming.glob("*.npy*"):
                leftover.unlink(missing_ok=True)
            try:
                incoming.rmdir()
            except OSError:
                pass

    def run_info(self) -> dict[str, object]:
        worker = self._worker
        info: dict[str, object] = {**self.stats}
        if worker is not None:
            info["worker_python"] = worker.hello.get("python")
            info.update({f"worker_{k}": v for k, v in worker.info.items()})
            if worker.ignored_lines:
                info["worker_ignored_lines"] = worker.ignored_lines
        log = self.log_path()
        if log is not None:
            info["worker_log"] = str(log)
        return info


def images_of(request: Request, role: str) -> list[str]:
    return [p.path for p in request.message.parts if isinstance(p, ImagePart) and p.role == role]


# ---------------------------------------------------------------------------------------------- worker:


class GenericWorkerOptions(WorkerOptions):
    """Options of the ``worker`` family; any other KEY=VALUE goes to the backend, as it is."""

    model_config = ConfigDict(extra="allow")

    cwd: str | None = Field(None, json_schema_extra=OPERATIONAL,
                            description="the worker's working directory (default: the current one)")
    sys_path: str | None = Field(None, json_schema_extra=OPERATIONAL,
                                 description="folders put first on the worker's sys.path, separated by ':' "
                                             "(e.g. the model's source checkout)")


class GenericWorkerAdapter(WorkerAdapter):
    """``worker:BACKEND``: a backend the user wrote (a ``.py`` file, or a module the worker's Python imports)."""

    family: ClassVar[str] = "worker"
    Options: ClassVar[type[BaseModel]] = GenericWorkerOptions
    answer_modes = ("generate", "likelihood")
    display_name = "worker"

    def __init__(self, name: str, options: BaseModel | None = None, settings: AdapterSettings | None = None) -> None:
        super().__init__(name, options, settings)
        self.display_name = f"worker:{name}"
        self.require_python()
        path = Path(name).expanduser()
        if name.endswith(".py"):
            if not path.is_file():
                raise AdapterError(f"--model worker:{name}: no such backend file (give a .py file defining a "
                                   "Backend class, or a module name the worker's Python can import)")
            self.backend = str(path.resolve())
        else:
            self.backend = name

    @classmethod
    def option_docs(cls) -> list[OptionDoc]:
        docs = super().option_docs()
        return [*docs, OptionDoc("KEY=VALUE", "any", None, "any other option goes to the backend as it is (its "
                                 "Backend(options, context) receives them)", False)]

    def worker_spec(self) -> WorkerSpec:
        o: GenericWorkerOptions = self.options  # type: ignore[assignment]
        folders = tuple(str(Path(p).expanduser().resolve()) for p in (o.sys_path or "").split(":") if p)
        return WorkerSpec(python=self.require_python(), backend=self.backend, options=dict(o.model_extra or {}),
                          sys_path=folders, cwd=o.cwd, name=self.display_name, log_path=self.log_path(),
                          load_timeout=o.load_timeout)
