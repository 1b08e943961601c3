"""The inspectors' web page: FastAPI routes over a session's stimuli and the annotators' runs.

One page per annotator (``/a/NAME``), one plain script (``static/human.js``) and a stylesheet: nothing
is loaded from elsewhere (the Content-Security-Policy forbids it), so the page works on a machine with no
internet. What leaves the server is :func:`mmeval.human.stimuli.public_item` and image bytes, served by
the question's place in the session and the image's number, never by path.

Access: the server binds 127.0.0.1 unless told otherwise. Bound to any other address, every request must
carry the annotator's token (``?t=...``, printed in each annotator's URL); a name that is not on the panel
gets 403 either way.
"""

from __future__ import annotations

import ipaddress
import mimetypes
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from mmeval.human.answers import IDLE_AFTER_SECONDS, AnnotatorRun, Rejected, Timing
from mmeval.human.session import HumanSession, tokens
from mmeval.human.stimuli import Item, Stimuli, build, public_item
from mmeval.prompting.render import render_block

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Panel:
    """What the app serves: the stimuli, each annotator's run, and their tokens (checked when ``need_token``);
    ``on_finished(run_dir)`` is called when an annotator has answered every question (the report writer)."""

    stimuli: Stimuli
    runs: dict[str, AnnotatorRun]
    tokens: dict[str, str]
    need_token: bool
    on_finished: Callable[[Path], object] | None = None


class AnswerBody(BaseModel):
    n: int = Field(ge=0)
    choice: str | None = Field(None, max_length=1, description="the option's letter; null: unsure")
    ms: float = Field(ge=0, description="from the images on screen to the key press")
    hidden_ms: float = Field(0, ge=0)
    idle_ms: float = Field(0, ge=0)


class PracticeBody(BaseModel):
    i: int = Field(ge=0)
    choice: str | None = Field(None, max_length=1)


@cache
def _asset(name: str) -> bytes:
    return resources.files("mmeval.human").joinpath("static", name).read_bytes()


