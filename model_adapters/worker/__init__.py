"""Models that run in their own Python environment, driven through a worker process.

- :mod:`.standalone`: the worker script (standard library only, Python 3.8+, never imports mmeval); it
  runs in the model's environment and loads a backend;
- :mod:`.client`: mmeval's side of the protocol (start, handshake, requests, watchdog, the worker log);
- :mod:`.adapter`: :class:`WorkerAdapter`, the base of such families, and the ``worker`` family;
- :mod:`.backends`: the backends mmeval ships (files the worker loads in the model's environment).
"""

from mmeval.model_adapters.worker.adapter import GenericWorkerAdapter, WorkerAdapter, WorkerOptions, request_seed
from mmeval.model_adapters.worker.client import WorkerFailure, WorkerProcess, WorkerSpec

__all__ = ["GenericWorkerAdapter", "WorkerAdapter", "WorkerFailure", "WorkerOptions", "WorkerProcess", "WorkerSpec",
           "request_seed"]
