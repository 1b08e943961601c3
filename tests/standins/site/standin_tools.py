"""Helpers of the stand-in models (tests only): a call log, deterministic numbers, maps with one peak.

``STANDIN_LOG=FILE`` makes the stand-ins append one JSON line per call they receive, so tests can check
exactly what a backend passed. ``STANDIN_PEAK=ROW,COL`` (fractions of the map) puts every map's peak there.
"""

import hashlib
import json
import math
import os


def record(event, **data):
    path = os.environ.get("STANDIN_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"event": event, **data}, default=repr) + "\n")


def unit(*keys):
    """A number in [0, 1) fixed by the keys."""
    digest = hashlib.sha256("\0".join(str(k) for k in keys).encode()).hexdigest()
    return int(digest[:12], 16) / float(16 ** 12)


def peak_map(height, width, *keys, spread=0.12):
    """A flat list of height*width values in [0, 1]: a smooth bump whose centre is fixed by the keys."""
    if os.environ.get("STANDIN_PEAK"):
        row, col = (float(v) for v in os.environ["STANDIN_PEAK"].split(","))
    else:
        row, col = 0.15 + 0.7 * unit("row", *keys), 0.15 + 0.7 * unit("col", *keys)
    height_of_peak = 0.3 + 0.7 * unit("height", *keys)
    out = []
    for i in range(height):
        dy = (i + 0.5) / height - row
        for j in range(width):
            dx = (j + 0.5) / width - col
            out.append(height_of_peak * math.exp(-(dx * dx + dy * dy) / (2 * spread * spread)))
    return out
