"""Reading anomaly maps and masks from files a user gave: every way a file can be unusable is an InputError
naming it, never a traceback, and nothing is decoded before its size is known.

A map is a ``.npy`` array (H x W, numbers) or a grey image (8-bit read as 0-1, 16-bit as 0-1 of its full
scale, 32-bit float as it is); a colour image is refused (its brightness is not a map). A map or mask
has at least one cell in each direction and at most :data:`MAX_CELLS` cells in all; the sizes are read
from the file's header first, so a 20000 x 20000 image is refused without being decoded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import imagesize
import numpy as np
from PIL import Image

from mmeval.errors import InputError

#: the most cells a map or mask file may hold (8192 x 8192; 256 MiB as float32)
MAX_CELLS = 8192 * 8192


def check_shape(path: Path, shape: tuple[int, ...], what: str) -> None:
    """Refuse an empty map, or one too large to hold in memory, naming the file."""
    if len(shape) >= 2 and 0 in shape:
        raise InputError(f"{what} {path} is empty ({' x '.join(map(str, shape))})")
    cells = int(np.prod(shape, dtype=np.float64)) if shape else 1
    if cells > MAX_CELLS:
        raise InputError(f"{what} {path} is {' x '.join(map(str, shape))}: more than {MAX_CELLS:,} cells "
                         "(8192 x 8192); downsample it, a map needs no more cells than the image has pixels")


def open_image(path: Path, what: str) -> Image.Image:
    """``path`` opened (not decoded) after its header says it is of a usable size; the caller closes it."""
    try:
        width, height = imagesize.get(str(path))
    except (OSError, ValueError):
        width, height = -1, -1
    if width >= 0 and height >= 0:
        check_shape(path, (height, width), what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(f"{what} {path} is too large to read ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - whatever Pillow raises on a bad file, the file is at fault
        raise InputError(f"{what} {path} cannot be read as an image ({type(exc).__name__}: {exc})") from None
    check_shape(path, (image.height, image.width), what)
    return image


def decoded(image: Image.Image, path: Path, what: str) -> np.ndarray:
    """The pixels of an opened image; a truncated or corrupt file is an InputError naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return np.asarray(image)
    except Exception as exc:  # noqa: BLE001 - a decoding failure is the file's
        raise InputError(f"{what} {path} cannot be decoded ({type(exc).__name__}: {exc})") from None


_GREY_SCALE = {"L": 255.0, "I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "1": 1.0,
               "F": 1.0}


def _grey_image(path: Path, what: str) -> np.ndarray:
    with open_image(path, what) as im:
        mode = im.mode
        if mode in ("RGB", "RGBA", "P", "LA", "PA"):
            rgb = decoded(im.convert("RGBA" if "A" in mode or mode == "P" else "RGB"), path, what)
            if rgb.shape[-1] == 4:
                rgb = rgb[..., :3]
            if not (rgb == rgb[..., :1]).all():
                raise InputError(f"{what} {path} is a colour image; a map is one channel (a grey PNG or a .npy)")
            return rgb[..., 0].astype(np.float32) / 255.0
        if mode not in _GREY_SCALE:
            raise InputError(f"{what} {path}: image mode {mode} is not a grey map (use 8- or 16-bit grey, or .npy)")
        return decoded(im, path, what).astype(np.float32) / np.float32(_GREY_SCALE[mode])


def _npy(path: Path, what: str) -> np.ndarray:
    try:
        lazy = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{what} {path} cannot be read as a .npy array ({exc})") from None
    if not isinstance(lazy, np.ndarray):
        raise InputError(f"{what} {path} holds no single array")
    check_shape(path, tuple(lazy.shape), what)
    try:
        return np.array(lazy, dtype=np.float32)  # a copy: the file is not held open
    except (TypeError, ValueError, OSError) as exc:
        raise InputError(f"{what} {path} does not hold numbers ({lazy.dtype}: {exc})") from None


def read_map(path: Path, what: str = "map") -> np.ndarray:
    """A map file as a finite 2-D float32 array (one-sized axes squeezed away)."""
    grid = np.squeeze(_npy(path, what) if path.suffix == ".npy" else _grey_image(path, what))
    if grid.ndim != 2:
        raise InputError(f"{what} {path} is not a 2-D map (shape {grid.shape} after dropping one-sized axes)")
    check_shape(path, grid.shape, what)
    if not np.isfinite(grid).all():
        raise InputError(f"{what} {path} holds values that are not finite (NaN or infinity)")
    return grid


def read_mask(path: Path, what: str = "mask") -> np.ndarray:
    """A mask image as a boolean array (any non-zero pixel is defect; colour masks count every channel)."""
    with open_image(path, what) as im:
        arr = decoded(im, path, what)
    return (arr.max(axis=-1) if arr.ndim == 3 else arr) > 0
