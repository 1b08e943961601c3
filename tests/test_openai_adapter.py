"""The OpenAI-compatible adapter against a real HTTP server on 127.0.0.1 (tests/fake_openai_server.py).

Runs go through the real CLI (``mmeval.cli.main``) on the bundled synthetic benchmark (built once into a
temporary MMEVAL_HOME), or on a tiny Pillow-drawn mmad.json when the synthetic generator is unavailable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from pathlib import Path

import pytest

pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fake_openai_server import FakeOpenAIServer, write_tiny_mmad  # noqa: E402

from mmeval.config import RunRecord  # noqa: E402
from mmeval.model_adapters import build_adapter  # noqa: E402
from mmeval.model_adapters.base import AdapterError, AdapterSettings  # noqa: E402
from mmeval.model_adapters.openai_api import (  # noqa: E402
    OpenAIAdapter,
    OpenAIOptions,
    letter_scores,
    price_for,
)
from mmeval.model_adapters.remote.ratelimit import TokenBucket  # noqa: E402
from mmeval.model_adapters.remote.retry import retry_after  # noqa: E402
from mmeval.model_adapters.remote.secrets import Scrubber  # noqa: E402
from mmeval.prompting.messages import ImagePart, Message, Request, Response, TextPart  # noqa: E402

KEY_ENV = "MMEVAL_TEST_OPENAI_KEY"
KEY = "sk-mmeval-test-" + secrets.token_hex(16)  # distinctive: must never reach a file or a log


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``--data`` value: the synthetic benchmark in a private MMEVAL_HOME, else a tiny fixture."""
    home = tmp_path_factory.mktemp("mmeval_home")
    old = os.environ.get("MMEVAL_HOME")
    os.environ["MMEVAL_HOME"] = str(home)
    try:
        try:
            from mmeval.data.synthetic.cache import ensure_synthetic

            ensure_synthetic()
            value = "synthetic"
        except ImportError:
            value = str(write_tiny_mmad(tmp_path_factory.mktemp("tiny"), n_images=24))
        yield value
    finally:
        if old is None:
            os.environ.pop("MMEVAL_HOME", None)
        else:
            os.environ["MMEVAL_HOME"] = old


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def run_cli(data: str, out: Path, srv: FakeOpenAIServer, *extra: str, limit: int = 40, model: str = "fake-vlm") -> int:
    from mmeval.cli import main

    args = ["run", "--model", f"openai:{model}", "--data", data, "--limit", str(limit), "--out", str(out),
            "-M", f"base_url={srv.base_url}", "-M", f"api_key_env={KEY_ENV}", "--no-progress", *extra]
    return main(args)


def read_preds(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines() if line]


def usage(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "usage.jsonl").read_text(encoding="utf-8").splitlines() if line]


def request(i: int, parts: list | None = None, options: dict | None = None) -> Request:
    options = options or {"A": "Yes.", "B": "No.", "C": "Maybe."}
    listed = "".join(f"{k}. {v}\n" for k, v in options.items())
    text = f"\nQuestion: Is there a defect number {i}?\n{listed}Answer:"
    return Request(id=f"q{i}", task="Anomaly Detection", image="img.png", options=options,
                   message=Message(parts=(parts or []) + [TextPart(text=text)]))


# ----------------------------------------------------------------------------------------- units


def test_options_registry_and_help() -> None:
    from mmeval.cli import build_parser

    fields = OpenAIOptions.model_fields
    assert OpenAIAdapter.answer_modes == ("generate", "likelihood") and fields["max_tokens"].default == 64
    assert fields["max_image_side"].default == 512 and fields["max_retries"].default == 5
    assert not any("key" == name or name.endswith("_key") for name in fields)  # only the variable's name
    parser = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
    for flag in ("--concurrency", "--answer-mode", "--model-arg", "mmeval models show"):
        assert flag in help_text
    docs = {d.name: d for d in OpenAIAdapter.option_docs()}
    for name in ("base_url", "api_key_env", "rpm", "tpm", "max_retries", "image_detail", "max_image_side", "cache",
                 "no_cache", "max_tokens"):
        assert name in docs and docs[name].help
    assert docs["rpm"].operational and not docs["max_tokens"].operational
    adapter = build_adapter("openai:gpt-4o", {"base_url": "http://127.0.0.1:9/v1", "api_key_env": KEY_ENV,
                                              "no_cache": True}, AdapterSettings(concurrency=16))
    assert isinstance(adapter, OpenAIAdapter) and adapter.batch_size >= 4 * 16 and adapter.concurrency == 16
    assert KEY not in repr(adapter) and KEY not in json.dumps(adapter.options.model_dump())
    adapter.close()


