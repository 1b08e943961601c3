"""API throughput: the MMAD reference loop vs ``mmeval run --model openai:...``, side by side in one run.

Both answer the bundled benchmark (1 shot: a template and the query image per request) against the same
local OpenAI-compatible server (tests/fake_openai_server.py, a separate process) that waits
``--latency`` seconds (default 50 ms) before each answer.

* reference: a replica of the workload of MMAD's GPT-4o script: images taken in order, each image's
  pictures resized to fit 512 px and JPEG-encoded once, then one blocking request per question with the
  synchronous ``openai`` client, each request carrying the image's earlier questions again (question i
  sends questions 1..i), the last letter A-E of the reply kept, and the answers file rewritten after
  each image.
* mmeval: ``python -m mmeval run --model openai:... --concurrency 32`` in a fresh process, end to end
  (imports, loading, requests, predictions.jsonl, scores and report.html), response cache off.
* mmeval --limit 1: the same command for one question: what starting up and reporting cost.

Figures (medians of ``--repeat`` runs): the speed-up of mmeval over the reference (target >= 10x), mmeval's
client CPU per question beyond the first (the full run's CPU minus the one-question run's, over the
other questions; target <= 1 ms) and the one-question run's wall time (target <= 1.5 s). Checks that
every question got exactly one answer without error. Writes benchmarks/results/api_throughput.json.

Beside them, measured in the same minutes, what any harness using the ``openai`` client with a pandas report
spends: the client's own CPU per request (the same kind of request body, the same server and concurrency)
and the wall time of a fresh Python importing ``openai`` and ``pandas``. Subtracted from the figures, they
leave mmeval's own share of each.

``--photo-px N`` runs both on the bundled benchmark with its images enlarged to N pixels (as
benchmarks/scale.py does), as MMAD's photographs are: both sides then pay for decoding and re-encoding real
image sizes once per image. Its results go to ``api_throughput-<N>px.json``.

    .venv/bin/python benchmarks/api_throughput.py [--latency 0.05] [--concurrency 32] [--repeat 3] [--photo-px N]
"""

from __future__ import annotations

import argparse
import base64
import importlib
import importlib.util
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from scale import enlarge, measured, started
from warm import byte_compile

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "MMEVAL_BENCH_KEY"
TARGETS = {"speedup": 10.0, "client_cpu_ms_per_question": 1.0, "startup_and_report_s": 1.5}
MODEL = "bench-vlm"
REFERENCE_SIDE = 512
INSTRUCTION = ("You inspect manufactured products in images. Decide whether the query image shows a defect and "
               "answer each question about it with the letter of one option.\nList your answers in order, one "
               "per line, like:\n1. Answer: A.\n2. Answer: C.\n")


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai_server.py"), "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"fake server did not start (got {line!r})")
    return proc, f"http://127.0.0.1:{int(line)}"


def server_requests(root: str) -> int:
    with urllib.request.urlopen(root + "/stats", timeout=10) as resp:
        return int(json.loads(resp.read())["requests"])


# ------------------------------------------------------------------------------------------ reference


def fit_jpeg(path: Path, side: int) -> str:
    """Resized to fit side x side (aspect kept, small images enlarged), as a base64 JPEG."""
    from PIL import Image

    with Image.open(path) as im:
        img = im.convert("RGB")
    scale = side / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BOX)
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def question_text(q: dict[str, Any]) -> str:
    options = "".join(f"{letter}. {text}\n" for letter, text in q["options"].items())
    return f"Question: {q['text']} \n{options}"


