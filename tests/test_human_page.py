"""The annotation page in a real browser: Debian's chromium driven by playwright, against `mmeval human serve` run as
a separate process (so it can be killed). Without chromium these tests skip on a developer's machine and fail in CI.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from browser import LAUNCH_ARGS, require_playwright

from mmeval.cli import main
from mmeval.data import load_benchmark, resolve
from mmeval.data.subset import Subset, draw, ids_digest
from mmeval.predictions import read_predictions

pytestmark = pytest.mark.slow
ANNOTATORS = ["alice", "bob", "carol", "dave", "erin"]
ITEM_KEYS = {"n", "block", "task", "question", "options", "yes_no", "images", "given", "can_go_back"}


class Server:
    """`mmeval human serve` in its own process; its URLs read from what it prints."""

    def __init__(self, out: Path, data: Path, annotators: list[str], *args: str, port: int = 0) -> None:
        self.out, self.log = out, out.parent / f"{out.name}-serve.log"
        self.cmd = [sys.executable, "-m", "mmeval", "human", "serve", "--data", str(data), "--out", str(out),
                    "--annotators", ",".join(annotators), "--port", str(port), *args]
        self.names = annotators
        self.proc: subprocess.Popen[bytes] | None = None
        self.urls: dict[str, str] = {}
        self.detection = 0  # questions in the detection block

    def start(self) -> dict[str, str]:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        stdout = self.out.parent / f"{self.out.name}-urls.txt"
        with open(stdout, "wb") as out, open(self.log, "ab") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=err, env=os.environ.copy())
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            lines = [line for line in stdout.read_text().splitlines() if ": http" in line]
            if len(lines) == len(self.names):
                self.urls = dict(line.split(": ", 1) for line in lines)
                return self.urls
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.1)
        raise AssertionError(f"the server printed no URLs: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium for these tests (every browser test of the suite is in this module); each test opens contexts
    of its own. Not session-wide: playwright's sync API keeps an event loop running in this thread while it is
    active, where later tests' asyncio.run() would fail."""
    require_playwright()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def big(synthetic_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Subset]]:
    """A 350-question sample of the bundled benchmark served to five annotators (2 practice questions each)."""
    require_playwright()
    json_path, root = resolve(str(synthetic_demo))
    questions = load_benchmark(json_path, root, shots=1).questions
    drawn = draw(questions, 25, seed=0).ids  # 348: two cells hold only 24
    extra = [q.id for q in questions if q.id not in set(drawn) and q.task != "Anomaly Detection"][:350 - len(drawn)]
    ids = [q.id for q in questions if q.id in set(drawn) | set(extra)]
    sample = Subset(digest=ids_digest(ids), per_type=25, seed=0, source=str(json_path), ids=ids)
    folder = tmp_path_factory.mktemp("human-big")
    sample.write(folder / "sample.json")
    server = Server(folder / "panel", synthetic_demo, ANNOTATORS, "--subset", str(folder / "sample.json"),
                    "--practice", "2")
    server.start()
    server.detection = sum(q.task == "Anomaly Detection" for q in questions if q.id in set(ids))
    yield server, sample
    server.stop()


def _page(browser: Any, url: str, **context: Any) -> Any:
    page = browser.new_context(viewport={"width": 1400, "height": 900}, **context).new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.problems = problems
    page.goto(url)
    return page


def _shown(page: Any, n: int, kind: str = "question") -> None:
    page.wait_for_selector(f'body[data-shown="{kind}:{n}"]', state="attached")


def _mode(page: Any, mode: str) -> None:
    page.wait_for_selector(f'body[data-mode="{mode}"]', state="attached")


def _options(page: Any) -> tuple[list[str], dict[str, str]]:
    """The option letters on screen, and which letter the Y and N keys give."""
    rows = page.eval_on_selector_all(
        "#options li",
        "els => els.map(e => [e.dataset.letter, [...e.querySelectorAll('kbd')].map(k => k.textContent)])")
    letters = [letter for letter, _ in rows]
    yes_no = {k: letter for letter, keys in rows for k in keys if k in ("Y", "N")}
    return letters, yes_no


