"""The shared machinery of HTTP families (model_adapters/remote/), and what a new family gets from it.

A second family, defined here in a few lines against a small JSON endpoint served on 127.0.0.1,
implements only its request body, the call, the verdict on its client's errors and the reading of a
reply; concurrency, rate limits, retries, the response cache, key scrubbing and statistics come from
:class:`RemoteAdapter` without a line of its own.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
try:  # the HTTP client of the second family: whichever of httpx2 / httpx is installed
    import httpx2 as http
except ImportError:
    http = pytest.importorskip("httpx")

from fastapi import FastAPI  # noqa: E402
from fastapi import Request as HTTPRequest  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from fastapi.responses import Response as HTTPResponse  # noqa: E402

from mmeval.model_adapters.base import AdapterError, AdapterSettings  # noqa: E402
from mmeval.model_adapters.remote import (  # noqa: E402
    Failure,
    Malformed,
    Permanent,
    RemoteAdapter,
    RemoteOptions,
    Retry,
    Usage,
    key_env_field,
)
from mmeval.model_adapters.remote.cache import ResponseCache, cache_key  # noqa: E402
from mmeval.model_adapters.remote.retry import Fatal, RetryPolicy, http_failure  # noqa: E402
from mmeval.model_adapters.remote.secrets import Scrubber, check_env_name  # noqa: E402
from mmeval.prompting.messages import ImagePart, Message, Request, Response, TextPart  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "MMEVAL_TEST_ECHO_KEY"
KEY = "ek-" + secrets.token_hex(20)  # distinctive: must never come back out of the adapter


# ----------------------------------------------------------------------------------------- the service


class EchoServer:
    """``POST /v1/answer`` with ``{"model", "prompt", "options", "images"}`` -> ``{"answer", "tokens"}``.

    The answer is one of the options, chosen by a hash of the prompt. ``script`` lists what the first
    requests get instead (an HTTP status, or "malformed" for a body that is not JSON); ``status`` answers
    every request with that status, quoting the Authorization header (as some services do);
    ``echo_key`` puts the caller's Authorization header into the answer text.
    """

    def __init__(self, *, key: str = KEY, latency: float = 0.0, script: list[int | str] | None = None,
                 retry_after: str = "0", status: int | None = None, echo_key: bool = False) -> None:
        self.key, self.latency, self.retry_after = key, latency, retry_after
        self.script = list(script or [])
        self.status, self.echo_key = status, echo_key
        self.lock = threading.Lock()
        self.requests = self.in_flight = self.max_in_flight = 0
        self.times: list[float] = []
        self.images = 0
        self.app = FastAPI()
        self.app.post("/v1/answer")(self._answer)

    async def _answer(self, request: HTTPRequest) -> Any:
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.times.append(time.monotonic())
            scripted = self.script.pop(0) if self.script else None
        try:
            auth = request.headers.get("authorization", "")
            if auth != f"Bearer {self.key}":
                return JSONResponse({"error": f"unknown key {auth.removeprefix('Bearer ')}"}, status_code=401)
            body = await request.json()
            if self.latency:
                await asyncio.sleep(self.latency)
            if self.status is not None:
                return JSONResponse({"error": f"refused the request of {auth}"}, status_code=self.status)
            if scripted == "malformed":
                return HTTPResponse('{"answer": ', media_type="application/json")
            if scripted is not None:
                return JSONResponse({"error": "try later"}, status_code=int(scripted),
                                    headers={"Retry-After": self.retry_after})
            with self.lock:
                self.images += len(body["images"])
            text = self.choose(body["prompt"], body["options"])
            if self.echo_key:
                text += f" (asked with {auth})"
            return {"answer": text, "tokens": {"in": len(body["prompt"]) // 4, "out": 1}}
        finally:
            with self.lock:
                self.in_flight -= 1

    @staticmethod
    def choose(prompt: str, options: list[str]) -> str:
        return options[int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % len(options)]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> EchoServer:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "echo server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# ----------------------------------------------------------------------------------------- the family


class EchoOptions(RemoteOptions):
    api_key_env: str = key_env_field("ECHO_API_KEY")


class EchoAdapter(RemoteAdapter[EchoOptions]):
    """A whole HTTP family: the body, the call, the verdicts, the reply. Nothing else."""

    family = "echo"
    Options = EchoOptions

    async def open(self) -> None:
        self.client = http.AsyncClient(base_url=self.base_url, timeout=self.opts.request_timeout,
                                       headers={"Authorization": f"Bearer {self.key}"})

    async def aclose(self) -> None:
        await self.client.aclose()

    async def build_request(self, req: Request) -> dict[str, Any]:
        images = [await self.images.data_url(p.path, 64) for p in req.message.images]
        prompt = "".join(p.text for p in req.message.parts if isinstance(p, TextPart))
        return {"model": self.model, "prompt": prompt, "options": sorted(req.options), "images": images}

    async def send(self, body: dict[str, Any], payload: bytes) -> Any:
        reply = await self.client.post("/answer", content=payload, headers={"Content-Type": "application/json"})
        reply.raise_for_status()
        try:
            return reply.json()
        except ValueError:
            raise Malformed("not JSON") from None

    def classify(self, exc: Exception) -> Failure | None:
        if isinstance(exc, http.HTTPStatusError):
            return self.http_failure(exc.response.status_code, exc.response.text[:200], exc.response.headers)
        if isinstance(exc, http.TransportError):
            return Retry(f"transport error: {type(exc).__name__}")
        return None

    def to_response(self, req: Request, reply: Any) -> Response:
        if not isinstance(reply, dict) or not isinstance(reply.get("answer"), str):
            raise Malformed("no answer")
        return Response(id=req.id, text=reply["answer"])

    def usage(self, reply: Any) -> Usage:
        tokens = reply["tokens"]
        return Usage(tokens["in"], tokens["out"], tokens["in"] + tokens["out"])


PROTOCOL = {"open", "aclose", "build_request", "send", "classify", "to_response", "usage"}


def request(i: int, images: Sequence[str] = ()) -> Request:
    text = f"Question: is part {i} defective?\nA. Yes.\nB. No.\nAnswer:"
    parts = [ImagePart(path=p) for p in images] + [TextPart(text=text)]
    return Request(id=f"q{i}", task="Anomaly Detection", image="img.png", options={"A": "Yes.", "B": "No."},
                   message=Message(parts=parts))


def expected(req: Request) -> str:
    return EchoServer.choose("".join(p.text for p in req.message.parts if isinstance(p, TextPart)), ["A", "B"])


def adapter(srv: EchoServer, concurrency: int = 4, **options: Any) -> EchoAdapter:
    opts = EchoOptions(base_url=srv.base_url, api_key_env=KEY_ENV, **{"no_cache": True, **options})
    return EchoAdapter("echo-1", opts, AdapterSettings(concurrency=concurrency))


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


# ----------------------------------------------------------------------------------------- a second family


def test_the_family_implements_only_the_protocol() -> None:
    own = {name for name in vars(EchoAdapter) if not name.startswith("_")}
    assert own - {"family", "Options"} == PROTOCOL


def test_answers_in_parallel_with_images(tmp_path: Path) -> None:
    from PIL import Image

    img = tmp_path / "part.png"
    Image.new("RGB", (300, 200), (90, 90, 90)).save(img)
    reqs = [request(i, [str(img)]) for i in range(16)]
    with EchoServer(latency=0.25) as srv:
        a = adapter(srv, concurrency=4)
        t0 = time.monotonic()
        out = {r.id: r for r in a.predict(reqs)}
        elapsed = time.monotonic() - t0
        info = a.run_info()
        a.close()
    assert [out[r.id].text for r in reqs] == [expected(r) for r in reqs]
    assert 3 <= srv.max_in_flight <= 4 and info["max_in_flight"] == 4 and srv.images == 16
    assert elapsed < 16 * 0.25 / 2  # 4 rounds of 0.25 s; one at a time would take 4 s
    assert info["adapter"] == "echo" and info["questions"] == 16 and info["requests"] == 16
    assert info["prompt_tokens"] > 0 and info["estimated_cost_usd"] is None  # no price table: no cost


def test_images_encode_on_one_thread_per_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmeval.model_adapters.remote import images

    for cpus, workers in [(16, images.MAX_WORKERS), (1, 2), (None, 2), (5, 5)]:
        monkeypatch.setattr(images.os, "cpu_count", lambda cpus=cpus: cpus)
        assert images.default_workers() == workers
    encoder = images.ImageEncoder()  # five CPUs: five images at once, or the barrier times out
    barrier = threading.Barrier(5, timeout=10)
    try:
        assert sorted(f.result() for f in [encoder._pool.submit(barrier.wait) for _ in range(5)]) == list(range(5))
    finally:
        encoder.close()


def test_retries_honour_retry_after_and_give_up(tmp_path: Path) -> None:
    with EchoServer(script=[429], retry_after="1") as srv:
        a = adapter(srv, retry_base_delay=0.01)
        (resp,) = list(a.predict([request(0)]))
        info = a.run_info()
        a.close()
        gap = srv.times[1] - srv.times[0]
    assert resp.error is None and resp.text == expected(request(0))
    assert gap >= 0.95 and info["retries"] == 1 and info["rate_limited"] == 1
    with EchoServer(script=[503, "malformed", 503, 503]) as srv:
        a = adapter(srv, retry_base_delay=0.01, max_retries=2)
        (first,) = list(a.predict([request(0)]))  # 503, malformed, 503: gives up
        (second,) = list(a.predict([request(1)]))  # 503, then answered
        info = a.run_info()
        a.close()
    assert first.error is not None and first.error.startswith("gave up after 3 attempt(s): HTTP 503")
    assert second.error is None and second.text == expected(request(1))
    assert srv.requests == 5 and info["retries"] == 3 and info["errors"] == 1


def test_permanent_and_fatal_failures() -> None:
    with EchoServer(status=400) as srv:
        a = adapter(srv, retry_base_delay=0.01)
        out = list(a.predict([request(i) for i in range(3)]))
        a.close()
    assert srv.requests == 3 and all(r.error and "HTTP 400" in r.error and "(not retried)" in r.error for r in out)
    assert all(KEY not in str(r.error) and KEY[5:13] not in str(r.error) for r in out)  # quoted key scrubbed
    with EchoServer(key="another-key") as srv:  # rejects ours, quoting it
        a = adapter(srv)
        with pytest.raises(AdapterError) as exc:
            list(a.predict([request(i) for i in range(8)]))
        a.close()
    message = str(exc.value)
    assert "HTTP 401" in message and KEY_ENV in message and "echo:echo-1 at" in message
    assert KEY not in message and KEY[-10:] not in message


def test_rate_limit_paces_requests() -> None:
    with EchoServer() as srv:
        a = adapter(srv, concurrency=64, rpm=1200)  # 20 at once, then 20 per second
        t0 = time.monotonic()
        out = list(a.predict([request(i) for i in range(40)]))
        elapsed = time.monotonic() - t0
        a.close()
    assert len(out) == 40 and all(r.error is None for r in out) and elapsed > 0.85


def test_cache_hit_sends_nothing(tmp_path: Path) -> None:
    cache = str(tmp_path / "echo.sqlite")
    reqs = [request(i) for i in range(6)]
    with EchoServer() as srv:
        a = adapter(srv, cache=cache, no_cache=False)
        first = sorted((r.id, r.text) for r in a.predict(reqs))
        a.close()
        assert srv.requests == 6
        b = adapter(srv, cache=cache, no_cache=False)
        again = sorted((r.id, r.text) for r in b.predict(reqs))
        info = b.run_info()
        b.close()
        assert srv.requests == 6  # nothing sent the second time
    assert first == again and info["cache_hits"] == 6 and info["requests"] == 0 and info["cache"] == cache
    assert KEY.encode() not in Path(cache).read_bytes()


def test_a_cache_hit_decodes_no_image_and_a_changed_image_misses(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from mmeval.model_adapters.remote import images

    cache = str(tmp_path / "echo.sqlite")
    parts = [tmp_path / f"part{i}.png" for i in range(3)]
    for i, path in enumerate(parts):
        Image.new("RGB", (300, 200), (40 * i, 90, 90)).save(path)
    reqs = [request(i, [str(parts[i % 3])]) for i in range(9)]
    with EchoServer() as srv:
        a = adapter(srv, cache=cache, no_cache=False)
        first = sorted((r.id, r.text) for r in a.predict(reqs))
        a.close()
        assert srv.requests == 9 and srv.images == 9

        def no_decoding(path: str, max_side: int) -> str:
            raise AssertionError(f"{path} decoded for a cached answer")

        with monkeypatch.context() as m:
            m.setattr(images, "encode_image", no_decoding)
            b = adapter(srv, cache=cache, no_cache=False)
            again = sorted((r.id, r.text) for r in b.predict(reqs))
            info = b.run_info()
            b.close()
        assert first == again and info["cache_hits"] == 9 and info["errors"] == 0 and srv.requests == 9

        Image.new("RGB", (300, 200), (250, 10, 10)).save(parts[0])  # same path, new pixels: asked again
        c = adapter(srv, cache=cache, no_cache=False)
        list(c.predict(reqs))
        info = c.run_info()
        c.close()
        assert info["cache_hits"] == 6 and info["requests"] == 3 and srv.requests == 12


def test_an_image_is_named_by_what_decides_its_encoded_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from mmeval.model_adapters.remote import images

    one, same, other = (tmp_path / n for n in ("one.png", "same.png", "other.png"))
    Image.new("RGB", (64, 48), (1, 2, 3)).save(one)
    same.write_bytes(one.read_bytes())
    Image.new("RGB", (64, 48), (3, 2, 1)).save(other)
    name = images.image_name(str(one), 512)
    assert name == images.image_name(str(same), 512)  # the content, not the path
    assert hashlib.sha256(one.read_bytes()).hexdigest() in name
    assert name != images.image_name(str(other), 512) and name != images.image_name(str(one), 256)
    monkeypatch.setattr(images, "JPEG_QUALITY", 90)
    assert images.image_name(str(one), 512) != name
    monkeypatch.undo()
    monkeypatch.setattr("PIL.__version__", "0.0-other")
    assert images.image_name(str(one), 512) != name

    async def both() -> tuple[str, str]:
        encoder = images.ImageEncoder(workers=1)
        try:
            with images.naming_images():
                named = await encoder.data_url(str(one), 512)
            return named, await encoder.data_url(str(one), 512)  # outside the block: the data URL again
        finally:
            encoder.close()

    named, url = asyncio.run(both())
    assert named.startswith("image:sha256=") and url == images.encode_image(str(one), 512)


def test_the_key_is_scrubbed_from_answers_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    with EchoServer(echo_key=True, script=[500]) as srv:
        a = adapter(srv, retry_base_delay=0.01)
        (resp,) = list(a.predict([request(0)]))
        assert KEY not in repr(a)
        a.close()
    assert resp.text.startswith(expected(request(0)) + " (asked with Bearer ***")
    assert KEY not in resp.text and KEY[8:16] not in resp.text
    assert KEY not in caplog.text


def test_missing_key_and_required_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(AdapterError, match=KEY_ENV):
        EchoAdapter("m", EchoOptions(base_url="http://example.org/v1", api_key_env=KEY_ENV, no_cache=True))
    local = EchoAdapter("m", EchoOptions(base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV, no_cache=True))
    assert local.keyless and "placeholder" in str(local.run_info()["api_key"])
    local.close()
    with pytest.raises(AdapterError, match="base_url"):  # the family has no default endpoint
        EchoAdapter("m", EchoOptions(api_key_env=KEY_ENV, no_cache=True))


# ----------------------------------------------------------------------------------------- the pieces


def test_retry_policy_and_status_verdicts() -> None:
    a, b = RetryPolicy(5, 1.0, seed="s"), RetryPolicy(5, 1.0, seed="s")
    delays = [a.delay(n) for n in range(1, 6)]
    assert delays == [b.delay(n) for n in range(1, 6)]  # seeded jitter: reproducible
    assert all(0.5 * 2 ** (n - 1) <= d < 1.5 * 2 ** (n - 1) for n, d in enumerate(delays, 1))
    assert RetryPolicy(50, 1.0, seed="s").delay(30) < 90  # capped
    assert RetryPolicy(1, 0.0, seed="s").delay(1, retry_after=2.5) == 2.5
    verdict = http_failure(429, "slow down", {"retry-after": "3"}, where="x")
    assert isinstance(verdict, Retry) and verdict.rate_limited and verdict.retry_after == 3.0
    assert isinstance(http_failure(503, "", None, where="x"), Retry)
    assert isinstance(http_failure(400, "", None, where="x"), Permanent)
    fatal = http_failure(401, "bad", None, where="fam:m at host", key_hint="; see $K")
    assert isinstance(fatal, Fatal) and fatal.reason.startswith("fam:m at host: HTTP 401") and "$K" in fatal.reason
    assert "$K" not in http_failure(404, "", None, where="x", key_hint="; see $K").reason


def test_scrubber_and_env_names() -> None:
    scrub = Scrubber(KEY)
    assert scrub(f"x{KEY}y") == "x***y" and scrub("nothing") == "nothing" and scrub(None) is None
    assert scrub(f"head {KEY[:12]}... tail {KEY[-9:]}") == "head ***... tail ***"
    assert Scrubber("")("anything") == "anything"
    assert check_env_name("MY_KEY") == "MY_KEY"
    for bad in (KEY, "not a name", "sk-abc"):
        with pytest.raises(ValueError) as exc:
            check_env_name(bad)
        assert bad not in str(exc.value)


def test_cache_is_shared_between_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    writer = ("import sys; from pathlib import Path; from mmeval.model_adapters.remote.cache import ResponseCache\n"
              "c = ResponseCache(Path(sys.argv[1]))\n"
              "for i in range(200): c.put(f'child{i}', 'm', {'i': i})\n"
              "c.close()\n")
    child = subprocess.Popen([sys.executable, "-c", writer, str(path)])
    cache = ResponseCache(path)
    for i in range(200):
        cache.put(f"parent{i}", "m", {"i": i})
    assert child.wait(timeout=120) == 0
    assert all(cache.get(f"child{i}") == {"i": i} and cache.get(f"parent{i}") == {"i": i} for i in range(200))
    cache.close()
    assert cache_key("http://h/v1/", b"{}") == cache_key("http://h/v1", b"{}") != cache_key("http://h/v2", b"{}")


def test_remote_room_stays_below_the_run() -> None:
    """Adapters know nothing of scoring or the run loop, and import no HTTP client at module level."""
    files = sorted((ROOT / "model_adapters" / "remote").glob("*.py")) + [ROOT / "model_adapters" / "openai_api.py"]
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(("mmeval.run", "mmeval.report", "mmeval.scoring")), (path.name, name)
        top = [a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names]
        top += [n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)]
        assert not any(m.split(".")[0] in {"openai", "httpx", "httpx2", "PIL"} for m in top), path.name
