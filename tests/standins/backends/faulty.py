"""A backend for the worker's fault tests (tests only): answers from the request, and misbehaves on demand.

Options (``-M KEY=VALUE`` of the ``worker`` family): ``fault`` = crash | hang | refuse | raise | garbage,
applied to the requests whose id contains ``on``; ``fail_setup`` (a SetupError with that message),
``import_missing`` (an ImportError while loading), ``crash_on_load``; ``maps`` (return an 8x8 map);
``loading_line`` (the last line it writes while loading, as a model's own loading line listing its checkpoints)
and ``quiet`` (nothing written while answering).
Like a real model it logs to stdout, with print, the logging module and a raw write to file descriptor 1.
"""

import logging
import os
import sys
import time

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s %(message)s")
LOG = logging.getLogger("faulty-model")


class SetupError(Exception):
    pass


class RequestError(Exception):
    pass


class Backend:
    def __init__(self, options, context):
        if options.get("fail_setup"):
            raise SetupError(options["fail_setup"])
        if options.get("import_missing"):
            import a_package_nobody_installed  # noqa: F401
        if options.get("crash_on_load"):
            os._exit(5)
        LOG.info("model loaded")
        print("print from the model while loading")
        os.write(1, b"raw write to fd 1 while loading\n")
        if options.get("loading_line"):
            context.log(options["loading_line"])
        self.options = options
        self.answered = 0

    def info(self):
        try:
            import numpy  # noqa: F401

            has_numpy = True
        except ImportError:
            has_numpy = False
        return {"python": sys.version.split()[0], "numpy": has_numpy, "cwd": os.getcwd(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def predict(self, request):
        fault, target = self.options.get("fault"), self.options.get("on")
        if target and target in request["id"]:
            if fault == "crash":
                os._exit(3)
            if fault == "hang":
                time.sleep(3600)
            if fault == "refuse":
                raise RequestError("this request cannot be answered")
            if fault == "raise":
                raise ValueError("a passing failure")
        if not self.options.get("quiet"):
            LOG.info("answering %s", request["id"])
            print("print while answering")
            os.write(1, b"raw write while answering\n")
        self.answered += 1
        letters = sorted(request["options"])
        out = {"text": letters[len(request["id"]) % len(letters)], "meta": {"seed": request["seed"]}}
        if request["answer_mode"] == "likelihood":
            out["scores"] = {letter: -float(i) for i, letter in enumerate(letters)}
        if self.options.get("maps"):
            out["map"] = [[1.0 if (i, j) == (2, 5) else 0.1 for j in range(8)] for i in range(8)]
            out["image_score"] = 1.0
        return out