def _through_practice(page: Any, practice: int) -> None:
    """Guidelines, the practice questions (with their feedback) and the start screen, by keys only."""
    _mode(page, "guidelines")
    page.keyboard.press("Enter")
    for i in range(practice):
        _shown(page, i, "practice")
        page.keyboard.press("1")
        _mode(page, "feedback")
        assert page.text_content("#feedback").startswith(("Right", "Not quite"))
        page.keyboard.press("Enter")
    _mode(page, "message")
    page.keyboard.press("Enter")


def _lines(run: Path) -> list[Any]:
    path = run / "predictions.jsonl"
    return read_predictions(path) if path.is_file() else []


def test_an_inspector_answers_350_questions_by_keys_alone(big: tuple[Server, Subset], browser: Any,
                                                          synthetic_demo: Path, tmp_path: Path) -> None:
    server, sample = big
    page = _page(browser, server.urls["alice"])
    _through_practice(page, 2)
    run = server.out / "human-alice"
    detection = server.detection
    pressed: list[str] = []
    waits: list[float] = []
    for n in range(350):
        _shown(page, n)
        block = page.get_attribute("body", "data-block")
        assert block == ("detection" if n < detection else "main"), n  # nothing else before the block ends
        letters, yes_no = _options(page)
        if yes_no and n % 2 == 0:
            key, letter = ("y", yes_no["Y"]) if n % 4 == 0 else ("n", yes_no["N"])
        elif n % 3 == 0:
            key, letter = letters[-1].lower(), letters[-1]  # the letter itself
        elif n % 3 == 1:
            key, letter = str(len(letters)), letters[-1]
        else:
            key, letter = "2", letters[1]
        pressed.append(letter)
        if n == detection:  # the block is closed: back does not reopen it, nor does the server
            page.keyboard.press("Backspace")
            assert page.get_attribute("body", "data-shown") == f"question:{n}"
            assert page.request.get(server.urls["alice"] + "/item/0").status == 409
        if n == 1:  # while the detection block is open, no later question is served
            assert page.request.get(server.urls["alice"] + f"/item/{detection}").status == 409
        start = time.perf_counter()
        page.keyboard.press(key)
        if n == detection - 1:
            _mode(page, "message")
            page.keyboard.press("Enter")
        if n + 1 < 350:
            _shown(page, n + 1)
            waits.append(time.perf_counter() - start)
        if n == 19:
            lines = _lines(run)
            assert len(lines) == 20 and [p.choice for p in lines] == pressed
    _mode(page, "finished")
    assert page.get_attribute("#progress", "value") == "350"
    lines = _lines(run)
    assert len(lines) == 350 and len({p.id for p in lines}) == 350 and [p.choice for p in lines] == pressed
    assert {p.id for p in lines} == set(sample.ids) and {p.model for p in lines} == {"human:alice"}
    assert not page.problems, page.problems
    # fast with 350 questions: the next one is on screen well within a blink
    assert statistics.median(waits) < 0.5 and max(waits) < 5, (statistics.median(waits), max(waits))
    page.context.close()

    # a model on the same sample; compare lists human:alice with McNemar's p-values and the measured panel
    model = tmp_path / "random"
    assert main(["run", "--model", "random", "--data", str(synthetic_demo), "--subset",
                 str(server.out / "subset.json"), "--out", str(model), "--no-progress"]) == 0
    panel = json.loads((model / "human_panel.json").read_text())
    assert panel["subset"] == sample.digest and "human:alice" in [h["label"] for h in panel["humans"]]
    assert main(["compare", str(model), str(run), "--out", str(tmp_path / "cmp")]) == 0
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    test = cmp["tests"][0]
    assert test["b"].startswith("human:alice")
    assert {r["task"] for r in test["mcnemar"]} >= {"Anomaly Detection", "All"}
    assert all(0 <= r["p"] <= 1 for r in test["mcnemar"]) and test["mcnemar"][-1]["paired"] == 350
    alice = next(h for h in cmp["human_panel"]["humans"] if h["label"] == "human:alice")
    assert alice["answered"] == 350 and all(t["median_seconds"] is not None for t in alice["tasks"])
    assert "Measured human panel" in (tmp_path / "cmp" / "compare.html").read_text()


