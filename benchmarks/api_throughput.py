"""API throughput: the MMAD reference style (one request at a time) vs the openai adapter at concurrency 32.

All answer the same questions (the bundled synthetic benchmark, 1 shot: a template and the query image
per request) against a local fake OpenAI server (tests/fake_openai_server.py, run as a separate process)
that waits ``--latency`` seconds (default 50 ms) before each answer.

* reference: a plain loop with the synchronous ``openai`` client, as the MMAD evaluation scripts do:
  encode the images, send, wait, parse, next question.
* adapter:   ``OpenAIAdapter.predict`` at ``--concurrency 32`` (cache off), fed the same batches the
  runner would hand it, every response consumed as it arrives.
* runner:    ``mmeval.run.runner.run`` with ``--model openai:... --concurrency 32`` (cache off), end to end:
  loading, rendering, requests, answer extraction, predictions.jsonl written (and fsync'ed) line by line.
* runner, no per-line fsync: the same with ``os.fsync`` made a no-op, to show what the engine's
  per-line fsync costs on this disk (a diagnostic, not a mode mmeval offers).

Each adapter/runner measurement is repeated ``--repeat`` times (fresh run directory each); the median
counts (the machine may be shared). Prints questions/s and ratios (target >= 20x), checks that no
answer is lost or duplicated and that every mode got the reference's answers, and writes
benchmarks/results/api_throughput.json.

    .venv/bin/python benchmarks/api_throughput.py [--questions 320] [--latency 0.05] [--concurrency 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KEY_ENV = "MMEVAL_BENCH_KEY"
TARGET = 20.0


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai_server.py"), "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"fake server did not start (got {line!r})")
    return proc, f"http://127.0.0.1:{int(line)}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def server_stats(base: str) -> dict:
    with urllib.request.urlopen(base + "/stats", timeout=10) as resp:
        return json.loads(resp.read())


def reference_loop(prepared: list, base_url: str, model: str, max_side: int) -> dict[str, str]:
    """MMAD style: for each question, encode the images, one blocking request, parse, next."""
    import openai

    from mmeval.model_adapters.openai_api import encode_image
    from mmeval.prompting.messages import ImagePart

    client = openai.OpenAI(api_key=os.environ[KEY_ENV], base_url=base_url, max_retries=2)
    answers: dict[str, str] = {}
    for p in prepared:
        content = []
        for part in p.request.message.parts:
            if isinstance(part, ImagePart):
                content.append({"type": "image_url", "image_url": {"url": encode_image(part.path, max_side),
                                                                   "detail": "auto"}})
            else:
                content.append({"type": "text", "text": part.text})
        completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}],
                                                    max_tokens=64, temperature=0, seed=0)
        answers[p.request.id] = completion.choices[0].message.content or ""
    client.close()
    return answers


class Measure:
    """Wall time, client and server CPU of repeated runs of one mode, plus answer checks."""

    def __init__(self, name: str, n: int, server_pid: int, root: str) -> None:
        self.name, self.n, self.pid, self.root = name, n, server_pid, root
        self.seconds: list[float] = []
        self.cpu = self.server_cpu = 0.0
        self.requests = 0
        self.checks = {"answers": 0, "lost": 0, "duplicates": 0, "errors": 0, "differing_from_reference": 0}

    def time(self, fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        before = server_stats(self.root)["requests"]
        c0, s0, t0 = time.process_time(), cpu_seconds(self.pid), time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds.append(time.perf_counter() - t0)
        self.cpu += time.process_time() - c0
        self.server_cpu += cpu_seconds(self.pid) - s0
        self.requests += server_stats(self.root)["requests"] - before
        print(f"  {self.name:<28} run {len(self.seconds)}: {self.seconds[-1]:6.2f} s "
              f"{self.n / self.seconds[-1]:7.1f} q/s", file=sys.stderr)
        return result

    def check(self, answers: list[tuple[str, str, str | None]], expected_ids: set[str], ref: dict[str, str]) -> None:
        ids = [a[0] for a in answers]
        self.checks["answers"] += len(ids)
        self.checks["lost"] += len(expected_ids - set(ids))
        self.checks["duplicates"] += len(ids) - len(set(ids))
        self.checks["errors"] += sum(1 for a in answers if a[2])
        self.checks["differing_from_reference"] += sum(1 for a in answers if a[1] != ref.get(a[0]))

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def report(self, ref_qps: float) -> dict:
        runs = len(self.seconds)
        return {"runs": runs, "seconds_each": [round(s, 3) for s in self.seconds],
                "median_seconds": round(self.median, 3), "questions_per_s": round(self.n / self.median, 1),
                "best_questions_per_s": round(self.n / min(self.seconds), 1),
                "speedup_vs_reference": round(self.n / self.median / ref_qps, 2),
                "requests": self.requests, "client_cpu_ms_per_question": round(self.cpu / self.n / runs * 1000, 2),
                "server_cpu_ms_per_question": round(self.server_cpu / self.n / runs * 1000, 2), "checks": self.checks}


def read_run(out: Path) -> list[tuple[str, str, str | None]]:
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line]
    return [(p["id"], p["response"], p["error"]) for p in preds]


def main() -> int:
    ap = argparse.ArgumentParser(description="openai adapter throughput vs a sequential MMAD-style loop")
    ap.add_argument("--questions", type=int, default=320)
    ap.add_argument("--latency", type=float, default=0.05, help="server latency per request, seconds")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3, help="runs per adapter mode; the median counts")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "api_throughput.json"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mmeval-bench-"))
    os.environ.setdefault("MMEVAL_HOME", str(tmp / "home"))
    os.environ[KEY_ENV] = "sk-bench-not-a-real-key"
    from mmeval.config import RunConfig
    from mmeval.model_adapters.openai_api import OpenAIAdapter, OpenAIOptions
    from mmeval.run.prepare import prepare
    from mmeval.run.runner import adapter_settings, load, run

    model = "bench-vlm"
    server, root = start_server(args.latency)
    base_url = root + "/v1"
    try:
        options = {"base_url": base_url, "api_key_env": KEY_ENV, "no_cache": True}
        config = RunConfig(model=f"openai:{model}", model_args={"base_url": base_url},
                           runtime_args={k: v for k, v in options.items() if k != "base_url"}, data="synthetic",
                           shots=1, limit=args.questions, concurrency=args.concurrency)
        prepared = prepare(load(config).questions[: args.questions], config)
        n = len(prepared)
        expected = {p.request.id for p in prepared}
        print(f"{n} questions, {len(prepared[0].request.message.images)} images each, server latency "
              f"{args.latency * 1000:.0f} ms, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
              file=sys.stderr)

        reference = Measure("reference (sequential)", n, server.pid, root)
        ref_answers = reference.time(reference_loop, prepared, base_url, model, 512)
        reference.check([(k, v, None) for k, v in ref_answers.items()], expected, ref_answers)
        ref_qps = n / reference.median

        def adapter_only() -> list[tuple[str, str, str | None]]:
            adapter = OpenAIAdapter(model, OpenAIOptions(**options), adapter_settings(config))
            got = []
            try:
                requests = [p.request for p in prepared]
                for i in range(0, n, adapter.batch_size):
                    got.extend((r.id, r.text, r.error) for r in adapter.predict(requests[i: i + adapter.batch_size]))
            finally:
                adapter.close()
            return got

        adapter = Measure(f"adapter (concurrency {args.concurrency})", n, server.pid, root)
        runner = Measure("runner, end to end", n, server.pid, root)
        nosync = Measure("runner, no per-line fsync", n, server.pid, root)
        real_fsync = os.fsync
        for rep in range(max(1, args.repeat)):
            adapter.check(adapter.time(adapter_only), expected, ref_answers)
            out = tmp / f"run{rep}"
            runner.time(run, config, out, progress=False)
            runner.check(read_run(out), expected, ref_answers)
            out = tmp / f"nosync{rep}"
            os.fsync = lambda fd: None  # diagnostic only: what the per-line fsync costs
            try:
                nosync.time(run, config, out, progress=False)
            finally:
                os.fsync = real_fsync
            nosync.check(read_run(out), expected, ref_answers)
        max_in_flight = server_stats(root)["max_in_flight"]
    finally:
        server.terminate()
        server.wait(timeout=10)

    modes = {"adapter": adapter, "runner": runner, "runner_without_per_line_fsync": nosync}
    report = {
        "questions": n,
        "server_latency_s": args.latency,
        "concurrency": args.concurrency,
        "reference": {"what": "sequential loop, openai.OpenAI client, one request per question",
                      **reference.report(ref_qps)},
        "adapter": {"what": "OpenAIAdapter.predict over the runner's batches, cache off", **adapter.report(ref_qps)},
        "runner": {"what": "mmeval.run.runner.run end to end (predictions.jsonl fsync'ed per line), cache off",
                   **runner.report(ref_qps)},
        "runner_without_per_line_fsync": {"what": "as runner, os.fsync patched to a no-op (diagnostic)",
                                          **nosync.report(ref_qps)},
        "server_max_in_flight": max_in_flight,
        "target_speedup": TARGET,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print(f"reference (sequential): {ref_qps:7.1f} q/s")
    bad = 0
    for key, m in modes.items():
        qps = n / m.median
        c = m.checks
        bad += c["lost"] + c["duplicates"] + c["errors"] + c["differing_from_reference"]
        best = n / min(m.seconds) / ref_qps
        print(f"{key:<30} {qps:7.1f} q/s  speedup {qps / ref_qps:5.1f}x (best run {best:5.1f}x)  "
              f"lost {c['lost']}, duplicates {c['duplicates']}, errors {c['errors']}, "
              f"differing {c['differing_from_reference']}")
    print(f"server max in flight: {max_in_flight}")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
