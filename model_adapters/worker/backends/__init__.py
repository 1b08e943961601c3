"""Backends: the code the worker runs inside a model's own environment.

Each is one file that the worker loads by path (never imported by mmeval itself). Like the worker they
import only the standard library at import time and run on Python 3.8+; the model's packages (torch,
its source checkout) are imported when the backend loads the model. The contract:

    class Backend:
        def __init__(self, options: dict, context): ...   # load the model; raise SetupError(what is missing)
        def info(self) -> dict: ...                        # optional: versions, device (for the run's usage)
        def predict(self, request: dict) -> dict: ...      # {"text", "scores", "map", "image_score", "meta"}
        def close(self): ...                               # optional

An exception class named ``SetupError`` raised while loading reaches the user as its message alone; one
named ``RequestError`` raised by ``predict`` refuses that request for good. ``request`` is described in
:mod:`mmeval.model_adapters.worker.adapter`.

- :mod:`.anomalygpt`: AnomalyGPT from its source checkout (``code/model/openllama.py``);
- :mod:`.anomaly_ov`: Anomaly-OV from its source checkout (the ``llava`` package) and a trained checkpoint.
"""

from pathlib import Path

#: the folder holding the backend files, for the adapters that name them
BACKENDS = Path(__file__).parent