def test_two_annotators_at_once_azerty_and_qwertz(big: tuple[Server, Subset], browser: Any) -> None:
    server, _ = big
    bob, carol = _page(browser, server.urls["bob"]), _page(browser, server.urls["carol"])
    _through_practice(bob, 2)
    _through_practice(carol, 2)
    expect: dict[str, list[str]] = {"bob": [], "carol": []}
    for n in range(4):  # side by side, turn about
        for name, page, key in (("bob", bob, "1"), ("carol", carol, "2")):
            _shown(page, n)
            letters, _ = _options(page)
            expect[name].append(letters[int(key) - 1])
            page.keyboard.press(key)
    # carol's keyboard is French, then German: physical keys, as the browser reports them (trusted key events)
    cdp = carol.context.new_cdp_session(carol)

    def press(key: str, code: str, vk: int) -> None:
        for kind in ("keyDown", "keyUp"):
            cdp.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": code, "text": key,
                                                "windowsVirtualKeyCode": vk})

    _shown(carol, 4)
    letters, yes_no = _options(carol)
    press("&", "Digit1", 49)  # AZERTY: the key labelled 1 types "&" without shift
    expect["carol"].append(letters[0])
    _shown(carol, 5)
    letters, yes_no = _options(carol)
    press("a", "KeyQ", 65)  # AZERTY: the A key sits where QWERTY has Q
    expect["carol"].append("A")
    _shown(carol, 6)
    letters, yes_no = _options(carol)
    press("y", "KeyZ", 89)  # QWERTZ: the Y key sits where QWERTY has Z
    expect["carol"].append(yes_no["Y"])
    _shown(carol, 7)
    letters, yes_no = _options(carol)
    press("2", "Numpad2", 98)  # the keypad with NumLock on
    expect["carol"].append(letters[1])
    _shown(carol, 8)
    for name in ("bob", "carol"):
        lines = _lines(server.out / f"human-{name}")
        assert [p.choice for p in lines] == expect[name] and {p.model for p in lines} == {f"human:{name}"}
    base = server.urls["bob"].rsplit("/a/", 1)[0]
    assert bob.goto(base + "/a/mallory").status == 403  # not on the panel
    assert bob.request.get(base + "/a/mallory/state").status == 403
    for page in (bob, carol):
        page.context.close()


def test_time_per_answer_on_a_controlled_clock(big: tuple[Server, Subset], browser: Any) -> None:
    import datetime

    server, _ = big
    start = datetime.datetime(2030, 1, 1, 8, 0, 0)
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.clock.install(time=start)
    page.goto(server.urls["dave"])
    _mode(page, "guidelines")
    page.clock.pause_at(start + datetime.timedelta(minutes=5))  # from here on time moves only when told
    page.keyboard.press("Enter")
    for i in range(2):
        _shown(page, i, "practice")
        page.keyboard.press("1")
        _mode(page, "feedback")
        page.keyboard.press("Enter")
    _mode(page, "message")
    page.keyboard.press("Enter")
    _shown(page, 0)
    page.clock.run_for(4_000)
    page.keyboard.press("1")  # 4 s looking
    _shown(page, 1)
    page.clock.run_for(45_000)
    page.keyboard.press("1")  # 45 s without input: 15 s of it beyond the 30 s idle limit
    _shown(page, 2)
    page.evaluate("""() => { Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
                              document.dispatchEvent(new Event('visibilitychange')); }""")
    page.clock.run_for(10_000)  # 10 s in another tab
    page.evaluate("""() => { Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});
                              document.dispatchEvent(new Event('visibilitychange')); }""")
    page.clock.run_for(2_000)
    page.keyboard.press("1")
    _shown(page, 3)
    timings = [json.loads(line) for line in (server.out / "human-dave" / "timings.jsonl").read_text().splitlines()]
    got = [(t["seconds"], t["shown_seconds"], t["hidden_seconds"], t["idle_seconds"]) for t in timings]
    assert got == [(4.0, 4.0, 0.0, 0.0), (30.0, 45.0, 0.0, 15.0), (2.0, 12.0, 10.0, 0.0)]
    from mmeval.report.analysis import load_run
    from mmeval.report.human_panel import measure

    measured = measure(load_run(server.out / "human-dave"), n_boot=10)
    assert measured.of("Anomaly Detection").median_seconds == 4.0  # the median per task, as reports show it
    context.close()


