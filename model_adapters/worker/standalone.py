"""The worker: runs a model in its own Python environment and answers mmeval over a pipe.

mmeval starts this file with the model's interpreter (``PYTHON -u standalone.py``); it needs only the
standard library to start and runs on Python 3.8 or later, so it works in the old, pinned environments
some models need. It never imports mmeval. The model itself is driven by a *backend*: a module with a
``Backend`` class (see :mod:`mmeval.model_adapters.worker.backends`), loaded by file path or module name.

Protocol: JSON, one object per line, UTF-8. mmeval writes to the worker's stdin; the worker answers on
the pipe that was its stdout when it started. Before anything else runs, that pipe is set aside and
file descriptors 1 and 0 are pointed at stderr and /dev/null: whatever the model prints, from Python or
from C, lands in stderr (which mmeval keeps in the run's worker log), never in the protocol.

    worker -> mmeval   {"type": "hello", "protocol": 1, "python": "3.8.18", "executable": ..., "pid": ...}
    mmeval -> worker   {"op": "load", "backend": FILE_OR_MODULE, "options": {...}, "sys_path": [...], "cwd": DIR}
    worker -> mmeval   {"type": "ready", "info": {...}, "seconds": 12.3}
                       {"type": "error", "kind": "setup", "message": "what is missing and how to get it"}
    mmeval -> worker   {"op": "predict", "id": ID, "request": {...}, "map_out": PATH.npy or null}
    worker -> mmeval   {"type": "result", "id": ID, "text": ..., "scores": {...} or null,
                        "map_path": PATH.npy or null, "map_shape": [H, W] or null, "image_score": float or null,
                        "meta": {...}, "seconds": 0.8}
                       {"type": "result", "id": ID, "error": "...", "retryable": true}
    mmeval -> worker   {"op": "shutdown"}
    worker -> mmeval   {"type": "bye"}

A backend reports what is missing by raising an exception whose class is named ``SetupError`` while it
loads (its message reaches the user as it is, without a traceback), and refuses one request for good by
raising one named ``RequestError`` (recorded as an error a rerun cannot fix). Any other exception while
answering is recorded as an error a rerun may fix; its traceback goes to the worker log.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from array import array

PROTOCOL = 1


class Channel:
    """The protocol pipe: the original stdout (written) and stdin (read), set aside from the model."""

    def __init__(self) -> None:
        out_fd = os.dup(1)
        in_fd = os.dup(0)
        sys.stdout.flush()
        os.dup2(2, 1)  # anything written to fd 1 from now on (print, C code) goes to stderr
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # and nothing else can read the protocol's input
        os.close(devnull)
        sys.stdout = sys.stderr
        self.out = os.fdopen(out_fd, "w", encoding="utf-8", newline="\n")
        self.inp = os.fdopen(in_fd, "rb")

    def send(self, message: dict) -> None:
        self.out.write(json.dumps(message, allow_nan=True, default=str) + "\n")
        self.out.flush()

    def receive(self) -> dict | None:
        """The next message; None at the end of input. A line that is not a JSON object is reported."""
        while True:
            line = self.inp.readline()
            if not line:
                return None
            line = line.strip()
            if not line:
                continue
            try:
                message = json.loads(line.decode("utf-8"))
            except ValueError:
                log(f"ignored a line that is not JSON: {line[:200]!r}")
                continue
            if isinstance(message, dict):
                return message
            log(f"ignored a message that is not a JSON object: {line[:200]!r}")


def log(text: str) -> None:
    sys.stderr.write("[mmeval worker] " + text + "\n")
    sys.stderr.flush()


class Context:
    """What a backend gets besides its options: a way to write to the worker log."""

    def __init__(self, protocol: int) -> None:
        self.protocol = protocol

    def log(self, text: str) -> None:
        log(text)


# ------------------------------------------------------------------------------------------ arrays


def _flatten(value, out: list) -> None:
    if isinstance(value, (list, tuple)):
        for item in value:
            _flatten(item, out)
    else:
        out.append(float(value))


def as_plain_array(obj):
    """A tensor (``.detach().cpu().float().numpy()``), a numpy array or nested lists -> (shape, obj)."""
    if hasattr(obj, "detach"):
        obj = obj.detach()
    if hasattr(obj, "cpu"):
        obj = obj.cpu()
    if hasattr(obj, "float") and callable(obj.float):
        obj = obj.float()
    if hasattr(obj, "numpy") and callable(obj.numpy):
        obj = obj.numpy()
    if hasattr(obj, "shape"):
        return tuple(int(s) for s in obj.shape), obj
    shape = []
    inner = obj
    while isinstance(inner, (list, tuple)):
        shape.append(len(inner))
        inner = inner[0] if inner else None
    return tuple(shape), obj


def write_npy(path: str, obj) -> list:
    """Write a float32 ``.npy`` file (numpy when the environment has it, else the format by hand); its shape."""
    shape, obj = as_plain_array(obj)
    tmp = path + ".tmp"
    try:
        import numpy
    except ImportError:
        numpy = None  # type: ignore[assignment]
    if numpy is not None and isinstance(obj, numpy.ndarray):
        with open(tmp, "wb") as fh:
            numpy.save(fh, obj.astype("float32"))
        shape = obj.shape
    else:
        flat: list = []
        _flatten(obj.tolist() if hasattr(obj, "tolist") else obj, flat)
        count = 1
        for s in shape:
            count *= s
        if count != len(flat):
            raise ValueError(f"a map of shape {shape} holds {len(flat)} values")
        data = array("f", flat)
        if sys.byteorder == "big":
            data.byteswap()
        dims = ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "")
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }"
        pad = 64 - (10 + len(header) + 1) % 64
        header = header + " " * (pad % 64) + "\n"
        with open(tmp, "wb") as fh:
            fh.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1"))
            fh.write(data.tobytes())
    os.replace(tmp, path)
    return [int(s) for s in shape]


def _finite_or_none(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value else None


# ------------------------------------------------------------------------------------------ backends


def load_backend(spec: str):
    """The module named by ``spec``: a ``.py`` file (loaded under a private name) or an importable module."""
    if spec.endswith(".py"):
        name = "mmeval_worker_backend_" + os.path.splitext(os.path.basename(spec))[0].replace("-", "_")
        module_spec = importlib.util.spec_from_file_location(name, spec)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load a backend from {spec}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def _setup_message(exc: BaseException) -> str:
    if type(exc).__name__ == "SetupError":
        return str(exc)
    if isinstance(exc, ImportError):
        missing = getattr(exc, "name", None) or str(exc)
        return (f"the worker's Python ({sys.executable}, {platform.python_version()}) cannot import {missing!r}: "
                f"{exc}. Install the model's own requirements into that environment, or give the interpreter of "
                "an environment that has them")
    return f"{type(exc).__name__}: {exc} (the traceback is in the worker log)"


def handle_load(channel: Channel, message: dict):
    started = time.time()
    for folder in reversed(message.get("sys_path") or []):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    if message.get("cwd"):
        os.chdir(message["cwd"])
    try:
        module = load_backend(message["backend"])
        factory = getattr(module, "Backend", None)
        if factory is None:
            raise AttributeError(f"backend {message['backend']} defines no Backend class")
        backend = factory(message.get("options") or {}, Context(PROTOCOL))
        info = backend.info() if hasattr(backend, "info") else {}
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a message; the worker stays up
        if type(exc).__name__ != "SetupError":
            traceback.print_exc()
        channel.send({"type": "error", "kind": "setup", "message": _setup_message(exc)})
        return None
    channel.send({"type": "ready", "info": info or {}, "seconds": round(time.time() - started, 3)})
    return backend


def handle_predict(channel: Channel, backend, message: dict) -> None:
    rid = message.get("id")
    started = time.time()
    if backend is None:
        channel.send({"type": "result", "id": rid, "error": "the model is not loaded", "retryable": True})
        return
    try:
        result = backend.predict(message.get("request") or {}) or {}
        reply = {"type": "result", "id": rid, "text": str(result.get("text") or ""), "scores": None,
                 "map_path": None, "map_shape": None, "image_score": _finite_or_none(result.get("image_score")),
                 "meta": result.get("meta") or {}}
        scores = result.get("scores")
        if scores is not None:
            reply["scores"] = {str(k): float(v) for k, v in dict(scores).items()}
        if result.get("map") is not None and message.get("map_out"):
            reply["map_shape"] = write_npy(message["map_out"], result["map"])
            reply["map_path"] = message["map_out"]
    except Exception as exc:  # noqa: BLE001 - one request failed; the worker answers the next one
        permanent = type(exc).__name__ == "RequestError"
        if not permanent:
            traceback.print_exc()
        reply = {"type": "result", "id": rid, "error": f"{type(exc).__name__}: {exc}",
                 "retryable": not permanent}
    reply["seconds"] = round(time.time() - started, 6)
    channel.send(reply)


def main() -> int:
    channel = Channel()
    channel.send({"type": "hello", "protocol": PROTOCOL, "python": platform.python_version(),
                  "executable": sys.executable, "pid": os.getpid()})
    backend = None
    while True:
        message = channel.receive()
        if message is None:  # mmeval went away
            break
        op = message.get("op")
        if op == "load":
            backend = handle_load(channel, message)
        elif op == "predict":
            handle_predict(channel, backend, message)
        elif op == "shutdown":
            break
        else:
            channel.send({"type": "error", "kind": "protocol", "message": f"unknown op {op!r}"})
    if backend is not None and hasattr(backend, "close"):
        try:
            backend.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            traceback.print_exc()
    try:
        channel.send({"type": "bye"})
    except OSError:  # mmeval closed the pipe first
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
