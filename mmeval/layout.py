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
