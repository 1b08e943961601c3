"""A fake worker for the client's protocol tests (tests only): speaks the protocol with noise around it.

Run instead of the real worker (a fake interpreter ignores the script it is given). ``FAKE_WORKER`` says
how to misbehave: ``garbage`` (non-protocol lines before, between and after messages), ``old`` (says it
runs Python 3.7), ``protocol`` (says it speaks protocol 99), ``silent`` (never says hello), ``scores`` (option
scores with an impossible letter, ``-Infinity``, for a question ending in ``#0`` and a null one for the others).
"""

import json
import os
import sys
import time

mode = os.environ.get("FAKE_WORKER", "garbage")
out = sys.stdout


def send(text):
    out.write(text + "\n")
    out.flush()


if mode == "silent":
    time.sleep(3600)
send("Loading the model... 10%")
send("[1, 2, 3]")
send('{"not": "a worker message"}')
version = "3.7.9" if mode == "old" else "3.8.18"
send(json.dumps({"type": "hello", "protocol": 99 if mode == "protocol" else 1, "python": version, "pid": os.getpid()}))
for line in sys.stdin:
    message = json.loads(line)
    if message["op"] == "load":
        send("garbage between messages")
        send(json.dumps({"type": "ready", "info": {"fake": True}, "seconds": 0}))
    elif message["op"] == "predict":
        send("\x00\x01 binary noise")
        send(json.dumps({"type": "result", "id": "some other request", "text": "stale"}))
        scores = None
        if mode == "scores":
            scores = {"A": float("-inf") if message["id"].endswith("#0") else None, "B": -1.0}
        text = "A" if mode == "scores" else "B"
        send(json.dumps({"type": "result", "id": message["id"], "text": text, "scores": scores, "map_path": None,
                         "image_score": None, "meta": {}, "seconds": 0}))
    elif message["op"] == "shutdown":
        send(json.dumps({"type": "bye"}))
        break
