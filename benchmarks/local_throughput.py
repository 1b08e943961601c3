"""Local-model throughput: the MMAD reference style vs the hf adapter's likelihood, batching and prefix reuse.

One run builds a tiny random LLaVA-1.5 made larger (7.2 M parameters: 6-layer Llama of width 320, 4-layer CLIP
of width 128 on 96x96 images, 144 image tokens per image; tests/tiny_models.py) and answers the same questions
of the bundled synthetic benchmark (``--shots`` templates + the query image per question) with:

* (a)  MMAD style: one ``generate`` call per question, images re-encoded every time
       (``--answer-mode generate --batch-size 1 -M prefix_reuse=false -M max_new_tokens=16``);
* (a2) the same, stopping after 2 new tokens: what (a) costs when the model answers "A" and stops
       (a random model never emits EOS, so (a) always decodes 16 tokens);
* (b)  likelihood mode, one forward pass per question (``--answer-mode likelihood --batch-size 1
       -M prefix_reuse=false``);
* (c)  likelihood + batching + prefix reuse (``--batch-size 8 -M batch_invariant=false``: the questions'
       suffixes run as one right-padded batch against the shared prefix's cache);
* (c2) likelihood + prefix reuse with the default ``--batch-invariant`` (each question's suffix in its own
       call against the shared prefix's cache, so its scores never depend on its batch mates).

Every configuration runs through ``mmeval.run.runner.run`` (the real engine: loading, rendering, the adapter,
answer extraction, predictions.jsonl written and fsync'ed line by line) after a warm-up, ``--repeat`` times.
Speed is reported as questions per wall second and per CPU second of the process (the ratios use CPU time,
which other jobs on a shared machine inflate much less).

Harness overhead, against calling the model's forward directly on the same inputs: every model call the
adapter makes (forward or generate, with its exact inputs) is timed in place, so overhead = time outside those
calls / time inside them, for the adapter (preprocessing, prompt rendering, tokenisation, scoring) and for
the whole runner (plus the engine's bookkeeping and per-line fsync); ratios are taken within each run, then
the median. As a cross-check the recorded calls are also replayed directly on the model after the run
(noisier: two separate timings).

Targets: (c) >= 3x (a); adapter overhead < 5%. Prints the figures and writes
benchmarks/results/local_throughput.json. Run by hand (about 3 minutes on 2 cores):

    .venv/bin/python benchmarks/local_throughput.py [--questions 48] [--shots 2] [--repeat 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CONFIGS = {
    "a_mmad_generate": {"answer_mode": "generate", "batch_size": 1, "prefix_reuse": False, "max_new_tokens": 16},
    "a2_mmad_generate_2tok": {"answer_mode": "generate", "batch_size": 1, "prefix_reuse": False,
                              "max_new_tokens": 2},
    "b_likelihood": {"answer_mode": "likelihood", "batch_size": 1, "prefix_reuse": False},
    "c_likelihood_batch_reuse": {"answer_mode": "likelihood", "batch_size": 8, "prefix_reuse": True,
                                 "batch_invariant": False},
    "c2_likelihood_reuse_invariant": {"answer_mode": "likelihood", "batch_size": 8, "prefix_reuse": True,
                                      "batch_invariant": True},
}
TARGET_SPEEDUP, TARGET_OVERHEAD = 3.0, 0.05


def clock() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time is what the shared machine cannot inflate."""
    return time.perf_counter(), time.process_time()


