"""The names of the files in a run directory: one owner, since the runner writes them and the report reads them."""

PREDICTIONS = "predictions.jsonl"
RUN_FILE = "run.json"
STATUS = "status.json"  # how complete the run's answers are (config.RunStatus), rewritten by every session
SKIPPED = "skipped.json"
TIMINGS = "timings.jsonl"
USAGE = "usage.jsonl"  # one line per process and session: adapter.run_info() (tokens, cost ...)
CHANGES = "changes.jsonl"  # one line per session in which the data changed under the run
LOCK = ".lock"
MANIFEST = ".mmeval-manifest"
ARTIFACTS = "artifacts"  # a folder: files adapters keep for the run (anomaly maps ...)
#: the variant tag of defect-fabrication probes (a prediction's ``variant``)
PROBE = "probe"
#: the model of a person's run (``mmeval human serve``) is HUMAN_MODEL + their name; their majority vote's is
#: HUMAN_PANEL_MODEL (the human room writes them, the report finds them by these names)
HUMAN_MODEL = "human:"
HUMAN_PANEL_MODEL = HUMAN_MODEL + "panel"