def test_key_handling(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Exception) as exc:  # the key pasted into --api-key-env is refused without being echoed
        OpenAIOptions(api_key_env=KEY)
    assert KEY not in str(exc.value)
    monkeypatch.delenv("MMEVAL_TEST_UNSET", raising=False)
    with pytest.raises(AdapterError, match="MMEVAL_TEST_UNSET"):
        OpenAIAdapter("gpt-4o", OpenAIOptions(api_key_env="MMEVAL_TEST_UNSET", no_cache=True))
    local = OpenAIAdapter("m", OpenAIOptions(base_url="http://localhost:8000/v1", api_key_env="MMEVAL_TEST_UNSET",
                                             no_cache=True))
    assert "placeholder" in str(local.run_info()["api_key"])
    scrub = Scrubber(KEY)
    assert scrub(f"bad key {KEY}!") == "bad key ***!"
    assert KEY[3:20] not in (scrub(f"Incorrect API key provided: {KEY[:18]}****{KEY[-6:]}") or "")


def test_letter_scores_and_helpers() -> None:
    top = [{"token": "B", "logprob": -0.1}, {"token": " B", "logprob": -2.0}, {"token": "(A", "logprob": -3.0},
           {"token": "The", "logprob": -5.0}, {"token": "a", "logprob": -6.0}]
    scores = letter_scores(top, ["A", "B", "C"])
    assert scores is not None and set(scores) == {"A", "B", "C"}
    assert max(scores, key=scores.get) == "B" and scores["B"] > -0.1  # " B" adds to "B"
    assert scores["A"] == -3.0 and scores["C"] == -7.0  # C absent: one nat below the lowest listed
    assert letter_scores([{"token": "The", "logprob": -0.1}], ["A", "B"]) is None
    assert retry_after({"retry-after": "2"}) == 2.0 and retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert price_for("gpt-4o") == (2.50, 10.00) and price_for("gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert price_for("Qwen/Qwen2-VL-7B-Instruct") is None


def test_an_impossible_letter_never_wins_and_a_nan_one_spoils_the_answer() -> None:
    from mmeval.answers import choose

    inf = float("inf")
    options = {"A": "Yes.", "B": "No.", "C": "Maybe."}
    top = [{"token": "A", "logprob": -inf}, {"token": "B", "logprob": -0.7}, {"token": "C", "logprob": -1.2}]
    scores = letter_scores(top, list(options))
    assert scores is not None and scores["A"] == -inf and scores["B"] == -0.7
    assert choose(Response(id="q", text="A", scores=scores), options) == "B"
    # every listed entry of a letter impossible: the letter is; letters not listed stay below the finite entries
    scores = letter_scores([{"token": "A", "logprob": -inf}, {"token": " A", "logprob": -inf},
                            {"token": "B", "logprob": -2.0}], list(options))
    assert scores == {"A": -inf, "B": -2.0, "C": -3.0}
    # one impossible spelling of a letter beside a possible one: the possible one counts
    assert letter_scores([{"token": " A", "logprob": -inf}, {"token": "A", "logprob": -0.5}], ["A", "B"]) == \
        {"A": -0.5, "B": -1.5}
    # a NaN for a letter: its score is unusable, and with it the answer (never read from the other letters alone)
    scores = letter_scores([{"token": "A", "logprob": float("nan")}, {"token": "B", "logprob": -2.0}], ["A", "B"])
    assert scores is not None and scores["A"] != scores["A"]
    assert choose(Response(id="q", text="B", scores=scores), {"A": "Yes.", "B": "No."}) is None
    # +inf is no log-probability: unusable too, never clipped to a certain 0.0
    scores = letter_scores([{"token": "A", "logprob": inf}, {"token": "B", "logprob": -2.0}], ["A", "B"])
    assert scores is not None and scores["A"] == inf
    assert choose(Response(id="q", text="A", scores=scores), {"A": "Yes.", "B": "No."}) is None


def test_token_bucket_paces() -> None:
    async def go() -> float:
        bucket = TokenBucket(1200)  # 20 per second, bursts of 20
        t0 = time.monotonic()
        for _ in range(40):
            await bucket.take(1)
        return time.monotonic() - t0

    assert 0.85 < asyncio.run(go()) < 3


# ----------------------------------------------------------------------------------------- adapter


def test_message_mapping_and_image_resize(tmp_path: Path) -> None:
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("RGB", (1000, 700), (120, 30, 30)).save(big)
    small = tmp_path / "small.png"
    Image.new("L", (40, 30), 90).save(small)
    parts = [TextPart(text="Template:"), ImagePart(path=str(small), role="template"), TextPart(text="Query:"),
             ImagePart(path=str(big))]
    with FakeOpenAIServer(check_images=True) as srv:
        adapter = OpenAIAdapter("fake-vlm", OpenAIOptions(base_url=srv.base_url, api_key_env=KEY_ENV,
                                                          image_detail="low", cache=str(tmp_path / "c.sqlite")))
        (resp,) = list(adapter.predict([request(0, parts)]))
        adapter.close()
        body = srv.bodies[-1]
        assert srv.max_image_side == 512
    assert resp.error is None and resp.text in "ABC" and resp.usage and resp.usage["prompt_tokens"] > 0
    (msg,) = body["messages"]
    assert msg["role"] == "user"
    assert [p["type"] for p in msg["content"]] == ["text", "image_url", "text", "image_url", "text"]
    assert msg["content"][0]["text"] == "Template:" and msg["content"][2]["text"] == "Query:"
    assert msg["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert msg["content"][1]["image_url"]["detail"] == "low"
    assert body["temperature"] == 0 and body["max_tokens"] == 64 and "logprobs" not in body


def test_retry_after_is_honoured_and_connection_errors(tmp_path: Path) -> None:
    opts = dict(api_key_env=KEY_ENV, retry_base_delay=0.01, no_cache=True)
    with FakeOpenAIServer(fail_first=1, fail_status=429, retry_after="1") as srv:
        adapter = OpenAIAdapter("fake-vlm", OpenAIOptions(base_url=srv.base_url, **opts))
        (resp,) = list(adapter.predict([request(0)]))
        info = adapter.run_info()
        adapter.close()
        gap = srv.request_times[1] - srv.request_times[0]
    assert resp.error is None and srv.requests == 2 and gap >= 0.95
    assert info["retries"] == 1 and info["rate_limited"] == 1


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_connection_errors_and_timeouts_per_transport(transport: str) -> None:
    """Both transports say 'connection error' for a refused connection and 'timed out' for a slow server
    (the aiohttp transport reports both as timeouts; the adapter tells them apart)."""
    if transport == "aiohttp":
        pytest.importorskip("aiohttp")
    opts = dict(api_key_env=KEY_ENV, retry_base_delay=0.01, no_cache=True, transport=transport, max_retries=1)
    dead = OpenAIAdapter("fake-vlm", OpenAIOptions(base_url="http://127.0.0.1:9/v1", **opts))
    (resp,) = list(dead.predict([request(0)]))
    dead.close()
    assert resp.error and "connection" in resp.error and "2 attempt" in resp.error
    with FakeOpenAIServer(latency=1.5) as srv:
        slow = OpenAIAdapter("fake-vlm", OpenAIOptions(base_url=srv.base_url, request_timeout=0.2, **opts))
        (resp,) = list(slow.predict([request(0)]))
        client = type(slow._client._client).__name__
        slow.close()
    assert resp.error and "timed out after 0.2 s" in resp.error and "2 attempt" in resp.error
    assert ("aiohttp" in client.lower()) == (transport == "aiohttp"), client


def test_auto_transport_keeps_httpx_behind_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("aiohttp")
    clients = {}
    for proxy in ("", "http://proxy.invalid:3128"):
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.setenv("https_proxy", proxy)
        adapter = OpenAIAdapter("fake-vlm", OpenAIOptions(base_url="https://api.example.invalid/v1",
                                                          api_key_env=KEY_ENV, no_cache=True))
        clients[proxy] = type(adapter._http_client(__import__("openai"))).__name__
    assert "aiohttp" in clients[""].lower() and clients["http://proxy.invalid:3128"] == "NoneType", clients


def test_without_aiohttp_auto_keeps_httpx_and_asking_for_aiohttp_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import openai

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aiohttp" else real(name, *a))
    for choice in ("auto", "aiohttp"):
        adapter = OpenAIAdapter("fake-vlm", OpenAIOptions(base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV,
                                                          no_cache=True, transport=choice))
        if choice == "auto":
            assert adapter._http_client(openai) is None
        else:
            with pytest.raises(AdapterError, match="pip install -U 'openai\\[aiohttp\\]'"):
                adapter._http_client(openai)


def test_unreadable_image_and_early_stop(tmp_path: Path) -> None:
    with FakeOpenAIServer(latency=0.3) as srv:
        adapter = OpenAIAdapter("fake-vlm", OpenAIOptions(base_url=srv.base_url, api_key_env=KEY_ENV, no_cache=True),
                                AdapterSettings(concurrency=4))
        bad = request(0, [ImagePart(path=str(tmp_path / "missing.png"))])
        (resp,) = list(adapter.predict([bad]))
        assert resp.error and "cannot prepare the request" in resp.error
        gen = adapter.predict([request(i) for i in range(1, 17)])
        first = next(gen)
        gen.close()  # the runner stopped (Ctrl-C, an exception): what is not in flight is never sent
        time.sleep(0.8)
        adapter.close()
    assert first.error is None and srv.requests <= 8


def test_rpm_limit(tmp_path: Path) -> None:
    with FakeOpenAIServer() as srv:
        opts = OpenAIOptions(base_url=srv.base_url, api_key_env=KEY_ENV, rpm=1200, tpm=10_000_000, no_cache=True)
        adapter = OpenAIAdapter("fake-vlm", opts, AdapterSettings(concurrency=64))
        t0 = time.monotonic()
        out = list(adapter.predict([request(i) for i in range(40)]))
        elapsed = time.monotonic() - t0
        adapter.close()
    assert len(out) == 40 and all(r.error is None for r in out)
    assert elapsed > 0.85  # 20 at once, then 20 per second


# ----------------------------------------------------------------------------------------- through the CLI


def test_faults_every_question_answered_or_error(data: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # seed 6: the first 60 draws inject 12 faults covering every kind (the draw sequence is seeded)
    with FakeOpenAIServer(fault_rate=0.2, seed=6, retry_after="0", slow_seconds=1.3) as srv:
        rc = run_cli(data, out, srv, "--concurrency", "8", "-M", "retry_base_delay=0.01", "-M", "request_timeout=1",
                     "-M", f"cache={tmp_path / 'cache.sqlite'}", limit=60)
        faults = dict(srv.fault_counts)
    assert rc == 0
    preds = read_preds(out)
    ids = [p["id"] for p in preds]
    assert len(ids) == len(set(ids)) == 60  # every question exactly once, none dropped
    for p in preds:
        assert (p["error"] is not None) != bool(p["response"] or p["note"]), p
    # (a refusal the client timed out on, on a very busy machine, is retried and answered normally)
    assert 1 <= sum(1 for p in preds if p["note"] == "refusal") <= faults["refusal"]
    assert 1 <= sum(1 for p in preds if p["note"] == "empty") <= faults["empty"]
    assert all(p["choice"] is None for p in preds if p["note"])
    assert set(faults) == {"429", "500", "slow", "malformed", "refusal", "empty"}  # every kind did happen
    (info,) = usage(out)
    assert info["retries"] >= faults.get("429", 0) + faults.get("500", 0) + faults.get("malformed", 0)
    assert info["requests"] == srv.requests and info["errors"] == sum(1 for p in preds if p["error"])


def test_resume_sends_only_missing_and_failed(data: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cache = ["-M", f"cache={tmp_path / 'cache.sqlite'}", "-M", "max_retries=0"]
    with FakeOpenAIServer(fault_rate=0.5, faults=("500",), seed=3) as srv:
        assert run_cli(data, out, srv, *cache, limit=20) == 3  # questions ended in errors: an incomplete run
        first = read_preds(out)
        failed = [p["id"] for p in first if p["error"]]
        assert len(first) == 20 and 0 < len(failed) < 20
        assert all("HTTP 500" in p["error"] for p in first if p["error"])
        srv.fault_rate = 0.0
        srv.reset_counts()
        assert run_cli(data, out, srv, *cache, limit=30) == 0  # --limit is not part of the config
        assert srv.requests == len(failed) + 10  # the failed ones and the new ones, nothing else
    final = read_preds(out)
    assert len(final) == 30 and not any(p["error"] for p in final)
    assert {p["id"]: p for p in final}.keys() >= {p["id"] for p in first}


def test_cache_hit_sends_nothing(data: str, tmp_path: Path) -> None:
    cache = ["-M", f"cache={tmp_path / 'cache.sqlite'}"]
    with FakeOpenAIServer() as srv:
        assert run_cli(data, tmp_path / "a", srv, *cache, model="gpt-4o-mini", limit=24) == 0
        assert srv.requests == 24
        srv.reset_counts()
        assert run_cli(data, tmp_path / "b", srv, *cache, model="gpt-4o-mini", limit=24) == 0  # a new run dir
        assert srv.requests == 0
    a, b = read_preds(tmp_path / "a"), read_preds(tmp_path / "b")
    assert [(p["id"], p["response"], p["choice"]) for p in a] == [(p["id"], p["response"], p["choice"]) for p in b]
    ua, ub = usage(tmp_path / "a")[0], usage(tmp_path / "b")[0]
    assert ua["cache_hits"] == 0 and ua["prompt_tokens"] > 0 and ua["estimated_cost_usd"] > 0
    assert ub["cache_hits"] == 24 and ub["requests"] == 0 and ub["estimated_cost_usd"] == 0
    totals = json.loads((tmp_path / "a" / "scores.json").read_text())["usage"]["totals"]
    assert totals["prompt_tokens"] == ua["prompt_tokens"] and totals["estimated_cost_usd"] == ua["estimated_cost_usd"]


def test_concurrency_overlaps_requests(data: str, tmp_path: Path) -> None:
    with FakeOpenAIServer(latency=0.25) as srv:
        assert run_cli(data, tmp_path / "run", srv, "--concurrency", "8", "-M", "no_cache=true", limit=40) == 0
    assert 6 <= srv.max_in_flight <= 8
    timings = [json.loads(line) for line in (tmp_path / "run" / "timings.jsonl").read_text().splitlines()]
    answering = sum(t["batch_seconds"] for t in timings if "batch_seconds" in t)
    assert answering < 40 * 0.25 / 3  # 5 rounds of 0.25 s; one at a time would take 10 s
    assert len(read_preds(tmp_path / "run")) == 40 and usage(tmp_path / "run")[0]["max_in_flight"] == 8


def test_likelihood_mode_scores_every_option(data: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with FakeOpenAIServer() as srv:
        assert run_cli(data, out, srv, "--answer-mode", "likelihood", "-M", "no_cache=true", limit=30) == 0
        body = srv.bodies[-1]
    assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] == 20
    preds = read_preds(out)
    assert len(preds) == 30
    for p in preds:
        assert p["error"] is None and p["scores"] is not None
        assert set(p["scores"]) == set(p["options"])
        assert p["choice"] in p["options"] and p["choice"] == max(p["scores"], key=p["scores"].get)
        assert p["choice"] == p["response"].strip()  # the fake server's own pick


def test_key_never_written_or_logged(data: str, tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cache_dir = tmp_path / "cache"
    with FakeOpenAIServer(api_key=KEY, fault_rate=0.3, seed=5, retry_after="0") as srv:
        assert run_cli(data, tmp_path / "ok", srv, "-M", f"cache={cache_dir / 'c.sqlite'}", "-M", "max_retries=1",
                       "-M", "retry_base_delay=0", limit=20) in (0, 3)  # 3: faults left some questions unanswered
    with FakeOpenAIServer(api_key="some-other-key") as srv:  # rejects ours and echoes it back, as OpenAI does
        rc = run_cli(data, tmp_path / "rejected", srv, "-M", f"cache={cache_dir / 'c.sqlite'}", limit=5)
    captured = capfd.readouterr()
    assert rc == 2 and KEY_ENV in captured.err and "401" in captured.err
    needles = [KEY.encode(), KEY[8:24].encode()]
    files = [p for root in (tmp_path, Path(os.environ["MMEVAL_HOME"])) for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "predictions.jsonl" for p in files) and any(p.suffix == ".sqlite" for p in files)
    for path in files:
        blob = path.read_bytes()
        assert not any(n in blob for n in needles), f"API key found in {path}"
    for text in (captured.out, captured.err, caplog.text):
        assert KEY not in text and KEY[8:24] not in text


# ----------------------------------------------------------------------------------------- identity, usage, outages


def test_a_new_checkpoint_behind_the_same_name_never_gets_the_old_answers(data: str, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    cache = ["-M", f"cache={tmp_path / 'cache.sqlite'}"]
    with FakeOpenAIServer(served_root="/models/ckpt-1") as srv:
        assert run_cli(data, tmp_path / "a", srv, *cache, limit=12) == 0
        assert srv.requests == 12
        srv.reset_counts()
        capsys.readouterr()
        assert run_cli(data, tmp_path / "b", srv, *cache, limit=12) == 0  # same checkpoint: all from the cache
        assert srv.requests == 0
        assert "12 of the answers asked this time came from the response cache" in capsys.readouterr().err
        srv.served_root = "/models/ckpt-2"  # the server now serves other weights under the same name
        assert run_cli(data, tmp_path / "c", srv, *cache, limit=12) == 0
        assert srv.requests == 12
        srv.reset_counts()
        assert run_cli(data, tmp_path / "d", srv, *cache, "-M", "revision=2026-11-30", limit=12) == 0
        assert srv.requests == 12  # a revision the user names is part of the key too
    assert usage(tmp_path / "c")[0]["server_model"] == {"id": "fake-vlm", "root": "/models/ckpt-2"}
    a, d = RunRecord.read(tmp_path / "a" / "run.json"), RunRecord.read(tmp_path / "d" / "run.json")
    assert a.digest != d.digest  # and of the run's identity


def test_a_key_echoed_in_a_reply_never_reaches_the_cache(data: str, tmp_path: Path) -> None:
    with FakeOpenAIServer(echo_key=True) as srv:
        assert run_cli(data, tmp_path / "r", srv, "-M", f"cache={tmp_path / 'c.sqlite'}", limit=6) == 0
    assert KEY.encode() not in (tmp_path / "c.sqlite").read_bytes()
    assert all(KEY not in p["response"] for p in read_preds(tmp_path / "r"))


@pytest.mark.parametrize("block", ["garbage", {"prompt_tokens": "many"}, {"prompt_tokens": -3}, None, [1, 2]])
def test_an_unreadable_usage_block_leaves_the_answers_valid(data: str, tmp_path: Path, block: object) -> None:
    with FakeOpenAIServer(usage=block) as srv:
        assert run_cli(data, tmp_path / "r", srv, "-M", "no_cache=true", limit=8) == 0
    preds = read_preds(tmp_path / "r")
    assert len(preds) == 8 and not any(p["error"] for p in preds) and all(p["choice"] for p in preds)


def test_a_dead_server_stops_the_run_quickly_and_keeps_the_answers(data: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    import socket

    from mmeval.cli import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["-M", "no_cache=true", "-M", "retry_base_delay=0.01", "-M", "max_connection_failures=6"]
    with FakeOpenAIServer(port=port) as srv:
        assert run_cli(data, tmp_path / "r", srv, *args, limit=5) == 0
    start = time.monotonic()  # the server is gone now; the same run, asked for more
    rc = main(["run", "--model", "openai:fake-vlm", "--data", data, "--limit", "20", "--out", str(tmp_path / "r"),
               "-M", f"base_url=http://127.0.0.1:{port}/v1", "-M", f"api_key_env={KEY_ENV}", *args, "--no-progress"])
    assert rc == 2 and time.monotonic() - start < 60
    err = capsys.readouterr().err
    assert "could not reach the server" in err and "Answers so far are kept" in err
    assert len(read_preds(tmp_path / "r")) == 5 and not any(p["error"] for p in read_preds(tmp_path / "r"))
