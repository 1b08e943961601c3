"""mmeval's side of the worker protocol: start the worker, load the model, send requests, watch over it.

The worker (:mod:`mmeval.model_adapters.worker.standalone`) runs in the model's own environment; this
module speaks to it over its stdin and stdout (JSON lines, the messages are listed in the worker's
docstring). A reader thread turns the worker's output into messages; a line that is not a protocol
message is written to the worker log and otherwise ignored. The worker's stderr (everything the model
prints) is appended to the worker log as it comes.

Watchdog: every wait has a deadline. A worker that does not answer in time is killed (with everything it
started) and the request fails with :class:`WorkerFailure`; so does a request whose worker exits.
The adapter decides what follows (restart and go on, or stop the run).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mmeval.errors import InputError
from mmeval.jsonsafe import parse_json
from mmeval.model_adapters.base import AdapterError

#: the worker script, shipped beside this module
WORKER_SCRIPT = Path(__file__).with_name("standalone.py")
PROTOCOL = 1
#: the oldest Python the worker supports
MIN_PYTHON = (3, 8)
#: seconds a worker has to say hello after it starts (before the model loads)
HELLO_TIMEOUT = 60.0
#: seconds a worker has to exit after "shutdown" before it is killed
SHUTDOWN_GRACE = 10.0
#: the longest a line of the worker's output is quoted in a message (the log holds it whole)
GIST_CHARS = 80
#: what the worker writes before its own log lines (see standalone.log)
_OWN_PREFIX = "[mmeval worker] "
_EOF = object()


class WorkerFailure(Exception):
    """The worker crashed, hung or broke the protocol while answering; ``kind`` says which."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class WorkerSpec:
    """How to start a worker and what it loads."""

    #: the interpreter of the model's environment
    python: str
    #: the backend: a ``.py`` file or a module the worker's Python can import
    backend: str
    #: the backend's options (JSON values)
    options: dict[str, Any] = field(default_factory=dict)
    #: folders put first on the worker's ``sys.path`` before the backend loads
    sys_path: tuple[str, ...] = ()
    #: the worker's working directory (None: mmeval's)
    cwd: str | None = None
    #: environment variables set for the worker, on top of mmeval's own
    env: dict[str, str] = field(default_factory=dict)
    #: the model's name in messages ("AnomalyGPT")
    name: str = "worker"
    #: where the worker's stderr goes (None: nowhere but the last lines kept for messages)
    log_path: Path | None = None
    load_timeout: float = 3600.0
    #: appended to a failed start's message: how to set the environment up
    setup_hint: str = ""


def _python_problem(python: str) -> str | None:
    path = Path(python).expanduser()
    if os.sep not in python and not path.exists():
        return None  # a bare command name: the OS looks it up on PATH
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "a directory, not an interpreter (give .../bin/python)"
    if not os.access(path, os.X_OK):
        return "not executable"
    return None