class Recorder:
    """Wraps an adapter's model entry points: records each call's inputs and times the adapter and the model."""

    def __init__(self, adapter) -> None:
        self.adapter = adapter
        self.calls: list[tuple[str, dict]] = []
        self.recording = False
        self.reset()
        runtime = adapter.runtime  # every forward and generate of the adapter goes through these two methods
        call, gen, predict = runtime.call, runtime.generate, adapter.predict

        def timed(kind, fn, kw):
            if self.recording:  # the copy is the benchmark's own cost: taken off the adapter's time
                w, c = clock()
                self.calls.append((kind, _snapshot(kw)))
                w2, c2 = clock()
                self.snapshot_wall += w2 - w
                self.snapshot_cpu += c2 - c
            w, c = clock()
            try:
                return fn(**kw)
            finally:
                w2, c2 = clock()
                self.model_wall += w2 - w
                self.model_cpu += c2 - c

        runtime.call = lambda **kw: timed("forward", call, kw)
        runtime.generate = lambda **kw: timed("generate", gen, kw)

        def _predict(batch):  # time spent inside the adapter only, not while the runner handles a response
            it = predict(batch)
            while True:
                w, c = clock()
                try:
                    response = next(it)
                except StopIteration:
                    response = None
                w2, c2 = clock()
                self.adapter_wall += w2 - w
                self.adapter_cpu += c2 - c
                if response is None:
                    return
                yield response

        adapter.predict = _predict

    def reset(self) -> None:
        self.calls = []
        self.adapter_wall = self.adapter_cpu = self.model_wall = self.model_cpu = 0.0
        self.snapshot_wall = self.snapshot_cpu = 0.0  # recording copies: the benchmark's cost, taken off below


def _snapshot(kw: dict) -> dict:
    """A copy of a call's inputs that later calls cannot mutate (KV caches grow in place)."""
    return {k: copy.deepcopy(v) for k, v in kw.items()}


def replay(adapter, calls: list[tuple[str, dict]]) -> tuple[float, float]:
    """(wall, CPU) seconds the recorded calls take when made directly on the model (inputs prepared first)."""
    import torch

    prepared = [(kind, _snapshot(kw)) for kind, kw in calls]  # generate calls carry their generation_config
    model = adapter.loaded.model
    with torch.inference_mode():
        w, c = clock()
        for kind, kw in prepared:
            if kind == "forward":
                model(**kw)
            else:
                model.generate(**kw)
        w2, c2 = clock()
    return w2 - w, c2 - c


