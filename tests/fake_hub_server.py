"""A local stand-in for the Hugging Face hub: serves folders as dataset repositories, for tests.

``huggingface_hub`` and ``datasets`` talk to it exactly as to the real hub (``endpoint=srv.url`` or
``HF_ENDPOINT``): repository info (``/api/datasets/NS/NAME/revision/REV``), the file tree
(``/api/datasets/NS/NAME/tree/REV``), paths info, and file downloads (``/datasets/NS/NAME/resolve/REV/PATH``,
``HEAD`` for metadata, ``Range`` for resumed downloads). Each repository is a folder: ``repos`` maps
``"ns/name"`` to it. The commit hash is derived from the files when first asked for.

Faults for tests: ``cut_first`` names files whose first download is cut off after half its bytes (the
connection drops mid-body), so the client's resume (a ``Range`` request) is exercised; with
``break_after_cut`` such a file then answers 503 until ``broken`` is cleared (the download fails, and a
later one resumes). Every request is logged in ``log`` as (method, path, range header).

    with FakeHub({"jiang-cc/MMAD": folder}) as hub:
        snapshot_download("jiang-cc/MMAD", repo_type="dataset", endpoint=hub.url)
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from local_server import ThreadedServer


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    def __init__(self, repos: dict[str, Path], *, cut_first: tuple[str, ...] = (),
                 break_after_cut: bool = False) -> None:
        self.repos = {k: Path(v) for k, v in repos.items()}
        self.cut_first = set(cut_first)
        self.break_after_cut = break_after_cut  # after the cut, the file answers 503 until `broken` is cleared
        self.broken: set[str] = set()
        self.cut_done: set[str] = set()
        self.log: list[tuple[str, str, str]] = []
        self._commits: dict[str, str] = {}
        self.lock = threading.Lock()
        self.port = 0
        self._serving = ThreadedServer("fake-hub")
        self.app = self._build_app()

    # ------------------------------------------------------------------------------------ repository facts

    def commit(self, repo: str) -> str:
        """A hash of the repository's files (computed once: the folder must not change while served)."""
        if repo not in self._commits:
            folder = self.repos[repo]
            h = hashlib.sha1()
            for rel in _files(folder):
                h.update(rel.encode() + b"\0" + (folder / rel).read_bytes())
            self._commits[repo] = h.hexdigest()
        return self._commits[repo]

    def _repo(self, ns: str, name: str) -> tuple[str, Path] | None:
        repo = f"{ns}/{name}"
        return (repo, self.repos[repo]) if repo in self.repos else None

    def _entry(self, folder: Path, rel: str) -> dict[str, Any]:
        data = (folder / rel).read_bytes()
        entry: dict[str, Any] = {"type": "file", "oid": _oid(data), "size": len(data), "path": rel}
        if rel.endswith((".zip", ".parquet", ".json")) and len(data) > 0:
            sha = hashlib.sha256(data).hexdigest()
            entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
        return entry

    # ------------------------------------------------------------------------------------ app

    def _build_app(self) -> Any:
        app = FastAPI()
        missing = JSONResponse({"error": "Repository not found"}, status_code=404,
                               headers={"X-Error-Code": "RepoNotFound"})

        @app.get("/api/datasets/{ns}/{name}/revision/{rev:path}")
        @app.get("/api/datasets/{ns}/{name}")
        async def info(ns: str, name: str, rev: str = "main") -> Any:
            self._note("GET", f"/api/datasets/{ns}/{name}", "")
            found = self._repo(ns, name)
            if not found:
                return missing
            repo, folder = found
            return {"_id": repo, "id": repo, "author": ns, "sha": self.commit(repo), "private": False,
                    "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
                    "lastModified": "2025-01-01T00:00:00.000Z", "createdAt": "2025-01-01T00:00:00.000Z",
                    "siblings": [{"rfilename": rel} for rel in _files(folder)], "cardData": {}}

        @app.get("/api/datasets/{ns}/{name}/tree/{rev}/{sub:path}")
        @app.get("/api/datasets/{ns}/{name}/tree/{rev}")
        async def tree(ns: str, name: str, rev: str, request: Request, sub: str = "") -> Any:
            self._note("GET", f"/api/datasets/{ns}/{name}/tree/{rev}/{sub}", "")
            found = self._repo(ns, name)
            if not found:
                return missing
            _, folder = found
            recursive = request.query_params.get("recursive", "false").lower() == "true"
            prefix = sub.strip("/") + "/" if sub.strip("/") else ""
            out: list[dict[str, Any]] = []
            dirs: set[str] = set()
            for rel in _files(folder):
                if not rel.startswith(prefix):
                    continue
                rest = rel[len(prefix):]
                if "/" in rest and not recursive:
                    dirs.add(prefix + rest.split("/", 1)[0])
                    continue
                if recursive:
                    parts = rest.split("/")[:-1]
                    for i in range(1, len(parts) + 1):
                        dirs.add(prefix + "/".join(parts[:i]))
                out.append(self._entry(folder, rel))
            out += [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                    for d in sorted(dirs)]
            return out

        @app.post("/api/datasets/{ns}/{name}/paths-info/{rev}")
        async def paths_info(ns: str, name: str, rev: str, request: Request) -> Any:
            found = self._repo(ns, name)
            if not found:
                return missing
            _, folder = found
            form = await request.form()
            paths = form.getlist("paths") if hasattr(form, "getlist") else []
            if not paths:
                try:
                    paths = (await request.json()).get("paths", [])
                except ValueError:
                    paths = []
            out = []
            for p in paths:
                p = str(p).strip("/")
                if (folder / p).is_file():
                    out.append(self._entry(folder, p))
                elif (folder / p).is_dir():
                    out.append({"type": "directory", "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0,
                                "path": p})
            return out

        @app.api_route("/datasets/{ns}/{name}/resolve/{rev}/{path:path}", methods=["GET", "HEAD"])
        async def resolve(ns: str, name: str, rev: str, path: str, request: Request) -> Any:
            rng = request.headers.get("range", "")
            self._note(request.method, f"/datasets/{ns}/{name}/resolve/{rev}/{path}", rng)
            found = self._repo(ns, name)
            if not found:
                return missing
            repo, folder = found
            file = folder / path
            if not file.is_file():
                return JSONResponse({"error": "Entry not found"}, status_code=404,
                                    headers={"X-Error-Code": "EntryNotFound"})
            data = file.read_bytes()
            headers = {"X-Repo-Commit": self.commit(repo), "ETag": f'"{_oid(data)}"', "Accept-Ranges": "bytes",
                       "Content-Type": "application/octet-stream"}
            if request.method == "HEAD":
                return Response(status_code=200, headers={**headers, "Content-Length": str(len(data))})
            start = 0
            if rng.startswith("bytes="):
                start = int(rng[6:].split("-", 1)[0] or 0)
            body = data[start:]
            status = 206 if start else 200
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            with self.lock:
                down = path in self.broken
                cut = path in self.cut_first and path not in self.cut_done
                if cut:
                    self.cut_done.add(path)
                    if self.break_after_cut:
                        self.broken.add(path)
            if down:
                return JSONResponse({"error": "Service unavailable"}, status_code=503)
            if cut:
                half = body[: len(body) // 2]

                async def broken() -> Any:
                    yield half
                    raise ConnectionResetError("connection dropped (injected)")

                return StreamingResponse(broken(), status_code=status,
                                         headers={**headers, "Content-Length": str(len(body))})
            return Response(body, status_code=status, headers=headers)

        return app

    def _note(self, method: str, path: str, rng: str) -> None:
        with self.lock:
            self.log.append((method, path, rng))

    # ------------------------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeHub:
        self.port = self._serving.start(self.app, log_level="critical")
        return self

    def stop(self) -> None:
        self._serving.stop()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