class WorkerProcess:
    """One running worker: started with :meth:`start`, asked with :meth:`request`, ended with :meth:`stop`."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None
        self.hello: dict[str, Any] = {}
        self.info: dict[str, Any] = {}
        self.ignored_lines = 0
        self._messages: queue.Queue[object] = queue.Queue()
        self._tail: deque[str] = deque(maxlen=30)
        self._lines = 0  # lines of output so far
        self._asked_at = 0  # ... when the last request was sent
        self._threads: list[threading.Thread] = []
        self._log: IO[str] | None = None
        self._log_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ log

    def _open_log(self) -> None:
        path = self.spec.log_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115 - closed in stop()
        self.log(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.spec.name} worker: {self.spec.python} "
                 f"{WORKER_SCRIPT} (backend {self.spec.backend}, cwd {self.spec.cwd or os.getcwd()})")

    def log(self, line: str) -> None:
        with self._log_lock:
            if self._log is not None and not self._log.closed:
                self._log.write(line.rstrip("\n") + "\n")
                self._log.flush()

    def where_log(self) -> str:
        return f"the worker log {self.spec.log_path}" if self.spec.log_path else "the worker's stderr"

    def tail(self, lines: int = 12) -> str:
        kept = list(self._tail)[-lines:]
        return ("; its last output:\n    " + "\n    ".join(kept)) if kept else ""

    def last_doing(self, answering: bool) -> str:
        """What the worker was doing when it stopped answering, in a few words: the gist of its last line of output
        (a model's loading line may list every checkpoint path; the log keeps it whole), and whether it wrote
        anything at all after the question was sent."""
        last = _gist(self._tail[-1]) if self._tail else None
        if answering and self._lines == self._asked_at:
            before = f" (its last line before it: '{last}')" if last else ""
            return f"; it wrote nothing after the question was sent{before}"
        return f"; its last output: '{last}'" if last else "; it wrote nothing"

    # ------------------------------------------------------------------------------------------ threads

    def _read_stdout(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            try:
                message = parse_json(line, "the worker's line")
            except InputError:
                message = None
            if isinstance(message, dict) and isinstance(message.get("type"), str):
                self._messages.put(message)
            else:
                self.ignored_lines += 1
                self.log(f"[mmeval] ignored a line on the protocol pipe that is not a worker message: {line[:300]}")
        self._messages.put(_EOF)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            if line.strip():
                self._tail.append(line)
                self._lines += 1
            self.log(line)

    # ------------------------------------------------------------------------------------------ lifecycle

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> dict[str, Any]:
        """Start the worker and load the model; what the backend reports about itself.

        Every way this can fail is an :class:`AdapterError` saying what is missing.
        """
        spec = self.spec
        problem = _python_problem(spec.python)
        if problem:
            raise AdapterError(f"{spec.name}: -M python={spec.python}: {problem}. Give the Python interpreter of the "
                               f"environment {spec.name} is installed in.{spec.setup_hint}")
        self._open_log()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", **spec.env}
        try:
            self.proc = subprocess.Popen(
                [os.path.expanduser(spec.python), "-u", str(WORKER_SCRIPT)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=spec.cwd, env=env,
                start_new_session=True)  # its own process group: the watchdog ends everything it started
        except OSError as exc:
            self.stop()
            raise AdapterError(f"{spec.name}: cannot start -M python={spec.python}: {exc.strerror or exc}. Give the "
                               f"Python interpreter of the environment {spec.name} is installed in."
                               f"{spec.setup_hint}") from None
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for target, stream in ((self._read_stdout, self.proc.stdout), (self._read_stderr, self.proc.stderr)):
            thread = threading.Thread(target=target, args=(stream,), daemon=True, name=f"{spec.name}-worker-io")
            thread.start()
            self._threads.append(thread)
        try:
            self._handshake()
            self._load()
        except (AdapterError, WorkerFailure) as exc:
            self.stop()
            if isinstance(exc, AdapterError):
                raise
            raise AdapterError(f"{spec.name}: {exc}") from None
        return self.info

    def _handshake(self) -> None:
        spec = self.spec
        hello = self._wait(lambda m: m.get("type") == "hello", HELLO_TIMEOUT, "start")
        version = tuple(int(x) for x in str(hello.get("python", "0.0")).split(".")[:2] if x.isdigit())
        if hello.get("protocol") != PROTOCOL:
            raise AdapterError(f"{spec.name}: the worker speaks protocol {hello.get('protocol')}, this mmeval speaks "
                               f"{PROTOCOL}: the worker script and mmeval come from different versions")
        if version < MIN_PYTHON:
            raise AdapterError(f"{spec.name}: -M python={spec.python} is Python {hello.get('python')}; the worker "
                               f"needs {'.'.join(map(str, MIN_PYTHON))} or later")
        self.hello = hello

    def _load(self) -> None:
        spec = self.spec
        self._send({"op": "load", "backend": spec.backend, "options": spec.options, "sys_path": list(spec.sys_path),
                    "cwd": spec.cwd})
        reply = self._wait(lambda m: m.get("type") in ("ready", "error"), spec.load_timeout, "load")
        if reply["type"] == "error":
            raise AdapterError(f"{spec.name} could not be loaded: {reply.get('message')}\n(details in "
                               f"{self.where_log()}){spec.setup_hint}")
        self.info = dict(reply.get("info") or {})
        self.log(f"[mmeval] loaded in {reply.get('seconds')} s: {json.dumps(self.info, default=str)}")

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one ``predict`` message and wait for its result; :class:`WorkerFailure` if none comes."""
        self._asked_at = self._lines
        self._send(message)
        rid = message.get("id")
        return self._wait(lambda m: m.get("type") == "result" and m.get("id") == rid, timeout, "answer")

    def _send(self, message: dict[str, Any]) -> None:
        if self.proc is None or self.proc.stdin is None:
            raise WorkerFailure("crashed", "the worker is not running")
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise WorkerFailure("crashed", self._exit_text()) from None

    def _wait(self, wanted: Any, timeout: float, doing: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                message = self._messages.get(timeout=max(left, 0.0)) if left > 0 else self._messages.get_nowait()
            except queue.Empty:
                self.kill()
                raise WorkerFailure("hung", f"the worker gave no {doing} within {timeout:g} s and was stopped "
                                            f"(see {self.where_log()}){self.last_doing(doing == 'answer')}") from None
            if message is _EOF:
                raise WorkerFailure("crashed", self._exit_text())
            assert isinstance(message, dict)
            if wanted(message):
                return message
            self.log(f"[mmeval] unexpected worker message while waiting for its {doing}: "
                     f"{json.dumps(message, default=str)[:300]}")

    def _exit_text(self) -> str:
        code = None
        if self.proc is not None:
            try:
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        for thread in self._threads[1:]:  # let the stderr reader catch the last lines
            thread.join(timeout=2)
        how = f"exited with code {code}" if code is not None and code >= 0 else (
            f"was killed by signal {-code}" if code is not None else "stopped answering")
        return f"the worker {how} (see {self.where_log()}){self.tail()}"

    def kill(self) -> None:
        """End the worker and every process it started, at once."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            if sys.platform != "win32":
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError):
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def stop(self) -> None:
        """Ask the worker to shut down; kill it if it does not within :data:`SHUTDOWN_GRACE` seconds."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                self._send({"op": "shutdown"})
                proc.wait(timeout=SHUTDOWN_GRACE)
            except (WorkerFailure, subprocess.TimeoutExpired):
                self.kill()
        if proc is not None and proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        for thread in self._threads:  # the pipes reach their end once the worker is gone
            thread.join(timeout=2)
        self._threads = []
        if proc is not None:
            for stream in (proc.stdout, proc.stderr):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
        with self._log_lock:
            if self._log is not None:
                self._log.close()
                self._log = None


def _gist(line: str) -> str:
    """A line of output cut to what it says: ``loading AnomalyGPT: {...every path...}`` becomes
    ``loading AnomalyGPT: ...``; a long line without such a head is cut at :data:`GIST_CHARS` characters."""
    text = " ".join(line.removeprefix(_OWN_PREFIX).split())
    if len(text) <= GIST_CHARS:
        return text
    head = text.split(": ", 1)[0]
    if 3 <= len(head) <= GIST_CHARS and head != text:
        return head + ": ..."
    return text[:GIST_CHARS].rstrip() + " ..."