def run_config(name: str, options: dict, model_dir: Path, data: str, shots: int, n: int, repeat: int,
               work: Path) -> dict:
    from mmeval.config import RunConfig
    from mmeval.model_adapters import build_adapter
    from mmeval.predictions import read_predictions
    from mmeval.run.runner import adapter_settings, run

    run_level = {k: options[k] for k in ("answer_mode", "batch_size")}
    opts = {"dtype": "fp32", **{k: v for k, v in options.items() if k not in run_level}}
    config = RunConfig(model=f"hf:{model_dir}", model_args=opts, data=data, shots=shots, limit=n, **run_level)
    adapter = build_adapter(config.model, opts, adapter_settings(config))
    rec = Recorder(adapter)
    run(config, work / f"{name}-warmup", adapter=adapter, progress=False)  # warm-up (allocator, kernels, caches)
    m: dict[str, list[float]] = {k: [] for k in ("runner_wall", "runner_cpu", "adapter_wall", "adapter_cpu",
                                                 "model_wall", "model_cpu", "direct_wall", "direct_cpu")}
    for i in range(repeat):
        rec.reset()
        rec.recording = True
        w, c = clock()
        result = run(config, work / f"{name}-{i}", adapter=adapter, progress=False)
        w2, c2 = clock()
        rec.recording = False
        m["runner_wall"].append(w2 - w - rec.snapshot_wall)
        m["runner_cpu"].append(c2 - c - rec.snapshot_cpu)
        m["adapter_wall"].append(rec.adapter_wall - rec.snapshot_wall)
        m["adapter_cpu"].append(rec.adapter_cpu - rec.snapshot_cpu)
        m["model_wall"].append(rec.model_wall)
        m["model_cpu"].append(rec.model_cpu)
        dw, dc = replay(adapter, rec.calls)
        m["direct_wall"].append(dw)
        m["direct_cpu"].append(dc)
        preds = read_predictions(result.predictions)
        assert len(preds) == n and not any(p.error for p in preds), "a question was lost or failed"
        if options["answer_mode"] == "likelihood":
            assert all(p.choice is not None for p in preds), "likelihood mode left a question without a choice"
    calls = len(rec.calls)
    adapter.close()
    med = {k: statistics.median(v) for k, v in m.items()}

    def per_run(num: str, den: str) -> float:  # ratios taken within a run, then the median: robust to load
        return statistics.median(a / b - 1 for a, b in zip(m[num], m[den], strict=True))

    return {
        "options": {**run_level, **opts}, "questions": n, "model_calls": calls, "seconds": m,
        "questions_per_second": n / med["runner_wall"],
        "questions_per_cpu_second": n / med["runner_cpu"],
        # harness overhead: time spent outside the model's forward/generate calls, relative to those calls
        "adapter_overhead": per_run("adapter_cpu", "model_cpu"),
        "runner_overhead": per_run("runner_cpu", "model_cpu"),
        # cross-check: the adapter against replaying its recorded model calls directly (noisier: two runs)
        "adapter_vs_direct_replay": per_run("adapter_cpu", "direct_cpu"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=48, help="questions answered per configuration (default 48)")
    ap.add_argument("--shots", type=int, default=2, help="normal templates per question (default 2: 3 images)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per configuration; the median counts")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: stable figures on a shared machine)")
    ap.add_argument("--only", nargs="*", choices=list(CONFIGS), help="run only these configurations")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "local_throughput.json"))
    a = ap.parse_args(argv)

    import tiny_models
    import torch
    import transformers

    from mmeval.data.synthetic.generator import build_synthetic

    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory(prefix="mmeval-bench-") as tmp:
        work = Path(tmp)
        size = dict(hidden=320, layers=6, heads=5, vision_hidden=128, vision_layers=4, image_size=96, patch=8)
        model_dir = tiny_models.build_tiny("llava", work / "model", **size)
        import safetensors.torch

        params = sum(t.numel() for t in safetensors.torch.load_file(str(model_dir / "model.safetensors")).values())
        data = str(build_synthetic(work / "synthetic", seed=0))
        results = {}
        for name, options in CONFIGS.items():
            if a.only and name not in a.only:
                continue
            r = results[name] = run_config(name, options, model_dir, data, a.shots, a.questions, a.repeat, work)
            print(f"{name:30s} {r['questions_per_second']:6.2f} q/s ({r['questions_per_cpu_second']:6.2f} q/CPU-s)  "
                  f"model calls {r['model_calls']:3d}  overhead: adapter {100 * r['adapter_overhead']:4.1f}%  "
                  f"runner {100 * r['runner_overhead']:4.1f}%  (adapter vs direct replay "
                  f"{100 * r['adapter_vs_direct_replay']:+5.1f}%)", flush=True)

    qps = {k: v["questions_per_cpu_second"] for k, v in results.items()}  # CPU time: robust on a shared machine
    ratios = {}
    if "a_mmad_generate" in qps:
        ratios = {f"{k}/a": qps[k] / qps["a_mmad_generate"] for k in qps if k != "a_mmad_generate"}
    if "a2_mmad_generate_2tok" in qps:
        ratios.update({f"{k}/a2": qps[k] / qps["a2_mmad_generate_2tok"] for k in qps if k.startswith(("b", "c"))})
    print()
    for k, v in ratios.items():
        print(f"speed-up {k:40s} {v:6.2f}x")
    verdict = {}
    if "c_likelihood_batch_reuse/a" in ratios:
        verdict["c_vs_a_target_met"] = ratios["c_likelihood_batch_reuse/a"] >= TARGET_SPEEDUP
    if "c_likelihood_batch_reuse" in results:
        overhead = results["c_likelihood_batch_reuse"]["adapter_overhead"]
        verdict["adapter_overhead_target_met"] = overhead < TARGET_OVERHEAD
    print("targets:", verdict)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "local_throughput", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "transformers": transformers.__version__, "threads": a.threads,
                    "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "model": {"kind": "llava", "parameters": params, **size},
        "questions": a.questions, "shots": a.shots, "repeat": a.repeat,
        "targets": {"c_vs_a_speedup": TARGET_SPEEDUP, "adapter_overhead": TARGET_OVERHEAD},
        "results": results, "ratios": ratios, "verdict": verdict,
    }, indent=2), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
