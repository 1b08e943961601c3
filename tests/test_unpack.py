"""Unpacking archives that are not trusted: no path escapes, no zip bombs, damaged archives named."""

from __future__ import annotations

import random
import stat
import zipfile
from pathlib import Path

import pytest

from mmeval.data.unpack import DamagedArchive, Limits, UnsafeArchive, common_top, extract, member_path
from mmeval.errors import InputError


def _zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_a_good_archive_unpacks_with_its_top_folder_dropped(tmp_path: Path) -> None:
    arc = _zip(tmp_path / "a.zip", {"ALL_DATA/DS/cat/x.png": b"x", "ALL_DATA/DS/cat/y.png": b"yy",
                                    "__MACOSX/ALL_DATA/._x.png": b"junk", "ALL_DATA/.DS_Store": b"junk"})
    assert common_top(["ALL_DATA/DS/cat/x.png", "ALL_DATA/DS/y.png", "__MACOSX/z"]) == "ALL_DATA"
    assert extract(arc, tmp_path / "out", strip="ALL_DATA") == 2
    assert (tmp_path / "out/DS/cat/y.png").read_bytes() == b"yy"
    assert not (tmp_path / "out/__MACOSX").exists() and not (tmp_path / "out/.DS_Store").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


@pytest.mark.parametrize("name", ["../evil.txt", "DS/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt",
                                  "..\\evil.txt", "DS\\..\\..\\evil.txt"])
def test_a_member_that_escapes_refuses_the_whole_archive(tmp_path: Path, name: str) -> None:
    arc = _zip(tmp_path / "a.zip", {"DS/ok.png": b"ok", name: b"evil"})
    with pytest.raises(UnsafeArchive, match="outside the target folder"):
        extract(arc, tmp_path / "deep" / "out")
    assert not (tmp_path / "deep" / "out").exists()  # nothing unpacked, not even the good member
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
    assert member_path(name) is None


def test_a_symbolic_link_member_is_refused(tmp_path: Path) -> None:
    arc = tmp_path / "link.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        info = zipfile.ZipInfo("DS/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        extract(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_bombs_are_refused(tmp_path: Path) -> None:
    bomb = _zip(tmp_path / "bomb.zip", {"DS/zeros.bin": b"\0" * (4 << 20)}, zipfile.ZIP_DEFLATED)
    with pytest.raises(UnsafeArchive, match="expands"):
        extract(bomb, tmp_path / "out")
    many = _zip(tmp_path / "many.zip", {f"DS/{i}.png": b"x" for i in range(5)})
    with pytest.raises(UnsafeArchive, match="members"):
        extract(many, tmp_path / "out", limits=Limits(max_members=4))
    big = _zip(tmp_path / "big.zip", {"DS/a.png": b"x" * 1000, "DS/b.png": b"x" * 1000})
    with pytest.raises(UnsafeArchive, match="GiB"):
        extract(big, tmp_path / "out", limits=Limits(max_total=1500))
    assert not (tmp_path / "out").exists()


def test_a_truncated_archive_is_named_and_leaves_nothing(tmp_path: Path) -> None:
    arc = _zip(tmp_path / "a.zip", {f"DS/{i}.png": bytes(range(256)) * 64 for i in range(8)})
    cut = tmp_path / "cut.zip"
    cut.write_bytes(arc.read_bytes()[: arc.stat().st_size * 2 // 3])  # the central directory is gone
    with pytest.raises(DamagedArchive, match="truncated"):
        extract(cut, tmp_path / "out")
    # a member whose data is damaged (CRC mismatch) is found while unpacking
    raw = bytearray(arc.read_bytes())
    raw[200] ^= 0xFF
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DamagedArchive, match="truncated or corrupt"):
        extract(bad, tmp_path / "out2")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_unpacking_into_an_existing_folder_merges(tmp_path: Path) -> None:
    extract(_zip(tmp_path / "a.zip", {"A/x.png": b"1"}), tmp_path / "out")
    extract(_zip(tmp_path / "b.zip", {"B/y.png": b"2", "A/x.png": b"3"}), tmp_path / "out")
    assert (tmp_path / "out/A/x.png").read_bytes() == b"3" and (tmp_path / "out/B/y.png").read_bytes() == b"2"


def test_members_that_expand_together_are_refused_however_small_each_is(tmp_path: Path) -> None:
    """200 members of 512 KiB of zeros: each under the member floor, together about 1000 times their bytes."""
    members = {f"DS/cat/{i:03}.png": b"\0" * (512 << 10) for i in range(200)}
    arc = _zip(tmp_path / "bomb.zip", members, zipfile.ZIP_DEFLATED)
    with pytest.raises(UnsafeArchive, match=r"bomb.zip: the archive as a whole expands \d+ times"):
        extract(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_dataset_archive_with_many_compressible_masks_unpacks(tmp_path: Path) -> None:
    """Photographs barely compress, masks compress a lot: a real archive is far from the whole-archive limit."""
    rng = random.Random(0)
    members: dict[str, bytes] = {}
    for i in range(60):
        members[f"DS/cat/test/broken/{i:03}.png"] = rng.randbytes(48 << 10)
        members[f"DS/cat/ground_truth/broken/{i:03}_mask.png"] = b"\0" * (40 << 10)  # ~1000x each
    arc = _zip(tmp_path / "real.zip", members, zipfile.ZIP_DEFLATED)
    assert extract(arc, tmp_path / "out") == 120


def _local_data_offset(raw: bytes, info: zipfile.ZipInfo) -> int:
    """Where a member's compressed bytes start (after its local header, whose extra field may differ)."""
    at = info.header_offset
    return at + 30 + int.from_bytes(raw[at + 26:at + 28], "little") + int.from_bytes(raw[at + 28:at + 30], "little")


def test_a_corrupt_compressed_stream_is_a_damaged_archive(tmp_path: Path) -> None:
    arc = _zip(tmp_path / "a.zip", {"DS/x.png": bytes(range(256)) * 64}, zipfile.ZIP_DEFLATED)
    raw = bytearray(arc.read_bytes())
    with zipfile.ZipFile(arc) as zf:
        start = _local_data_offset(bytes(raw), zf.infolist()[0])
    raw[start] = 0xFF  # block type 3: reserved, zlib refuses the stream
    arc.write_bytes(bytes(raw))
    with pytest.raises(DamagedArchive, match=r"a.zip: member 'DS/x.png' cannot be read.*corrupt"):
        extract(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_full_disk_is_not_called_a_damaged_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing a member fails for the disk's sake (ENOSPC): the message must not send the user to download a
    good archive again; it names the archive and the file it could not write, and nothing half-done stays."""
    import errno
    import io

    arc = _zip(tmp_path / "a.zip", {f"DS/{i}.png": bytes(range(256)) * 64 for i in range(3)}, zipfile.ZIP_DEFLATED)

    class FullDisk(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("mmeval.data.unpack.open", lambda *a, **k: FullDisk(), raising=False)
    with pytest.raises(InputError) as caught:
        extract(arc, tmp_path / "out")
    assert not isinstance(caught.value, DamagedArchive)
    message = str(caught.value)
    assert str(arc) in message and "No space left" in message and "0.png" in message
    assert "download it again" not in message
    assert not (tmp_path / "out").exists()