def reference_loop(data: Path, base_url: str, answers_path: Path) -> tuple[int, int]:
    """The reference workload over every image of ``data``; (questions answered, replies without a letter)."""
    import openai

    records = json.loads((data / "mmad.json").read_text(encoding="utf-8"))
    client = openai.OpenAI(api_key=os.environ[KEY_ENV], base_url=base_url)
    answers: list[dict[str, Any]] = []
    unparsed = 0
    for image, rec in records.items():
        templates = rec.get("similar_templates", [])[:1]
        urls = [fit_jpeg(data / p, REFERENCE_SIDE) for p in [*templates, image]]
        head = INSTRUCTION + f"The first {len(templates)} image is a normal sample to compare with. The last " \
            "image is the query image.\nThe questions:\n"
        asked = ""
        for q in rec["conversation"]:
            asked += question_text({"text": q["Question"], "options": q["Options"]})
            content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {
                "url": "data:image/jpeg;base64," + url, "detail": "low"}} for url in urls]
            content.append({"type": "text", "text": head + asked})
            reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}],
                                                   max_tokens=200)
            letters = re.findall(r"\b([A-E])\b", reply.choices[0].message.content or "")
            unparsed += not letters
            answers.append({"image": image, "question": q["Question"], "correct_answer": q["Answer"],
                            "gpt_answer": letters[-1] if letters else ""})
        answers_path.write_text(json.dumps(answers, indent=4), encoding="utf-8")  # after each image, as it does
    client.close()
    return len(answers), unparsed


# ------------------------------------------------------------------------------------------ floors


def sample_bodies(data: Path, images: int = 20) -> list[bytes]:
    """Request bodies of mmeval's kind for the questions on the first ``images`` images of ``data``: the
    template and the query image as JPEG data URLs from mmeval's own encoder, the question's text, encoded
    once as compact JSON. Only their size matters to the client."""
    from mmeval.model_adapters.remote.images import encode_image

    records = json.loads((data / "mmad.json").read_text(encoding="utf-8"))
    bodies = []
    for image, rec in list(records.items())[:images]:
        urls = [encode_image(str(data / p), REFERENCE_SIDE) for p in [*rec.get("similar_templates", [])[:1], image]]
        for q in rec["conversation"]:
            content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url, "detail": "auto"}}
                                             for url in urls]
            content.append({"type": "text", "text": INSTRUCTION + question_text(
                {"text": q["Question"], "options": q["Options"]})})
            body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "temperature": 0, "seed": 0,
                    "max_tokens": 64}
            bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies


def openai_client_cpu(base_url: str, bodies: list[bytes], requests: int, concurrency: int) -> float:
    """Milliseconds of CPU the ``openai`` client alone spends per request, sent as mmeval sends them (the
    client's ``post`` with the encoded body, on its aiohttp transport when aiohttp is installed, the reply's
    JSON decoded), at the same concurrency to the same server: the part of mmeval's client CPU per question
    that is the library's. Counted beyond a first request, as mmeval's figure is."""
    import asyncio

    import openai

    try:  # openai >= 3 is built on httpx2, older releases on httpx
        http = importlib.import_module("httpx2")
    except ImportError:
        http = importlib.import_module("httpx")

    async def measure() -> float:
        aio = importlib.util.find_spec("aiohttp") is not None and hasattr(openai, "DefaultAioHttpClient")
        client = openai.AsyncOpenAI(api_key=os.environ[KEY_ENV], base_url=base_url, max_retries=0,
                                    http_client=openai.DefaultAioHttpClient() if aio else None)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                reply = await client.post("/chat/completions", content=bodies[i % len(bodies)], cast_to=http.Response)
                await reply.aread()
                json.loads(reply.text)

        await one(0)
        start = time.process_time()
        await asyncio.gather(*(one(i) for i in range(1, requests)))
        cpu = time.process_time() - start
        await client.close()
        return cpu / (requests - 1) * 1000

    return asyncio.run(measure())


def import_floor(env: dict[str, str]) -> dict[str, float]:
    """Wall seconds of a fresh Python doing nothing, and of one importing what any ``openai:`` run with a
    report must import (``openai`` for the client, ``pandas`` for the report), each through the starter."""
    return {"python_s": started([sys.executable, "-c", "pass"], env)["wall_s"],
            "import_openai_pandas_s": started([sys.executable, "-c", "import openai, pandas"], env)["wall_s"]}


# ------------------------------------------------------------------------------------------ mmeval


