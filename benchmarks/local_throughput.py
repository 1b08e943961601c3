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
       call against the shared prefix's cache, so its scores never depend on its batch mates);
* (c2 rag) (c2) with ``--boost rag``: the bundled benchmark's domain_knowledge.json, every entry of the
       image's category added to the shared prefix (MMAD's RAG prompts); its ratio to (c2) is their cost.

Beside each speed-up against (a2) the benchmark prints its token-count limit: the token positions (a2)
runs through the language model per question (every image's tokens and the prompt, then the first new
token fed back) over those the configuration runs (with prefix reuse: the shared prefix once per image,
then each question's own suffix), counted from the inputs of the calls the timed runs made. It leaves out
the vision tower and the fixed cost of each call (larger for a generate), so a measured speed-up can land a
little on either side of it.

Every configuration runs through ``mmeval.run.runner.run`` (the real engine: loading, rendering, the adapter,
answer extraction, predictions.jsonl written line by line) after a warm-up of each. The timed runs go in
``--repeat`` rounds, each running every configuration once (in reverse order every other round), so that the
two sides of a ratio always share the same minutes of a machine whose speed drifts. Speed is reported as
questions per wall second and per CPU second of the process; a speed-up is the median over the rounds of
each round's ratio of CPU seconds (CPU time, which other jobs on a shared machine inflate much less).

Harness overhead, against calling the model's forward directly on the same inputs: every model call the
adapter makes (forward or generate, with its exact inputs) is timed in place, so overhead = time outside those
calls / time inside them, for the adapter (preprocessing, prompt rendering, tokenisation, scoring) and for
the whole runner (plus the engine's bookkeeping and per-line fsync); ratios are taken within each run, then
the median. As a cross-check the recorded calls are also replayed directly on the model after the run
(noisier: two separate timings).

Targets: (c) >= 3x (a); (c2) >= 2.5x (a2); adapter overhead < 5%. Prints the figures and writes
benchmarks/results/local_throughput.json. Run by hand (4 to 6 minutes on 2 shared cores):

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
from dataclasses import dataclass, field
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
    "c2_rag_likelihood_reuse_invariant": {"answer_mode": "likelihood", "batch_size": 8, "prefix_reuse": True,
                                          "batch_invariant": True, "boosts": ("rag",)},
}
#: options that configure the run rather than the adapter's -M arguments
RUN_LEVEL = ("answer_mode", "batch_size", "boosts")
TARGET_SPEEDUP, TARGET_C2_VS_A2, TARGET_OVERHEAD = 3.0, 2.5, 0.05


def clock() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time is what the shared machine cannot inflate."""
    return time.perf_counter(), time.process_time()


class Recorder:
    """Wraps an adapter's model entry points: records each call's inputs and times the adapter and the model."""

    def __init__(self, adapter) -> None:
        self.adapter = adapter
        self.calls: list[tuple[str, dict]] = []
        self.positions = 0  # token positions the recorded calls ran through the language model
        self.recording = False
        self.reset()
        runtime = adapter.runtime  # every forward and generate of the adapter goes through these two methods
        call, gen, predict = runtime.call, runtime.generate, adapter.predict

        def timed(kind, fn, kw):
            cached = 0
            if self.recording:  # the copy is the benchmark's own cost: taken off the adapter's time
                w, c = clock()
                self.calls.append((kind, _snapshot(kw)))
                cached = _cached_length(kw)
                w2, c2 = clock()
                self.snapshot_wall += w2 - w
                self.snapshot_cpu += c2 - c
            w, c = clock()
            try:
                out = fn(**kw)
            finally:
                w2, c2 = clock()
                self.model_wall += w2 - w
                self.model_cpu += c2 - c
            if self.recording:
                self.positions += positions_run(kind, kw, out, cached)
            return out

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
        self.positions = 0
        self.adapter_wall = self.adapter_cpu = self.model_wall = self.model_cpu = 0.0
        self.snapshot_wall = self.snapshot_cpu = 0.0  # recording copies: the benchmark's cost, taken off below


def _cached_length(kw: dict) -> int:
    """Tokens a call's KV cache already holds (they are not run again), read before the call extends it."""
    cache = kw.get("cache", kw.get("past_key_values"))
    return int(cache.get_seq_length()) if cache is not None else 0


def positions_run(kind: str, kw: dict, out, cached: int) -> int:
    """Token positions one model call runs through the language model (image tokens included, padding too).

    A forward runs its input ids; a generate runs the prompt (less what its cache holds) and then feeds back
    every new token but the last, which no call runs: ``rows x (output width - 1 - cached)``. These counts
    are what prefix reuse can save, hence the token-count limit of a speed-up (the vision tower aside).
    """
    ids = kw["input_ids"]
    if kind == "forward":
        return int(ids.numel())
    sequences = getattr(out, "sequences", out)
    return int(ids.shape[0]) * (int(sequences.shape[1]) - 1 - cached)


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


@dataclass
class Arm:
    """One configuration under test: its adapter (warmed up), the recorder around it and each round's figures."""

    name: str
    options: dict
    config: object
    adapter: object
    rec: Recorder
    n: int
    seconds: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in SECONDS})
    calls: int = 0
    positions: int = 0


