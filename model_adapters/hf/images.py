"""The images of the questions in flight, opened once.

A question's images are opened when it is prepared (so an unreadable image fails that question only,
before any model work) and again when its batch goes through the processor; the questions about one
image come together, so a small cache of the most recent images serves both.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class ImageCache:
    """The last ``size`` images opened, as RGB PIL images, by path."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._images: OrderedDict[str, Any] = OrderedDict()

    def get(self, path: str) -> Any:
        """The image at ``path`` as RGB; OSError (and PIL's errors) when it cannot be read."""
        from PIL import Image

        img = self._images.get(path)
        if img is None:
            with Image.open(path) as im:
                img = im.convert("RGB")
            self._images[path] = img
            if len(self._images) > self.size:
                self._images.popitem(last=False)
        else:
            self._images.move_to_end(path)
        return img

    def clear(self) -> None:
        self._images.clear()
