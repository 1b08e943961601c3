"""The response cache: answered requests by the hash of their exact bytes, in a sqlite file.

The engine hashes each request with its images named by their content and encoding settings rather than
their encoded bytes (:func:`~.images.image_name`): the same request, found without decoding an image.

One file may serve several families and several processes at once (WAL journal, a busy timeout of
30 s): the key covers the endpoint and the whole request body, so two requests share an entry only
when they are byte for byte the same request to the same service.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from mmeval.home import mmeval_home
from mmeval.model_adapters.base import AdapterError

#: the cache file in $MMEVAL_HOME unless ``-M cache=...`` names another
DEFAULT_CACHE_NAME = "api_cache.sqlite"


def default_cache_path() -> Path:
    return mmeval_home() / DEFAULT_CACHE_NAME


def cache_key(scope: str, payload: bytes) -> str:
    """The key of one request: ``scope`` (the endpoint, without a trailing slash) and the body's bytes."""
    h = hashlib.sha256(scope.rstrip("/").encode() + b"\n")
    h.update(payload)
    return h.hexdigest()


class ResponseCache:
    """Decoded JSON replies by request key in a sqlite file; safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                              "created REAL NOT NULL, response TEXT NOT NULL)")
        except (OSError, sqlite3.Error) as exc:
            raise AdapterError(f"-M cache={path}: cannot use it as a sqlite cache ({exc}); "
                               "choose another path or pass -M no_cache=true") from None
        self.lock = threading.Lock()

    def get(self, key: str) -> Any:
        """The stored reply, or None (also when the stored text is not JSON)."""
        with self.lock:
            row = self.conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            return None

    def put(self, key: str, model: str, data: Any) -> None:
        blob = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        with self.lock:
            self.conn.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", (key, model, time.time(), blob))

    def close(self) -> None:
        with self.lock:
            self.conn.close()