#: what each timed run records (wall and CPU seconds): the runner, the adapter, the model calls, their replay
SECONDS = ("runner_wall", "runner_cpu", "adapter_wall", "adapter_cpu", "model_wall", "model_cpu",
           "direct_wall", "direct_cpu")


def set_up(name: str, options: dict, model_dir: Path, data: str, shots: int, n: int, work: Path) -> Arm:
    """Build the configuration's adapter and run it once untimed (allocator, kernels, caches)."""
    from mmeval.config import RunConfig
    from mmeval.model_adapters import build_adapter
    from mmeval.run.runner import adapter_settings, run

    run_level = {k: options[k] for k in RUN_LEVEL if k in options}
    opts = {"dtype": "fp32", **{k: v for k, v in options.items() if k not in run_level}}
    config = RunConfig(model=f"hf:{model_dir}", model_args=opts, data=data, shots=shots, limit=n, **run_level)
    adapter = build_adapter(config.model, opts, adapter_settings(config))
    rec = Recorder(adapter)
    run(config, work / f"{name}-warmup", adapter=adapter, progress=False)
    return Arm(name, {**run_level, **opts}, config, adapter, rec, n)


def timed_run(arm: Arm, i: int, work: Path) -> None:
    """One timed run of ``arm`` (a fresh run folder), then the replay of its model calls; appends the figures."""
    from mmeval.predictions import read_predictions
    from mmeval.run.runner import run

    rec, m = arm.rec, arm.seconds
    rec.reset()
    rec.recording = True
    w, c = clock()
    result = run(arm.config, work / f"{arm.name}-{i}", adapter=arm.adapter, progress=False)
    w2, c2 = clock()
    rec.recording = False
    m["runner_wall"].append(w2 - w - rec.snapshot_wall)
    m["runner_cpu"].append(c2 - c - rec.snapshot_cpu)
    m["adapter_wall"].append(rec.adapter_wall - rec.snapshot_wall)
    m["adapter_cpu"].append(rec.adapter_cpu - rec.snapshot_cpu)
    m["model_wall"].append(rec.model_wall)
    m["model_cpu"].append(rec.model_cpu)
    dw, dc = replay(arm.adapter, rec.calls)
    m["direct_wall"].append(dw)
    m["direct_cpu"].append(dc)
    preds = read_predictions(result.predictions)
    assert len(preds) == arm.n and not any(p.error for p in preds), "a question was lost or failed"
    if arm.options["answer_mode"] == "likelihood":
        assert all(p.choice is not None for p in preds), "likelihood mode left a question without a choice"
    arm.calls, arm.positions = len(rec.calls), rec.positions  # the same in every run
    rec.calls = []  # the copied inputs (KV caches among them) are not kept while the other configurations run


def summary(arm: Arm) -> dict:
    """The configuration's figures: medians over its runs, overheads as within-run ratios."""
    m, n = arm.seconds, arm.n
    med = {k: statistics.median(v) for k, v in m.items()}

    def per_run(num: str, den: str) -> float:  # ratios taken within a run, then the median: robust to load
        return statistics.median(a / b - 1 for a, b in zip(m[num], m[den], strict=True))

    return {
        "options": arm.options, "questions": n, "model_calls": arm.calls, "seconds": m,
        # the same in every run: what the model ran, the ground of the token-count limit of a speed-up
        "model_positions": arm.positions, "positions_per_question": arm.positions / n,
        "questions_per_second": n / med["runner_wall"],
        "questions_per_cpu_second": n / med["runner_cpu"],
        # harness overhead: time spent outside the model's forward/generate calls, relative to those calls
        "adapter_overhead": per_run("adapter_cpu", "model_cpu"),
        "runner_overhead": per_run("runner_cpu", "model_cpu"),
        # cross-check: the adapter against replaying its recorded model calls directly (noisier: two runs)
        "adapter_vs_direct_replay": per_run("adapter_cpu", "direct_cpu"),
    }


def label(name: str) -> str:
    """The configuration's short name: (a), (a2), (b), (c), (c2), (c2 rag)."""
    return name.split("_")[0] + (" rag" if "_rag_" in name else "")


def rounds_order(names: list[str], i: int) -> list[str]:
    """The configurations in round ``i``: forward in even rounds, backward in odd ones, so that a machine
    slowing down or speeding up across a round favours no configuration over the rounds."""
    return names if i % 2 == 0 else names[::-1]