@cache
def _page_template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("mmeval.human", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template("page.html.j2")


def create_app(panel: Panel) -> FastAPI:
    """The FastAPI application of one panel (no docs pages: nothing but the annotation page is served).

    When the server stops (Ctrl-C, SIGTERM) the annotators' files are put in order and their directories
    released as the application shuts down: uvicorn re-raises the signal afterwards, which ends the process.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        close_panel(panel)

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def run_of(name: str, request: Request) -> AnnotatorRun:
        run = panel.runs.get(name)
        if run is None:
            raise HTTPException(403, "not an annotator of this panel")
        if panel.need_token:
            given = request.query_params.get("t", "")
            if not secrets.compare_digest(given.encode(), panel.tokens[name].encode()):
                raise HTTPException(403, "this page needs the annotator's own URL (with its token)")
        return run

    def item_of(run: AnnotatorRun, n: int) -> Item:
        if not 0 <= n < len(run.items):
            raise HTTPException(404, "no such question")
        item = run.items[n]
        if not run.may_show(item):
            raise HTTPException(409, "the detection block is closed" if item.block == "detection"
                                else "answer the detection block first")
        return item

    def practice_of(i: int) -> Item:
        if not 0 <= i < len(panel.stimuli.practice):
            raise HTTPException(404, "no such practice question")
        return panel.stimuli.practice[i]

    def state(run: AnnotatorRun) -> dict[str, Any]:
        nxt = run.next_open()
        return {"total": len(run.items), "answered": run.answered(), "next": nxt, "finished": nxt is None,
                "detection_total": panel.stimuli.detection_count, "detection_open": run.detection_open(),
                "practice_total": run.practice.total, "practice_done": run.practice.finished(),
                "practice_next": run.practice.next_index()}

    def image(path: Any) -> FileResponse:
        if path is None:
            raise HTTPException(404, "no such image")
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/a/{name}", response_class=HTMLResponse)
    def page(name: str, request: Request) -> HTMLResponse:
        run = run_of(name, request)
        html = _page_template().render(
            annotator=name, token=request.query_params.get("t", "") if panel.need_token else "",
            total=len(run.items), detection_total=panel.stimuli.detection_count,
            practice_total=run.practice.total, instruction=render_block("instruction"),
            idle_after=int(IDLE_AFTER_SECONDS))
        return HTMLResponse(html)

    @app.get("/a/{name}/state")
    def get_state(name: str, request: Request) -> dict[str, Any]:
        return state(run_of(name, request))

    @app.get("/a/{name}/item/{n:int}")
    def get_item(name: str, n: int, request: Request) -> dict[str, Any]:
        run = run_of(name, request)
        item = item_of(run, n)
        first_of_block = item.n == 0 or run.items[item.n - 1].block != item.block
        return {**public_item(item, f"/a/{name}/image/{n}/{{k}}"), "given": run.given(item),
                "can_go_back": not first_of_block}

    @app.get("/a/{name}/image/{n:int}/{k:int}")
    def get_image(name: str, n: int, k: int, request: Request) -> FileResponse:
        return image(item_of(run_of(name, request), n).image_path(k))

    @app.post("/a/{name}/answer")
    def post_answer(name: str, body: AnswerBody, request: Request) -> JSONResponse:
        run = run_of(name, request)
        try:
            outcome = run.answer(body.n, body.choice, Timing(body.ms, body.hidden_ms, body.idle_ms))
        except Rejected as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        now = state(run)
        if now["finished"] and outcome != "unchanged" and panel.on_finished is not None:  # in the background
            run.when_finished(panel.on_finished)
        return JSONResponse({"outcome": outcome, **now})

    @app.get("/a/{name}/practice/{i:int}")
    def get_practice(name: str, i: int, request: Request) -> dict[str, Any]:
        run_of(name, request)
        item = practice_of(i)
        return {**public_item(item, f"/a/{name}/practice-image/{i}/{{k}}"), "n": i, "can_go_back": False,
                "given": None}

    @app.get("/a/{name}/practice-image/{i:int}/{k:int}")
    def get_practice_image(name: str, i: int, k: int, request: Request) -> FileResponse:
        run_of(name, request)
        return image(practice_of(i).image_path(k))

    @app.post("/a/{name}/practice/answer")
    def post_practice(name: str, body: PracticeBody, request: Request) -> dict[str, Any]:
        """Feedback on a practice question: the only place an answer is sent, for questions outside the sample."""
        run = run_of(name, request)
        item = practice_of(body.i)
        answer = item.prepared.answer
        run.practice.record(body.i, body.choice, body.choice == answer)
        return {"correct": body.choice == answer, "answer": answer,
                "answer_text": item.prepared.request.options[answer], **state(run)}

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        kinds = {"human.js": "text/javascript", "human.css": "text/css"}
        if name not in kinds:
            raise HTTPException(404, "not found")
        return Response(_asset(name), media_type=kinds[name], headers={"Cache-Control": "no-cache"})

    return app


def open_panel(folder: Path, session: HumanSession, annotators: list[str], host: str,
               on_finished: Callable[[Path], object] | None = None) -> Panel:
    """The stimuli of a session and the runs of the annotators served now (each directory locked until
    :func:`close_panel`); an InputError when a directory is in use or holds another config."""
    stimuli = build(session.run_config(annotators[0], folder), session.practice)
    runs: dict[str, AnnotatorRun] = {}
    try:
        for name in annotators:
            runs[name] = AnnotatorRun(folder, session, name, stimuli)
    except BaseException:
        for run in runs.values():
            run.close()
        raise
    return Panel(stimuli, runs, tokens(folder, annotators), need_token=not is_loopback(host), on_finished=on_finished)


def close_panel(panel: Panel) -> None:
    for run in panel.runs.values():
        run.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port); an OSError when the address cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serve until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
