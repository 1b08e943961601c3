"""Images for request bodies: JPEG data URLs, encoded off the event loop and reused across requests."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import io
import os
from collections import OrderedDict

JPEG_QUALITY = 95
RECENT = 256  # encoded images kept (few-shot templates recur across questions)
MAX_WORKERS = 8


def default_workers() -> int:
    """Threads encoding images: one per CPU, at least 2 and at most :data:`MAX_WORKERS`.

    PIL decodes, scales and encodes outside the GIL, and a photograph of MMAD's size costs tens of
    milliseconds (a 1024-pixel PNG about 60 ms to a 512-pixel JPEG on a 2-core VM): two threads would
    hold a served model answering hundreds of questions a second to about 35 images a second.
    """
    return max(2, min(MAX_WORKERS, os.cpu_count() or 2))


def encode_image(path: str, max_side: int) -> str:
    """A JPEG data URL of the image, its long side at most ``max_side`` pixels."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        img = im.convert("RGB") if im.mode != "RGB" else im.copy()
    w, h = img.size
    if max(w, h) > max_side:
        scale = max_side / max(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class ImageEncoder:
    """Data URLs encoded on a small thread pool; the :data:`RECENT` most recent ones are kept.

    Requests that need the same image while it is being encoded wait for the one encoding. A file is
    assumed not to change under one adapter (one run). Call :meth:`data_url` from one event loop.
    """

    def __init__(self, workers: int | None = None) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers or default_workers(),
                                                           thread_name_prefix="mmeval-img")
        self._recent: OrderedDict[tuple[str, int], asyncio.Future[str]] = OrderedDict()  # most recent last

    async def data_url(self, path: str, max_side: int) -> str:
        key = (path, max_side)
        fut = self._recent.get(key)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = asyncio.ensure_future(loop.run_in_executor(self._pool, encode_image, path, max_side))
            self._recent[key] = fut
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(key)
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            return fut.result()
        try:
            return await asyncio.shield(fut)
        except Exception:
            self._recent.pop(key, None)
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
