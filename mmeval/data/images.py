"""Cheap checks that an image file can be used, done when the data loads (so a bad image is a bad record).

``header`` (the default) reads each file's header (the ``imagesize`` library, about 20 microseconds a
file; Pillow decides when the header is not one it knows): an empty file, a file that is not an image,
or an image larger than the pixel limit (a decompression bomb) is refused. ``full`` decodes every image
as well, which also finds truncated files, at the cost of reading every byte. ``none`` trusts the files.
Each distinct path is checked once per load, so templates shared by many records cost one check.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

VerifyLevel = Literal["none", "header", "full"]

#: the largest image accepted, in pixels (about 16k x 16k; MMAD's largest are a few megapixels)
MAX_PIXELS = 256_000_000


class ImageChecker:
    """Remembers the verdict for each path it has seen: None (usable) or the reason it is not."""

    def __init__(self, level: VerifyLevel = "header", max_pixels: int = MAX_PIXELS) -> None:
        self.level = level
        self.max_pixels = max_pixels
        self._seen: dict[str, str | None] = {}

    def problem(self, path: str | Path, size: int | None = None) -> str | None:
        """None when the image is usable, else why not; ``size``: its byte count, when the caller has it."""
        if self.level == "none":
            return None
        key = os.fspath(path)
        if key not in self._seen:
            self._seen[key] = self._check(key, size)
        return self._seen[key]

    def _check(self, path: str, size: int | None = None) -> str | None:
        import imagesize

        try:
            if (os.stat(path).st_size if size is None else size) == 0:
                return "empty file (0 bytes)"
            w, h = imagesize.get(path)
        except (OSError, ValueError):
            w, h = -1, -1
        if self.level == "header" and w > 0 and h > 0:
            return f"image too large ({w}x{h} pixels, limit {self.max_pixels:,})" if w * h > self.max_pixels else None
        return self._check_with_pillow(path)

    def _check_with_pillow(self, path: str) -> str | None:
        from PIL import Image, UnidentifiedImageError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    w, h = im.size
                    if w <= 0 or h <= 0:
                        return f"image has no pixels ({w}x{h})"
                    if w * h > self.max_pixels:
                        return f"image too large ({w}x{h} pixels, limit {self.max_pixels:,})"
                    if self.level == "full":
                        im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            return f"image too large: {exc}"
        except UnidentifiedImageError:
            return "not a readable image file"
        except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data (PIL raises these)
            return f"unreadable image: {exc}"
        return None