def test_no_answer_leaks_and_the_page_needs_nothing_from_outside(big: tuple[Server, Subset], browser: Any) -> None:
    server, sample = big
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    outside: list[str] = []

    def only_this_machine(route: Any) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_machine)
    seen: list[tuple[str, dict[str, str], bytes]] = []
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("response", lambda res: seen.append((res.url, res.headers, res.body())))
    page.goto(server.urls["erin"])
    _through_practice(page, 2)
    for n in range(6):
        _shown(page, n)
        loaded = page.eval_on_selector_all("#images img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
        assert loaded and all(loaded), n  # every image is on screen
        if n == 0:  # Z: the query at full resolution (every pixel at least once), Escape closes it
            page.keyboard.press("z")
            assert page.is_visible("#zoom")
            query = page.eval_on_selector("figure.query img", "e => [e.src, e.naturalWidth]")
            zoomed = page.eval_on_selector("#zoom-img", "e => [e.src, e.naturalWidth, e.width]")
            assert zoomed[:2] == query and zoomed[2] >= query[1] and zoomed[2] % query[1] == 0
            page.keyboard.press("Escape")
            assert not page.is_visible("#zoom")
        page.keyboard.press("1")
    _shown(page, 6)
    assert page.evaluate("fetch('https://cdn.jsdelivr.net/x.js').then(() => 'reached', () => 'refused')") == "refused"
    context.close()
    # nothing the page asked for lies outside this machine (the CDN request above was refused by the page itself)
    assert outside in ([], ["https://cdn.jsdelivr.net/x.js"])
    keys = {i.rpartition("#")[0] for i in sample.ids}  # image paths name the defect, or "good"
    real = [s for s in seen if "/practice" not in s[0]]  # practice questions (outside the sample) get feedback
    assert any("/item/" in url for url, _, _ in real) and any("/image/" in url for url, _, _ in real)
    for url, headers, body in real:
        path = urlparse(url).path
        assert "content-disposition" not in headers and not any(k in path for k in keys), url
        if "/image/" in path:
            assert re.fullmatch(r"/a/erin/image/\d+/\d+", path), path
            continue
        text = body.decode("utf-8", "replace")
        assert not any(k in text for k in keys) and not any(i in text for i in sample.ids), url
        if headers.get("content-type", "").startswith("application/json"):
            data = json.loads(text)
            assert not {"answer", "correct", "is_normal", "image", "id", "mask"} & _all_keys(data), url
            if "/item/" in path:
                assert set(data) == ITEM_KEYS, url


def _all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _all_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _all_keys(v)}
    return set()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_reload_closed_tab_and_killed_server_resume_without_duplicates(synthetic_demo: Path, browser: Any,
                                                                        tmp_path: Path) -> None:
    require_playwright()
    port = _free_port()
    server = Server(tmp_path / "panel", synthetic_demo, ["fay"], "--per-type", "1", "--practice", "0", port=port)
    url = server.start()["fay"]
    try:
        page = _page(browser, url)
        _mode(page, "guidelines")
        page.keyboard.press("Enter")
        _mode(page, "message")
        page.keyboard.press("Enter")
        pressed: list[str] = []

        def answer(n: int, key: str = "1") -> None:
            _shown(page, n)
            letters, _ = _options(page)
            pressed.append(letters[int(key) - 1])
            page.keyboard.press(key)

        answer(0)
        answer(1, "2")
        _mode(page, "message")  # the detection block (2 questions) is over
        page.keyboard.press("Enter")
        answer(2)
        answer(3, "2")
        _shown(page, 4)
        page.reload()  # continues at the first unanswered question
        answer(4)
        _shown(page, 5)
        server.kill()  # kill -9
        answer(5, "2")  # while the server is away: kept in the page and sent again
        page.locator("#status", has_text="cannot reach").wait_for(state="attached")  # (the page's CSP forbids eval)
        server.start()
        _shown(page, 6)  # the kept answer went through
        answer(6)
        _shown(page, 7)
        page.close()  # a closed tab
        page = page.context.new_page()
        page.set_default_timeout(20_000)
        page.goto(url)
        for n in range(7, 14):
            answer(n, "1" if n % 2 else "2")
        _mode(page, "finished")
        page.context.close()
    finally:
        server.stop()
    lines = _lines(tmp_path / "panel" / "human-fay")
    assert len(lines) == 14 and len({p.id for p in lines}) == 14
    assert [p.choice for p in lines] == pressed
    assert (tmp_path / "panel" / "human-fay" / "report.html").is_file()  # written when she finished
