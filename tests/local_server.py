"""An ASGI app served on 127.0.0.1 from a daemon thread: what the fake hub and the fake OpenAI server share."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


class ThreadedServer:
    """uvicorn in a daemon thread on a port of its own (0: any free one); ``start`` returns once it accepts."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, app: Any, port: int = 0, **config: Any) -> int:
        """Serve ``app``; returns the port. ``config``: more uvicorn.Config settings."""
        import uvicorn

        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
        # without it uvicorn's separate header and body writes hit Nagle + delayed ACK (+40 ms a reply)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self._server = uvicorn.Server(uvicorn.Config(app, access_log=False, lifespan="off", **config))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name=self.name)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)
        return int(sock.getsockname()[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout=10)
