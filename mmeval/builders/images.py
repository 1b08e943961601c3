"""Images of a build: checked by decoding, ranked by similarity, masks read onto the 3x3 grid, files placed."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mmeval.data.images import MAX_PIXELS

THUMB = 32  # side of the grey thumbnails that rank templates by similarity


class ImageProblem(Exception):
    """An image that cannot be used; the message says why."""


def _open(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            if im.size[0] * im.size[1] > MAX_PIXELS:
                raise ImageProblem(f"too large ({im.size[0]}x{im.size[1]} pixels)")
            im.load()
            return im
    except ImageProblem:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageProblem(f"not a readable image ({type(exc).__name__})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(f"unreadable image ({exc})") from None


def thumbnail(path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """(grey THUMBxTHUMB thumbnail, (width, height)); decodes the whole file, so a damaged one is found here."""
    im = _open(path)
    size = im.size
    grey = im.convert("L").resize((THUMB, THUMB), Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.float64), size


def read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The mask as booleans at the image's size (any non-zero pixel is defect; resized when the shape agrees)."""
    im = _open(path)
    if im.size != size:
        w, h = im.size
        if abs(w / h - size[0] / size[1]) > 0.01:
            raise ImageProblem(f"mask is {w}x{h}, the image {size[0]}x{size[1]} (another shape)")
        im = im.resize(size, Image.Resampling.NEAREST)
    arr = np.asarray(im.convert("L"))
    return arr > 0


def cell_shares(mask: np.ndarray) -> np.ndarray:
    """Share of the mask's pixels in each cell of the 3x3 grid (rows top to bottom), summing to 1."""
    h, w = mask.shape
    rows = np.minimum(2, (3 * np.arange(h)) // h)
    cols = np.minimum(2, (3 * np.arange(w)) // w)
    out = np.zeros((3, 3))
    for r in range(3):
        band = mask[rows == r]
        for c in range(3):
            out[r, c] = band[:, cols == c].sum()
    total = out.sum()
    return out / total if total else out


def place(src: Path, dest: Path, link: bool = True) -> None:
    """Put a copy of ``src`` at ``dest``: a hard link when allowed and possible (no extra disk), else a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.unlink()
    if link:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass
    shutil.copyfile(src, dest)


def write_mask(mask: np.ndarray, dest: Path) -> None:
    """A binary mask as MMAD stores them: an L-mode PNG of 0 and 255."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255).save(dest, format="PNG", compress_level=9)
