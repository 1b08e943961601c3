"""PIL.Image of the stand-in Pillow (tests only): open() reads a PNG's or JPEG's size from its header."""

import builtins
import struct

NEAREST, BILINEAR, BICUBIC = 0, 2, 3


class UnidentifiedImageError(OSError):
    pass


class Image:
    def __init__(self, size, mode="RGB", filename=""):
        self.size, self.mode, self.filename = (int(size[0]), int(size[1])), mode, filename

    @property
    def width(self):
        return self.size[0]

    @property
    def height(self):
        return self.size[1]

    def convert(self, mode):
        return Image(self.size, mode, self.filename)

    def resize(self, size, resample=None):
        return Image(size, self.mode, self.filename)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _jpeg_size(fh):
    fh.seek(2)
    while True:
        marker = fh.read(4)
        if len(marker) < 4 or marker[0] != 0xFF:
            raise UnidentifiedImageError("bad JPEG")
        length = struct.unpack(">H", marker[2:4])[0]
        if marker[1] in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">xHH", fh.read(5))
            return width, height
        fh.seek(length - 2, 1)


def open(fp, mode="r"):  # noqa: A001 - PIL's own name
    with builtins.open(fp, "rb") as fh:
        head = fh.read(24)
        if head[:8] == b"\x89PNG\r\n\x1a\n":
            width, height = struct.unpack(">II", head[16:24])
        elif head[:2] == b"\xff\xd8":
            width, height = _jpeg_size(fh)
        else:
            raise UnidentifiedImageError(f"cannot identify image file {fp!r}")
    return Image((width, height), "RGB", str(fp))