def paired(results: dict[str, dict], num: str, den: str) -> list[float]:
    """Round by round, how many times faster ``num`` ran than ``den`` (CPU seconds of the same questions):
    each pair ran in the same round, minutes apart at most, so a slow spell of the machine hits both."""
    return [d / n for n, d in zip(results[num]["seconds"]["runner_cpu"], results[den]["seconds"]["runner_cpu"],
                                  strict=True)]


def speedups(results: dict[str, dict]) -> tuple[dict[str, float], dict[str, float], dict[str, list[float]]]:
    """Measured speed-ups (median over the rounds of each round's ratio of CPU seconds: robust on a shared
    machine), each round's ratios, and beside those against (a2) their token-count limit: the positions (a2)
    runs per question over those the configuration runs.
    The limit is what skipping the tokens alone would give (the prefix once per image, each question's
    suffix); a measured ratio under it is the cost of the rest (vision tower per image, fixed cost per call).
    """
    ppq = {k: v["positions_per_question"] for k, v in results.items()}
    each: dict[str, list[float]] = {}
    limits: dict[str, float] = {}
    if "a_mmad_generate" in results:
        each = {f"{k}/a": paired(results, k, "a_mmad_generate") for k in results if k != "a_mmad_generate"}
    if "a2_mmad_generate_2tok" in results:
        for k in results:
            if k.startswith(("b", "c")):
                each[f"{k}/a2"] = paired(results, k, "a2_mmad_generate_2tok")
                limits[f"{k}/a2"] = ppq["a2_mmad_generate_2tok"] / ppq[k]
    rag, plain = "c2_rag_likelihood_reuse_invariant", "c2_likelihood_reuse_invariant"
    if rag in results and plain in results:  # what the retrieved knowledge costs (a longer shared prefix)
        each[f"{rag}/c2"] = paired(results, rag, plain)
        limits[f"{rag}/c2"] = ppq[plain] / ppq[rag]
    return {k: statistics.median(v) for k, v in each.items()}, limits, each


def verdicts(results: dict[str, dict], ratios: dict[str, float]) -> dict[str, bool]:
    """Which targets the run met (only those whose configurations ran)."""
    verdict = {}
    if "c_likelihood_batch_reuse/a" in ratios:
        verdict["c_vs_a_target_met"] = ratios["c_likelihood_batch_reuse/a"] >= TARGET_SPEEDUP
    if "c2_likelihood_reuse_invariant/a2" in ratios:
        verdict["c2_vs_a2_target_met"] = ratios["c2_likelihood_reuse_invariant/a2"] >= TARGET_C2_VS_A2
    if "c_likelihood_batch_reuse" in results:
        overhead = results["c_likelihood_batch_reuse"]["adapter_overhead"]
        verdict["adapter_overhead_target_met"] = overhead < TARGET_OVERHEAD
    return verdict


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=48, help="questions answered per configuration (default 48)")
    ap.add_argument("--shots", type=int, default=2, help="normal templates per question (default 2: 3 images)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds, each running every configuration once; speed-ups are the median of the rounds' "
                         "ratios")
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
        names = [name for name in CONFIGS if not a.only or name in a.only]
        arms = {}
        for name in names:
            arms[name] = set_up(name, CONFIGS[name], model_dir, data, a.shots, a.questions, work)
        for i in range(a.repeat):  # round by round, every configuration once, so that pairs share the minutes
            for name in rounds_order(names, i):
                timed_run(arms[name], i, work)
            print(f"round {i + 1} of {a.repeat}: " + ", ".join(
                f"{label(name)} {arms[name].seconds['runner_cpu'][-1]:.2f} s" for name in names), flush=True)
        results = {}
        for name in names:
            arms[name].adapter.close()
            r = results[name] = summary(arms[name])
            print(f"{name:34s} {r['questions_per_second']:6.2f} q/s ({r['questions_per_cpu_second']:6.2f} q/CPU-s)  "
                  f"model calls {r['model_calls']:3d}  tokens/question {r['positions_per_question']:6.1f}  "
                  f"overhead: adapter {100 * r['adapter_overhead']:4.1f}%  "
                  f"runner {100 * r['runner_overhead']:4.1f}%  (adapter vs direct replay "
                  f"{100 * r['adapter_vs_direct_replay']:+5.1f}%)", flush=True)

    ratios, limits, each = speedups(results)
    print()
    for k, v in ratios.items():
        limit = f"   token-count limit {limits[k]:5.2f}x" if k in limits else ""
        rounds = " / ".join(f"{r:.2f}" for r in each[k])
        print(f"speed-up {k:44s} {v:6.2f}x  (rounds: {rounds}){limit}")
    verdict = verdicts(results, ratios)
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
        "targets": {"c_vs_a_speedup": TARGET_SPEEDUP, "c2_vs_a2_speedup": TARGET_C2_VS_A2,
                    "adapter_overhead": TARGET_OVERHEAD},
        "results": results, "ratios": ratios, "ratios_each_round": each, "token_count_limits": limits,
        "verdict": verdict,
    }, indent=2), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
