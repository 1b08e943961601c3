"""Where a benchmark's paths may lead: the one confinement rule for every data source.

An mmad.json's keys, template lists and masks, and a table's image, template and mask paths (converted
into an mmad.json twin) all pass here. A path is refused when it is not relative (absolute, a drive
letter, a URL, ``data:`` or ``file:``), when it climbs out with ``..``, or when its real location, symbolic
links followed (of the file or of any folder on the way), lies outside the root. The root is the data root
(the mmad.json's folder, or ``--image-root``).
"""

from __future__ import annotations

import os
from pathlib import Path

from mmeval.errors import DataError


class Confined:
    """Paths under one data root, checked to stay there; real directories remembered (a load asks for
    thousands of files in a few hundred folders, so each folder is resolved once). Paths are handled as
    strings: a load makes tens of thousands, and ``pathlib`` objects cost several times more."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_str = str(root)
        self.real_root = str(root.resolve())
        self._inside = self.real_root.rstrip(os.sep) + os.sep
        self._dirs: dict[str, str] = {}
        #: images already found usable, by the path as written (templates recur across records)
        self.usable: dict[str, str] = {}

    def real(self, path: str, link: bool | None = None) -> str:
        """Where ``path`` really is; ``link``: whether it is a symbolic link, when the caller knows."""
        folder, name = os.path.split(path)
        real_folder = self._real_dir(folder)
        if link is None:
            link = os.path.islink(path)
        return os.path.realpath(path) if link else os.path.join(real_folder, name)

    def _real_dir(self, folder: str) -> str:
        """Where ``folder`` really is: its parent's real place plus its name, unless it is itself a link (one
        lstat for a new folder instead of one per component of its path)."""
        real = self._dirs.get(folder)
        if real is None:
            parent, name = os.path.split(folder)
            if folder == self.root_str or not name or parent == folder or os.path.islink(folder):
                real = os.path.realpath(folder)
            else:
                real = os.path.join(self._real_dir(parent), name)
            self._dirs[folder] = real
        return real

    def path(self, rel: object, key: str, field_name: str) -> Path:
        return Path(self.file(rel, key, field_name))

    def file(self, rel: object, key: str, field_name: str) -> str:
        """``root / rel`` as a string, once it is known to stay under the root."""
        return self.confine(under(self.root_str, rel, key, field_name), rel, key, field_name)

    def confine(self, path: str, rel: object, key: str, field_name: str, link: bool | None = None) -> str:
        real = self.real(path, link)
        if real != self.real_root and not real.startswith(self._inside):
            raise DataError(key, field_name, f"'{rel}' leads outside the data root (a symbolic link to {real})")
        return path


def safe_path(root: Path, rel: object, key: str, field_name: str) -> Path:
    """Resolve a data-relative path, refusing what could leave the data root.

    Refused: absolute paths, URLs, ``..``, and paths whose real location (symbolic links followed)
    lies outside the root.
    """
    return Confined(root).path(rel, key, field_name)


def relative_parts(rel: object, key: str, field_name: str) -> list[str]:
    """The components of a relative path that names no URL, no absolute path and no ``..`` (``.`` and empty
    components dropped); a DataError naming the record and field otherwise."""
    if not isinstance(rel, str) or not rel:
        raise DataError(key, field_name, f"expected a relative path, got {rel!r}")
    if "://" in rel or rel.lower().startswith(("data:", "file:")):
        raise DataError(key, field_name, f"'{rel}' is a URL; paths are relative to the data root")
    posix = rel.replace("\\", "/")
    if posix.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise DataError(key, field_name, f"absolute path '{rel}' is not allowed (paths are relative to the data root)")
    parts = [part for part in posix.split("/") if part not in ("", ".")]  # as PurePosixPath(posix).parts
    if ".." in parts:
        raise DataError(key, field_name, f"path '{rel}' escapes the data root")
    return parts


def under(root: str, rel: object, key: str, field_name: str) -> str:
    """``root / rel`` for a relative path that names no URL, no absolute path and no ``..``."""
    return os.path.join(root, *relative_parts(rel, key, field_name))