def mmeval_run(base_url: str, out: Path, concurrency: int, limit: int | None, env: dict[str, str],
               data: Path | None = None) -> dict[str, float]:
    """One ``mmeval run`` in a fresh process (on ``data``, else the bundled benchmark): wall seconds, CPU seconds
    (user + system), peak RSS (MB)."""
    args = ["run", "--model", f"openai:{MODEL}", "-M", f"base_url={base_url}",
            "-M", f"api_key_env={KEY_ENV}", "-M", "no_cache=true", "--concurrency", str(concurrency),
            "--shots", "1", "--out", str(out), "--no-progress"]
    if data is not None:
        args += ["--data", str(data / "mmad.json")]
    if limit:
        args += ["--limit", str(limit)]
    return measured(args, env)


def check_predictions(out: Path, expected: int) -> dict[str, int]:
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line]
    ids = [p["id"] for p in preds]
    return {"answers": len(ids), "lost": expected - len(set(ids)), "duplicates": len(ids) - len(set(ids)),
            "errors": sum(1 for p in preds if p["error"])}


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> int:
    ap = argparse.ArgumentParser(description="mmeval run --model openai:... vs the MMAD reference loop")
    ap.add_argument("--latency", type=float, default=0.05, help="server latency per request, seconds")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each mmeval measurement; the median counts")
    ap.add_argument("--photo-px", type=int, default=0,
                    help="first enlarge the bundled images to this many pixels, as MMAD's photographs are")
    ap.add_argument("--out", help="results file (default: benchmarks/results/api_throughput[-<N>px].json)")
    args = ap.parse_args()
    args.out = args.out or str(ROOT / "benchmarks" / "results" / (
        f"api_throughput-{args.photo_px}px.json" if args.photo_px else "api_throughput.json"))
    byte_compile()

    tmp = Path(tempfile.mkdtemp(prefix="mmeval-bench-"))
    env = {**os.environ, "MMEVAL_HOME": str(tmp / "home"), KEY_ENV: "sk-bench-not-a-real-key", "HF_HUB_OFFLINE": "1"}
    os.environ.update({k: env[k] for k in ("MMEVAL_HOME", KEY_ENV)})
    from mmeval.data.synthetic.cache import ensure_synthetic

    data = ensure_synthetic().parent
    if args.photo_px:
        enlarge(data, tmp / "photos", args.photo_px)
        data = tmp / "photos"
    n = sum(len(r["conversation"]) for r in json.loads((data / "mmad.json").read_text()).values())
    server, root = start_server(args.latency)
    base_url = root + "/v1"
    try:
        print(f"{n} questions, images {f'enlarged to {args.photo_px} px' if args.photo_px else 'as bundled'}, "
              f"server latency {args.latency * 1000:.0f} ms, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.2f}", file=sys.stderr)
        before = server_requests(root)
        c0, t0 = time.process_time(), time.perf_counter()
        answered, unparsed = reference_loop(data, base_url, tmp / "reference_answers.json")
        ref = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
        ref_requests = server_requests(root) - before
        print(f"  reference      {ref['wall_s']:6.2f} s", file=sys.stderr)
        full: list[dict[str, float]] = []
        one: list[dict[str, float]] = []
        checks: dict[str, int] = {}
        bodies = sample_bodies(data)
        library: list[float] = []  # the openai client's own CPU per request, ms
        imports: list[dict[str, float]] = []
        for rep in range(max(1, args.repeat)):
            own = data if args.photo_px else None
            one.append(mmeval_run(base_url, tmp / f"one{rep}", args.concurrency, 1, env, own))
            full.append(mmeval_run(base_url, tmp / f"full{rep}", args.concurrency, None, env, own))
            for key, value in check_predictions(tmp / f"full{rep}", n).items():
                checks[key] = checks.get(key, 0) + value
            library.append(openai_client_cpu(base_url, bodies, n, args.concurrency))
            imports.append(import_floor(env))
            print(f"  mmeval run {rep + 1}   {full[-1]['wall_s']:6.2f} s  (--limit 1: {one[-1]['wall_s']:.2f} s); "
                  f"openai client alone {library[-1]:.2f} ms CPU per request; Python importing openai and pandas "
                  f"{imports[-1]['import_openai_pandas_s']:.2f} s", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)

    speedup = ref["wall_s"] / median(full, "wall_s")
    cpu_per_q = (median(full, "cpu_s") - median(one, "cpu_s")) / (n - 1) * 1000
    figures = {"speedup": round(speedup, 2), "client_cpu_ms_per_question": round(cpu_per_q, 3),
               "startup_and_report_s": round(median(one, "wall_s"), 3)}
    floors = {"openai_client_cpu_ms_per_request": round(statistics.median(library), 3),
              "python_s": round(median(imports, "python_s"), 3),
              "import_openai_pandas_s": round(median(imports, "import_openai_pandas_s"), 3)}
    beyond = {"client_cpu_ms_per_question": round(cpu_per_q - floors["openai_client_cpu_ms_per_request"], 3),
              "startup_and_report_s": round(figures["startup_and_report_s"] - floors["import_openai_pandas_s"], 3)}
    met = {"speedup": figures["speedup"] >= TARGETS["speedup"],
           "client_cpu_ms_per_question": figures["client_cpu_ms_per_question"] <= TARGETS["client_cpu_ms_per_question"],
           "startup_and_report_s": figures["startup_and_report_s"] <= TARGETS["startup_and_report_s"]}
    result = {
        "questions": n, "image_px": args.photo_px or "as bundled (128)", "server_latency_s": args.latency,
        "concurrency": args.concurrency,
        "reference": {"wall_s": round(ref["wall_s"], 3), "cpu_ms_per_question": round(ref["cpu_s"] / n * 1000, 3),
                      "requests": ref_requests, "answered": answered, "replies_without_letter": unparsed},
        "mmeval": {"wall_s_each": [round(r["wall_s"], 3) for r in full],
                   "cpu_s_each": [round(r["cpu_s"], 3) for r in full],
                   "peak_mb": round(max(r["peak_mb"] for r in full), 1), "checks": checks},
        "mmeval_limit_1": {"wall_s_each": [round(r["wall_s"], 3) for r in one],
                           "cpu_s_each": [round(r["cpu_s"], 3) for r in one]},
        "figures": figures, "targets": TARGETS, "met": met,
        # what no harness built on the openai client and a pandas report avoids, measured in the same minutes:
        # the client's own CPU per request and the imports; and what is left of each figure beyond them
        "floors": floors, "beyond_floors": beyond,
        "floors_each": {"openai_client_cpu_ms_per_request": [round(x, 3) for x in library],
                        "import_openai_pandas_s": [round(x["import_openai_pandas_s"], 3) for x in imports]},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"reference loop        {ref['wall_s']:7.2f} s")
    print(f"mmeval run            {median(full, 'wall_s'):7.2f} s   speed-up {speedup:5.1f}x   target >= 10x   "
          f"{'met' if met['speedup'] else 'NOT met'}")
    print(f"client CPU/question   {cpu_per_q:7.3f} ms  target <= 1 ms   "
          f"{'met' if met['client_cpu_ms_per_question'] else 'NOT met'}")
    print(f"  the openai client alone {floors['openai_client_cpu_ms_per_request']:.3f} ms, the rest "
          f"{beyond['client_cpu_ms_per_question']:.3f} ms")
    print(f"run --limit 1         {figures['startup_and_report_s']:7.2f} s   target <= 1.5 s   "
          f"{'met' if met['startup_and_report_s'] else 'NOT met'}")
    print(f"  Python importing openai and pandas {floors['import_openai_pandas_s']:.2f} s (Python alone "
          f"{floors['python_s']:.2f} s), the rest {beyond['startup_and_report_s']:.2f} s")
    print(f"checks: {checks}")
    bad = checks["lost"] + checks["duplicates"] + checks["errors"]
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
