"""A deterministic fake of the OpenAI chat-completions endpoint, for tests and the throughput benchmark.

``POST /v1/chat/completions`` reads the options ("A. text" lines) from the last text part of the user
message and answers one of them, chosen by a hash of the question, so the same request always gets the
same answer. With ``logprobs``/``top_logprobs`` it also sends a top-logprobs list (one option letter is
left out of it, to exercise the floor). It counts requests, records the most requests in flight at
once, and injects faults at a set rate from a seeded generator: 429 with Retry-After, 500, slow
replies, malformed JSON, refusals, empty answers.

Question-writer mode: a prompt that asks for JSON ("Reply with JSON only", as ``mmeval build --writer``
sends) is answered with a question as JSON, chosen by a hash of the prompt. ``writer_faults`` says what
attempt N gets ("ok", "malformed", "two-correct", "duplicate", "long"; later attempts: "ok"), and a
prompt containing ``writer_hopeless`` always gets "two-correct", so that question is never accepted.

LoRA adapters as vLLM loads them at run time: ``POST /v1/load_lora_adapter`` ({"lora_name", "lora_path"};
a name loaded twice gets vLLM's 400) and ``POST /v1/unload_lora_adapter``; a loaded adapter is listed by
``GET /v1/models`` (its root the path, its parent the base) and answers under its name, with answers of its
own (the hash takes the name too); ``lora_calls`` records the calls.

In a thread of the test process::

    with FakeOpenAIServer(latency=0.05, fault_rate=0.2) as srv:
        srv.base_url  # http://127.0.0.1:PORT/v1

As a process (the benchmark): ``python tests/fake_openai_server.py --latency 0.05`` prints the port.
"""

import argparse
import asyncio
import base64
import hashlib
import io
import json
import random
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from local_server import ThreadedServer

FAULTS = ("429", "500", "slow", "malformed", "refusal", "empty")
_OPTION = re.compile(r"^([A-H])\. (.+)$", re.MULTILINE)


