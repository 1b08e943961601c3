"""Unpacking downloaded zip archives without trusting them.

Every member is checked before a byte is written, and the archive is refused as a whole (nothing
written) when any member:

* would land outside the target folder: an absolute path, a drive letter, a ``..`` component, a
  backslash path that would escape, or a symbolic link (zip can store links; none is ever created);
* makes the archive a zip bomb: more than :attr:`Limits.max_members` members, a declared total above
  :attr:`Limits.max_total` bytes or above the free disk space, a member whose size is more than
  :attr:`Limits.max_ratio` times its compressed size, or an archive whose members together declare more
  than :attr:`Limits.max_ratio` times the archive's own size on disk.

The ratio rules look at what is declared above :attr:`Limits.ratio_floor` (a megabyte): one member
above it, or all members together once they pass it. The whole-archive rule is what stops many small
members that each expand a thousandfold (none of them is above the floor alone); dividing by the file's
size, not by the sum of the members' compressed sizes, also stops members that share compressed bytes.
A dataset archive is far from the limit: photographs (PNG, JPEG) are compressed already and zip stores
them at about their own size, so even masks that shrink a thousandfold move the whole archive's ratio
little (an archive of images and as many blank masks expands about twice).

While writing, the bytes actually produced are counted against the declared sizes (a lying header
stops the unpacking), and zipfile checks each member's CRC, so a truncated or corrupt archive (a bad
CRC, a damaged compressed stream, an unknown compression method, an encrypted member) is an error that
names the archive and says how to fetch it again. Unpacking goes into a temporary sibling
folder that is renamed into place only when complete: an interrupted unpack never looks finished.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from mmeval.errors import InputError

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class Limits:
    """What an archive may unpack to (defaults fit MMAD: about 28 GB of images in five archives)."""

    max_total: int = 256 * GiB  # declared uncompressed bytes of one archive
    max_ratio: float = 100.0  # declared / compressed size: of one member, and of all together / the file's size
    max_members: int = 2_000_000
    ratio_floor: int = MiB  # the ratio rules apply to a member, or to the archive, declaring more than this


class UnsafeArchive(InputError):
    """The archive is refused: a member escapes the target folder, or the archive is a zip bomb."""


class DamagedArchive(InputError):
    """The archive cannot be read to the end: truncated or corrupt."""


def _read_errors() -> tuple[type[BaseException], ...]:
    """What reading a member can raise when its bytes are bad: zipfile's own errors, a CRC or length mismatch,
    the decompressors' errors (zlib's, lzma's; bz2 raises OSError), an unknown compression method
    (NotImplementedError) and an encrypted member (RuntimeError)."""
    found: list[type[BaseException]] = [zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error,
                                        NotImplementedError, RuntimeError]
    try:
        import lzma

        found.append(lzma.LZMAError)
    except ImportError:  # a Python built without lzma: zipfile then refuses such members (NotImplementedError)
        pass
    return tuple(found)


def member_path(name: str) -> PurePosixPath | None:
    """The relative path a member unpacks to; None when the name would escape the target folder."""
    text = name.replace("\\", "/")
    if not text or text.startswith("/") or (len(text) > 1 and text[1] == ":") or "\0" in text:
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return PurePosixPath(*parts)


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _junk(name: str) -> bool:
    """Files zip tools add that never belong to a dataset (``__MACOSX/``, ``.DS_Store``, ``Thumbs.db``)."""
    parts = name.replace("\\", "/").split("/")
    return "__MACOSX" in parts or parts[-1] in (".DS_Store", "Thumbs.db")


def plan(archive: Path, zf: zipfile.ZipFile, limits: Limits, strip: str = "") -> list[tuple[zipfile.ZipInfo, Path]]:
    """(member, relative target) for every file member to write; raises UnsafeArchive on any bad member."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise UnsafeArchive(f"{archive}: {len(infos):,} members, more than the limit of {limits.max_members:,} "
                            "(refused as a possible zip bomb)")
    out: list[tuple[zipfile.ZipInfo, Path]] = []
    total = 0
    for info in infos:
        rel = member_path(info.filename)
        if rel is None:
            raise UnsafeArchive(f"{archive}: member '{info.filename}' would be written outside the target folder "
                                "(absolute path or '..'); the archive is refused and nothing was unpacked")
        if _is_link(info):
            raise UnsafeArchive(f"{archive}: member '{info.filename}' is a symbolic link; links are never unpacked "
                                "(the archive is refused and nothing was unpacked)")
        if info.is_dir() or _junk(info.filename):
            continue
        if strip:
            if not str(rel).startswith(strip + "/"):
                continue
            rel = PurePosixPath(str(rel)[len(strip) + 1:])
        total += info.file_size
        if total > limits.max_total:
            raise UnsafeArchive(f"{archive}: unpacks to more than {limits.max_total / GiB:.0f} GiB (refused as a "
                                "possible zip bomb)")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_floor and ratio > limits.max_ratio:
            raise UnsafeArchive(f"{archive}: member '{info.filename}' expands {ratio:.0f} times (limit "
                                f"{limits.max_ratio:.0f}); refused as a possible zip bomb")
        out.append((info, Path(*rel.parts)))
    _check_whole_ratio(archive, infos, limits)
    return out


