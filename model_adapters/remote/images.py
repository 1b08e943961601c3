"""Images for request bodies: JPEG data URLs, encoded off the event loop and reused across requests.

For the response cache's key an image is *named* instead (:func:`naming_images`): by its file's content and
everything else that decides its encoded bytes, so that a request answered from the cache decodes no image.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextvars
import hashlib
import io
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


#: set while a request body is built for its cache key: ``data_url`` then names images instead of encoding them
_NAMING: contextvars.ContextVar[bool] = contextvars.ContextVar("mmeval_naming_images", default=False)


@contextmanager
def naming_images() -> Iterator[None]:
    """Within the block (in this task only), :meth:`ImageEncoder.data_url` returns :func:`image_name`'s name."""
    token = _NAMING.set(True)
    try:
        yield
    finally:
        _NAMING.reset(token)


def image_name(path: str, max_side: int) -> str:
    """What decides the bytes :func:`encode_image` makes of ``path``: the file's SHA-256, the size limit, the
    JPEG quality and the versions of Pillow and its JPEG library. Equal names, equal data URLs."""
    from PIL import __version__ as pillow
    from PIL import features

    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return f"image:sha256={digest};max_side={max_side};quality={JPEG_QUALITY};pillow={pillow};" \
           f"jpeg={features.version('jpg')}"


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
    """Data URLs encoded on a small thread pool; the :data:`RECENT` most recent ones are kept (and as many names).

    Requests that need the same image while it is being encoded wait for the one encoding. A file is
    assumed not to change under one adapter (one run). Call :meth:`data_url` from one event loop.
    """

    def __init__(self, workers: int | None = None) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers or default_workers(),
                                                           thread_name_prefix="mmeval-img")
        self._recent: OrderedDict[tuple[str, int], asyncio.Future[str]] = OrderedDict()  # most recent last
        self._names: OrderedDict[tuple[str, int], asyncio.Future[str]] = OrderedDict()

    async def data_url(self, path: str, max_side: int) -> str:
        """The image as a JPEG data URL; inside :func:`naming_images`, its :func:`image_name` (nothing decoded)."""
        if _NAMING.get():
            return await self._once(self._names, image_name, path, max_side)
        return await self._once(self._recent, encode_image, path, max_side)

    async def _once(self, made: OrderedDict[tuple[str, int], asyncio.Future[str]], make: Callable[[str, int], str],
                    path: str, max_side: int) -> str:
        """``make(path, max_side)`` on the pool, once for all the requests that need it; the most recent kept."""
        key = (path, max_side)
        fut = made.get(key)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = asyncio.ensure_future(loop.run_in_executor(self._pool, make, path, max_side))
            made[key] = fut
            while len(made) > RECENT:
                made.popitem(last=False)
        else:
            made.move_to_end(key)
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            return fut.result()
        try:
            return await asyncio.shield(fut)
        except Exception:
            made.pop(key, None)
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