class FakeOpenAIServer:
    def __init__(self, *, latency: float = 0.0, fault_rate: float = 0.0, faults: tuple[str, ...] = FAULTS,
                 seed: int = 0, retry_after: str = "0", slow_seconds: float = 0.3, api_key: str | None = None,
                 check_images: bool = True, logprobs: bool = True, fail_first: int = 0, fail_status: int = 429,
                 record: bool = True, port: int = 0, served_root: str | None = None, echo_key: bool = False,
                 usage: Any = "counts", writer_faults: tuple[str, ...] = (),
                 writer_hopeless: str | None = None) -> None:
        self.latency = latency
        self.fault_rate = fault_rate
        self.faults = faults
        self.rng = random.Random(seed)
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.api_key = api_key  # when set, other keys get a 401 whose message echoes the key (as OpenAI does)
        self.check_images = check_images
        self.record = record  # keep per-request details (bodies, content hashes); off for the benchmark
        self.logprobs = logprobs
        self.fail_first = fail_first  # the first N requests fail with fail_status (and Retry-After)
        self.fail_status = fail_status
        self.served_root = served_root  # when set, GET /v1/models lists the model with this weights path (as vLLM)
        self.echo_key = echo_key  # append the request's key to every answer (a misbehaving proxy)
        self.usage = usage  # "counts", or anything else to send as the usage block verbatim
        self.writer_faults = writer_faults  # question-writer mode: the reply kind per attempt (1, 2, ...)
        self.writer_hopeless = writer_hopeless  # prompts containing this always get two correct options
        self.writer_kinds: Counter[str] = Counter()  # question-writer replies sent, by kind
        self.lock = threading.Lock()
        self.requests = 0
        self.answered = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.fault_counts: Counter[str] = Counter()
        self.per_question: Counter[str] = Counter()  # successful answers per distinct request content
        self.max_image_side = 0
        self.images_seen = 0
        self.request_times: list[float] = []
        self.bodies: list[dict[str, Any]] = []  # the last few bodies, images elided
        self.loras: dict[str, str] = {}  # LoRA adapters loaded at run time: name -> path
        self.lora_calls: list[tuple[str, str]] = []  # ("load" | "unload", name), in order
        self._port = port
        self._serving = ThreadedServer("fake-openai")
        self.app = self._build_app()

    # ------------------------------------------------------------------------------------ app

    def _build_app(self) -> Any:
        app = FastAPI()

        @app.get("/stats")
        async def stats() -> Any:
            with self.lock:
                return {"requests": self.requests, "answered": self.answered, "max_in_flight": self.max_in_flight,
                        "faults": dict(self.fault_counts), "distinct": len(self.per_question),
                        "duplicates": sum(c - 1 for c in self.per_question.values())}

        @app.get("/v1/models")
        async def models() -> Any:
            if self.served_root is None and not self.loras:
                return JSONResponse({"error": {"message": "not found"}}, status_code=404)
            data = [{"id": "fake-vlm", "object": "model", "created": 0, "owned_by": "fake",
                     "root": self.served_root or "fake-vlm", "parent": None}]
            data += [{"id": name, "object": "model", "created": 0, "owned_by": "fake", "root": path,
                      "parent": "fake-vlm"} for name, path in self.loras.items()]
            return {"object": "list", "data": data}

        @app.post("/v1/load_lora_adapter")
        async def load_lora(request: Request) -> Any:
            body = await request.json()
            name, path = body.get("lora_name"), body.get("lora_path")
            with self.lock:
                self.lora_calls.append(("load", name))
                if name in self.loras:
                    return JSONResponse({"error": {"message": f"The lora adapter '{name}' has already been loaded."}},
                                        status_code=400)
                self.loras[name] = path
            return Response(f"Success: LoRA adapter '{name}' added successfully.", media_type="text/plain")

        @app.post("/v1/unload_lora_adapter")
        async def unload_lora(request: Request) -> Any:
            name = (await request.json()).get("lora_name")
            with self.lock:
                self.lora_calls.append(("unload", name))
                if self.loras.pop(name, None) is None:
                    return JSONResponse({"error": {"message": f"The lora adapter '{name}' cannot be found."}},
                                        status_code=404)
            return Response(f"Success: LoRA adapter '{name}' removed successfully.", media_type="text/plain")

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> Any:
            with self.lock:
                self.requests += 1
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                self.request_times.append(time.monotonic())
                n = self.requests
                fault = None
                if n <= self.fail_first:
                    fault = "first"
                elif self.fault_rate and self.rng.random() < self.fault_rate:
                    fault = self.rng.choice(self.faults)
                if fault:
                    self.fault_counts[fault] += 1
            try:
                auth = request.headers.get("authorization", "")
                if self.api_key is not None and auth != f"Bearer {self.api_key}":
                    got = auth.removeprefix("Bearer ")
                    return JSONResponse({"error": {"message": f"Incorrect API key provided: {got}.",
                                                   "type": "invalid_request_error", "code": "invalid_api_key"}},
                                        status_code=401)
                body = await request.json()
                if self.latency:
                    await asyncio.sleep(self.latency)
                if fault == "first":
                    return JSONResponse({"error": {"message": "injected failure"}}, status_code=self.fail_status,
                                        headers={"Retry-After": self.retry_after})
                if fault == "429":
                    return JSONResponse({"error": {"message": "Rate limit reached", "type": "rate_limit"}},
                                        status_code=429, headers={"Retry-After": self.retry_after})
                if fault == "500":
                    return JSONResponse({"error": {"message": "internal error"}}, status_code=500)
                if fault == "malformed":
                    return Response('{"id": "x", "choices": [', media_type="application/json")
                if fault == "slow":
                    await asyncio.sleep(self.slow_seconds)
                text, images = self._read(body)
                if self.check_images and images:
                    sides = [self._side(url) for url in images]
                    with self.lock:
                        self.max_image_side = max([self.max_image_side, *sides])
                        self.images_seen += len(sides)
                reply = self._answer(body, text, refusal=fault == "refusal", empty=fault == "empty")
                if self.echo_key:
                    reply["choices"][0]["message"]["content"] += " (" + auth.removeprefix("Bearer ") + ")"
                if self.usage != "counts":
                    reply["usage"] = self.usage
                digest = hashlib.sha256(json.dumps(body["messages"]).encode()).hexdigest() if self.record else ""
                elided = _elide(body) if self.record else None
                with self.lock:
                    self.answered += 1
                    if self.record:
                        self.per_question[digest] += 1
                        self.bodies = (self.bodies + [elided])[-20:]
                return JSONResponse(reply)
            finally:
                with self.lock:
                    self.in_flight -= 1

        return app

    @staticmethod
    def _read(body: dict[str, Any]) -> tuple[str, list[str]]:
        texts, images = [], []
        for msg in body.get("messages", []):
            content = msg.get("content")
            if isinstance(content, str):
                texts.append(content)
                continue
            for part in content or []:
                if part.get("type") == "text":
                    texts.append(part["text"])
                elif part.get("type") == "image_url":
                    images.append(part["image_url"]["url"])
        return "".join(texts), images

    @staticmethod
    def _side(url: str) -> int:
        from PIL import Image

        raw = base64.b64decode(url.split(",", 1)[1])
        with Image.open(io.BytesIO(raw)) as im:
            return max(im.size)

    @staticmethod
    def choose(text: str, adapter: str = "") -> str:
        """The letter this server answers for a prompt text (deterministic), with a LoRA adapter's name if any."""
        question = text.rsplit("Question:", 1)[-1]
        letters = [m.group(1) for m in _OPTION.finditer(question)] or ["A"]
        digest = int(hashlib.sha256((question + adapter).encode()).hexdigest(), 16)
        return letters[digest % len(letters)]

    def _writer_reply(self, text: str) -> str:
        """A question as JSON (or a faulty one), for a prompt of the question writer."""
        m = re.search(r"Attempt (\d+) of", text)
        attempt = int(m.group(1)) if m else 1
        kind = self.writer_faults[attempt - 1] if attempt <= len(self.writer_faults) else "ok"
        if self.writer_hopeless and self.writer_hopeless in text:
            kind = "two-correct"
        with self.lock:
            self.writer_kinds[kind] += 1
        digest = int(hashlib.sha256(text.split("Attempt ")[0].encode()).hexdigest(), 16)
        if "structure or details" in text:
            question = "How many round openings does the part have?"
            texts = ["Exactly one opening.", "Exactly two openings.", "Exactly three openings.",
                     "Exactly four openings."]
        else:
            question = "There is a defect in the object."
            texts = ["A thin line across the surface.", "A small round hole in the part.",
                     "A smear of foreign material.", "A chipped edge with material gone."]
        letter = "ABCD"[digest % 4]
        if kind == "malformed":
            return 'Sure! Here is the question: {"question": "' + question + '", "options": {"A": "' + texts[0]
        if kind == "duplicate":
            texts[(digest + 1) % 4] = texts[digest % 4]
        if kind == "long":
            texts[digest % 4] += " It is long, irregular and clearly visible over a large part of the product."
        answer: Any = [letter, "ABCD"[(digest + 2) % 4]] if kind == "two-correct" else letter
        return "```json\n" + json.dumps({"question": question, "options": dict(zip("ABCD", texts, strict=True)),
                                          "answer": answer}) + "\n```"

    def _answer(self, body: dict[str, Any], text: str, refusal: bool = False, empty: bool = False) -> dict[str, Any]:
        if "Reply with JSON only" in text and not refusal and not empty:
            content = self._writer_reply(text)
            return {"id": f"chatcmpl-{hashlib.sha1(text.encode()).hexdigest()[:12]}", "object": "chat.completion",
                    "created": 0, "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content, "refusal": None}}],
                    "usage": {"prompt_tokens": len(text) // 4, "completion_tokens": len(content) // 4,
                              "total_tokens": len(text) // 4 + len(content) // 4}}
        question = text.rsplit("Question:", 1)[-1]
        letters = [m.group(1) for m in _OPTION.finditer(question)] or ["A"]
        model = body.get("model", "")
        letter = self.choose(text, model if model in self.loras else "")
        content = "I'm sorry, I can't help with that." if refusal else "" if empty else letter
        prompt_tokens = len(text) // 4 + 85 * len(self._read(body)[1])
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": content, "refusal": None}}
        if self.logprobs and body.get("logprobs") and not refusal and not empty:
            k = int(body.get("top_logprobs") or 0)
            others = [x for x in letters if x != letter]
            top = [{"token": letter, "logprob": -0.05}, {"token": " " + letter, "logprob": -3.2},
                   {"token": "The", "logprob": -4.0}]
            # all other letters but the last one get decreasing logprobs; the last one is missing
            top += [{"token": x, "logprob": -1.0 - i} for i, x in enumerate(others[:-1])]
            top = sorted(top, key=lambda t: -t["logprob"])[: max(k, 1)]
            choice["logprobs"] = {"content": [{"token": letter, "logprob": -0.05, "bytes": list(letter.encode()),
                                               "top_logprobs": top}]}
            content = letter
            choice["message"]["content"] = content
        completion_tokens = 1 if body.get("max_tokens") == 1 else max(1, len(content) // 4)
        return {"id": f"chatcmpl-{hashlib.sha1(text.encode()).hexdigest()[:12]}", "object": "chat.completion",
                "created": 0, "model": body.get("model", "fake"), "choices": [choice],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    # ------------------------------------------------------------------------------------ lifecycle

    def reset_counts(self) -> None:
        with self.lock:
            self.requests = self.answered = self.max_in_flight = 0
            self.fault_counts.clear()
            self.per_question.clear()
            self.request_times.clear()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeOpenAIServer":
        self.port = self._serving.start(self.app, self._port, log_level="warning", timeout_keep_alive=30,
                                        backlog=2048)
        return self

    def stop(self) -> None:
        self._serving.stop()

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _elide(body: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(body))
    for msg in out.get("messages", []):
        for part in msg.get("content") or []:
            if isinstance(part, dict) and part.get("type") == "image_url":
                part["image_url"]["url"] = part["image_url"]["url"][:40] + "..."
    return out


def write_tiny_mmad(out_dir: Path, n_images: int = 6, side: int = 96, seed: int = 0) -> Path:
    """A small mmad.json with Pillow-drawn images (used when the synthetic benchmark is unavailable)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    data: dict[str, Any] = {}
    cat = "TinyDS/widget"
    tpl = f"{cat}/train/good/000.png"
    paths = [tpl]
    for i in range(n_images):
        bad = i % 2 == 1
        key = f"{cat}/test/{'scratch' if bad else 'good'}/{i:03d}.png"
        paths.append(key)
        convo = [
            {"Question": "Is there any defect in the object?", "Answer": "A" if bad else "B",
             "Options": {"A": "Yes.", "B": "No."}, "type": "Anomaly Detection"},
            {"Question": "What kind of product is shown in the image?", "Answer": "C",
             "Options": {"A": "A bottle.", "B": "A screw.", "C": "A widget.", "D": "A cable."},
             "type": "Object Classification"},
        ]
        if bad:
            convo.append({"Question": "Where is the defect?", "Answer": "A",
                          "Options": {"A": "Top left.", "B": "Center.", "C": "Bottom right."},
                          "type": "Defect Localization"})
        data[key] = {"conversation": convo, "mask_path": None, "random_templates": [tpl], "similar_templates": [tpl]}
    for rel in paths:
        img = Image.new("RGB", (side, int(side * 0.75)), (rng.randrange(90, 160),) * 3)
        draw = ImageDraw.Draw(img)
        draw.ellipse((side // 4, side // 8, 3 * side // 4, 5 * side // 8), fill=(200, 180, 60))
        if "scratch" in rel:
            draw.line((5, 5, side // 3, side // 4), fill=(20, 20, 20), width=3)
        p = out_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        img.save(p)
    (out_dir / "mmad.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    return out_dir / "mmad.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check-images", action="store_true")
    ap.add_argument("--record", action="store_true", help="keep per-request details (costs server CPU)")
    args = ap.parse_args()
    srv = FakeOpenAIServer(latency=args.latency, fault_rate=args.fault_rate, seed=args.seed,
                           check_images=args.check_images, record=args.record, port=args.port).start()
    print(srv.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