def _check_whole_ratio(archive: Path, infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    """Refuse an archive whose members together declare more than ``max_ratio`` times its size on disk."""
    declared = sum(i.file_size for i in infos if not i.is_dir())
    try:
        size = max(archive.stat().st_size, 1)
    except OSError:
        return  # extract() names the unreadable file
    if declared > limits.ratio_floor and declared > limits.max_ratio * size:
        raise UnsafeArchive(f"{archive}: the archive as a whole expands {declared / size:.0f} times "
                            f"({declared / MiB:,.0f} MiB declared in a file of {size / MiB:,.1f} MiB; limit "
                            f"{limits.max_ratio:.0f} times); "
                            "refused as a possible zip bomb (image data barely compresses), nothing was unpacked")


def common_top(names: Iterable[str]) -> str:
    """The one top-level folder every file member sits in ('' when there is none or several)."""
    tops = set()
    for name in names:
        rel = member_path(name)
        if rel is None or _junk(name):
            continue
        if len(rel.parts) < 2:
            return ""
        tops.add(rel.parts[0])
        if len(tops) > 1:
            return ""
    return tops.pop() if len(tops) == 1 else ""


def extract(archive: Path, dest: Path, *, limits: Limits | None = None, strip: str = "",
            progress: bool = False) -> int:
    """Unpack ``archive`` into ``dest`` (created; files already there are replaced); return the files written.

    ``strip`` is a leading folder to drop from every member (e.g. ``ALL_DATA``); members outside it are
    left out. Writing goes to a temporary folder beside ``dest`` and is moved in only when
    the whole archive unpacked and checked.
    """
    limits = limits or Limits()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DamagedArchive(f"{archive}: not a readable zip archive ({exc}); it is probably truncated: delete it "
                             "and download it again") from None
    with zf:
        members = plan(archive, zf, limits, strip)
        need = sum(i.file_size for i, _ in members)
        dest.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(dest.parent).free
        if need > free:
            raise InputError(f"{archive}: unpacks to {need / GiB:.1f} GiB but only {free / GiB:.1f} GiB are free "
                             f"under {dest.parent}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.unpack-", dir=dest.parent))
        try:
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=need, unit="B", unit_scale=True, desc=f"unpacking {archive.name}")
            for info, rel in members:
                _write_member(archive, zf, info, tmp / rel, bar)
            if bar is not None:
                bar.close()
            _merge(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return len(members)


class _WriteFailed(Exception):
    """Writing an unpacked member failed (a full disk, no permission): the archive is not at fault."""


def _write_member(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, bar: object) -> None:
    written = 0
    try:
        with zf.open(info) as src, _open_target(target) as dst:
            while chunk := src.read(MiB):
                written += len(chunk)
                if written > info.file_size:
                    raise UnsafeArchive(f"{archive}: member '{info.filename}' holds more bytes than its header "
                                        "declares; refused")
                try:
                    dst.write(chunk)
                except OSError as exc:
                    raise _WriteFailed(str(exc)) from None
                if bar is not None:
                    bar.update(len(chunk))  # type: ignore[attr-defined]
    except _WriteFailed as exc:
        raise InputError(f"{archive}: cannot write '{target}' while unpacking ({exc}); the archive is fine: free "
                         "space or fix the folder's permissions and run the command again") from None
    except _read_errors() as exc:
        raise DamagedArchive(f"{archive}: member '{info.filename}' cannot be read ({type(exc).__name__}: {exc}); "
                             "the archive is truncated or corrupt: delete it and download it again") from None


def _open_target(target: Path) -> BinaryIO:
    """The member's file, opened for writing (its folders made); a failure is the folder's, not the archive's."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return open(target, "wb")
    except OSError as exc:
        raise _WriteFailed(str(exc)) from None


def _merge(src: Path, dest: Path) -> None:
    """Move everything under ``src`` into ``dest`` (whole folders when ``dest`` lacks them)."""
    if not dest.exists():
        os.replace(src, dest)
        src.mkdir()  # the caller removes it
        return
    for child in src.iterdir():
        target = dest / child.name
        if child.is_dir() and target.is_dir():
            _merge(child, target)
        else:
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(child, target)
