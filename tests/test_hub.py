"""``--data mmad``: the hub path, against a local server that serves folders in the hub repository's layout.

The download goes through ``huggingface_hub`` exactly as for a user (repository listing, the tree, HEAD
and GET of each file, Range requests to resume); only the endpoint is local. No network is used.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from byod_trees import counts, hub_repo
from fake_hub_server import FakeHub

from mmeval.data import hub
from mmeval.errors import InputError

# huggingface_hub is imported inside the tests, never at collection: it reads HF_HUB_OFFLINE when first imported
pytestmark = pytest.mark.skipif(importlib.util.find_spec("huggingface_hub") is None,
                                reason="needs huggingface_hub (the hub extra)")

ROOT = Path(__file__).resolve().parents[1]
REPO = "jiang-cc/MMAD"


@pytest.fixture
def syn(synthetic_demo: Path) -> Path:
    return synthetic_demo


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with an empty mmeval home (no verified copy, no hub cache)."""
    monkeypatch.setenv("MMEVAL_HOME", str(tmp_path / "home"))


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test may reach the (local) hub: the suite runs with HF_HUB_OFFLINE=1 otherwise."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def bench(syn: Path) -> hub.HubBenchmark:
    """MMAD's entry, with the counts of the synthetic stand-in as its one known release."""
    questions, images = counts(syn / "mmad.json")
    return hub.HubBenchmark(spec="mmad", repo=REPO, licence=hub.MMAD.licence, licence_url=hub.MMAD.licence_url,
                            releases=(hub.Release(questions, images, "the test release"),))


@pytest.mark.parametrize("style", ["per-dataset", "all-data", "folders"])
def test_fetch_lists_downloads_unpacks_and_verifies(syn: Path, tmp_path: Path, online: None, style: str) -> None:
    repo = hub_repo(syn, tmp_path / "repo", style)
    said: list[str] = []
    with FakeHub({REPO: repo}) as h:
        path = hub.fetch(bench(syn), endpoint=h.url, say=said.append)
        gets = [p for m, p, _ in h.log if m == "GET" and "/resolve/" in p]
    assert path == hub.benchmark_home(hub.MMAD) / "mmad.json"
    assert "README.md" not in " ".join(gets)  # only what the benchmark needs is downloaded
    assert "CC BY-NC-SA 4.0" in said[0]
    facts = hub.status(hub.MMAD)
    assert facts is not None and facts["missing_images"] == 0 and facts["release"] == "the test release"
    assert (path.parent / "domain_knowledge.json").is_file()
    data = json.loads(path.read_text())
    assert all((path.parent / key).is_file() for key in data)  # keys line up with the unpacked images
    from mmeval.data import load_benchmark

    loaded = load_benchmark(path, path.parent, shots=1)
    assert loaded.skipped == [] and len(loaded.questions) == counts(syn / "mmad.json")[0]


def test_a_verified_copy_is_used_without_the_network_and_the_licence_shows_once(syn: Path, tmp_path: Path,
                                                                                 online: None) -> None:
    repo = hub_repo(syn, tmp_path / "repo")
    with FakeHub({REPO: repo}) as h:
        hub.fetch(bench(syn), endpoint=h.url, say=lambda _: None)
    said: list[str] = []
    path = hub.fetch(bench(syn), endpoint="http://127.0.0.1:9", say=said.append)  # nothing listens there
    assert path.is_file() and said == []


def test_an_interrupted_download_resumes(syn: Path, tmp_path: Path, online: None,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 256 << 10)  # so chunks land on disk before the cut
    repo = hub_repo(syn, tmp_path / "repo")
    with zipfile.ZipFile(repo / "SynthObject.zip", "a") as zf:
        zf.writestr("SynthObject/padding.bin", os.urandom(3 << 20))
    with FakeHub({REPO: repo}, cut_first=("SynthObject.zip",)) as h:
        path = hub.fetch(bench(syn), endpoint=h.url, say=lambda _: None)
        ranges = [r for m, p, r in h.log if m == "GET" and p.endswith("SynthObject.zip") and r]
    assert ranges and ranges[0].startswith("bytes=") and int(ranges[0][6:].rstrip("-")) > 0
    assert (path.parent / "SynthObject/padding.bin").stat().st_size == 3 << 20


def test_a_failed_download_is_an_error_and_a_rerun_keeps_what_arrived(syn: Path, tmp_path: Path, online: None) -> None:
    repo = hub_repo(syn, tmp_path / "repo")
    with FakeHub({REPO: repo}, cut_first=("SynthObject.zip",), break_after_cut=True) as h:
        with pytest.raises(InputError, match="download stopped.*rerun the same command"):
            hub.fetch(bench(syn), endpoint=h.url, say=lambda _: None)
        assert hub.status(hub.MMAD) is None
        h.broken.clear()  # the server is back
        h.log.clear()
        hub.fetch(bench(syn), endpoint=h.url, say=lambda _: None)
        again = [p.rsplit("/", 1)[-1] for m, p, _ in h.log if m == "GET" and "/resolve/" in p]
    assert "SynthObject.zip" in again and "mmad.json" not in again  # finished files are not fetched twice
    assert hub.status(hub.MMAD) is not None


def test_a_truncated_archive_is_an_error_and_nothing_is_marked_ready(syn: Path, tmp_path: Path,
                                                                     online: None) -> None:
    repo = hub_repo(syn, tmp_path / "repo")
    archive = repo / "SynthTexture.zip"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with FakeHub({REPO: repo}) as h, pytest.raises(InputError, match="SynthTexture.zip.*truncated"):
        hub.fetch(bench(syn), endpoint=h.url, say=lambda _: None)
    assert hub.status(hub.MMAD) is None and not hub.benchmark_home(hub.MMAD).exists()


def test_an_archive_member_that_escapes_is_refused(syn: Path, tmp_path: Path, online: None) -> None:
    repo = hub_repo(syn, tmp_path / "repo")
    with zipfile.ZipFile(repo / "SynthObject.zip", "a") as zf:
        zf.writestr("../../../escaped.txt", b"outside")
    with FakeHub({REPO: repo}) as h, pytest.raises(InputError, match="escaped.txt.*outside the target folder"):
        hub.fetch(bench(syn), endpoint=h.url, say=lambda _: None)
    home = Path(os.environ["MMEVAL_HOME"])
    assert not list(home.parent.rglob("escaped.txt")) and hub.status(hub.MMAD) is None


def test_counts_of_no_known_release_are_refused_unless_accepted(syn: Path, tmp_path: Path, online: None) -> None:
    repo = hub_repo(syn, tmp_path / "repo")
    with FakeHub({REPO: repo}) as h:
        with pytest.raises(InputError, match="no known release.*allow-other-counts"):
            hub.fetch(hub.MMAD, endpoint=h.url, say=lambda _: None)  # the real counts: 39,672 / 39,670
        hub.fetch(hub.MMAD, endpoint=h.url, allow_other_counts=True, say=lambda _: None)
    assert "no known release" in (hub.status(hub.MMAD) or {})["release"]
    assert [r.questions for r in hub.MMAD.releases] == [39_672, 39_670]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1, as huggingface_hub sees it (it reads the variable once, when first imported)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_offline_without_a_cache_says_what_to_download_and_where(syn: Path, tmp_path: Path, offline: None) -> None:
    with pytest.raises(InputError) as info:
        hub.fetch(bench(syn), say=lambda _: None)
    text = str(info.value)
    for needed in ("HF_HUB_OFFLINE", "huggingface.co/datasets/jiang-cc/MMAD/resolve/main/mmad.json",
                   "ALL_DATA.zip", "DS-MVTec.zip", str(hub.incoming_folder(hub.MMAD))):
        assert needed in text


def _incoming_with(syn: Path, archive: str, members: dict[str, bytes]) -> Path:
    """The incoming folder holding the benchmark's mmad.json and one deflated archive; returns the archive."""
    incoming = hub.incoming_folder(hub.MMAD)
    incoming.mkdir(parents=True)
    shutil.copyfile(syn / "mmad.json", incoming / "mmad.json")
    with zipfile.ZipFile(incoming / archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return incoming / archive


def test_a_corrupt_compressed_stream_stops_fetch_with_exit_2(syn: Path, offline: None,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from mmeval.cli import main

    arc = _incoming_with(syn, "SynthObject.zip", {"SynthObject/nut/x.png": bytes(range(256)) * 64})
    raw = bytearray(arc.read_bytes())
    name_len, extra_len = (int.from_bytes(raw[at:at + 2], "little") for at in (26, 28))
    raw[30 + name_len + extra_len] = 0xFF  # the first (only) member's deflate stream: a reserved block type
    arc.write_bytes(bytes(raw))
    assert main(["data", "fetch", "mmad"]) == 2
    err = capsys.readouterr().err
    assert f"{arc}: member 'SynthObject/nut/x.png' cannot be read" in err and "Traceback" not in err
    assert hub.status(hub.MMAD) is None


def test_counts_of_no_known_release_name_the_file_the_user_gave(syn: Path, offline: None,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from mmeval.cli import main

    _incoming_with(syn, "SynthObject.zip", {})
    given = hub.incoming_folder(hub.MMAD) / "mmad.json"
    assert main(["data", "fetch", "mmad"]) == 2  # the real counts (39,672 / 39,670) are not the stand-in's
    err = capsys.readouterr().err
    assert f"{given}: " in err and "no known release" in err
    assert ".building-" not in err and hub.status(hub.MMAD) is None  # not the staging folder, deleted by now


def test_offline_files_put_into_the_incoming_folder_are_used(syn: Path, tmp_path: Path, offline: None) -> None:
    repo = hub_repo(syn, tmp_path / "repo")
    incoming = hub.incoming_folder(hub.MMAD)
    shutil.copytree(repo, incoming)
    path = hub.fetch(bench(syn), say=lambda _: None)
    assert (path.parent / "SynthObject/nut/train/good/000.png").is_file()


def test_a_deeply_nested_incoming_mmad_json_is_a_clear_error(syn: Path, tmp_path: Path, offline: None) -> None:
    incoming = hub.incoming_folder(hub.MMAD)
    shutil.copytree(hub_repo(syn, tmp_path / "repo"), incoming)
    (incoming / "mmad.json").write_text('{"a": ' + "[" * 50_000 + "]" * 50_000 + "}", encoding="utf-8")
    with pytest.raises(InputError, match=r"mmad\.json: cannot be read as JSON \(.*nested too deeply"):
        hub.fetch(bench(syn), say=lambda _: None)


def test_offline_uses_the_hub_cache(syn: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    repo = hub_repo(syn, tmp_path / "repo")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with FakeHub({REPO: repo}) as h:
        hub.fetch(bench(syn), endpoint=h.url, say=lambda _: None)
    shutil.rmtree(hub.benchmark_home(hub.MMAD))  # the unpacked copy is gone; the downloads are cached
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    path = hub.fetch(bench(syn), say=lambda _: None)
    assert path.is_file() and hub.status(hub.MMAD) is not None


def test_a_second_fetch_waits_for_the_first_and_then_uses_its_copy(syn: Path, tmp_path: Path, offline: None) -> None:
    """Two fetches at once (two commands, or a fetch beside a run on --data mmad) would race on the staging and
    target folders: one holds the lock, the other says whom it waits for and then finds the copy ready."""
    import threading
    import time

    from mmeval.locks import folder_lock

    shutil.copytree(hub_repo(syn, tmp_path / "repo"), hub.incoming_folder(hub.MMAD))
    home = hub.benchmark_home(hub.MMAD)
    said: list[str] = []
    holder = folder_lock(home).acquire()  # as another process fetching would
    second = threading.Thread(target=lambda: hub.fetch(bench(syn), say=said.append))
    second.start()
    deadline = time.monotonic() + 30
    while not any("waiting" in s for s in said) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(f"waiting for mmeval pid {os.getpid()}" in s for s in said), said
    assert not home.exists() and second.is_alive()  # nothing touched while the other holds the lock
    home.mkdir(parents=True)  # the first fetch finishes: its copy is in place
    shutil.copyfile(syn / "mmad.json", home / "mmad.json")
    (home / hub.READY).write_text("{}", encoding="utf-8")
    holder.release()
    second.join(30)
    assert not second.is_alive()
    assert not any("is ready in" in s for s in said)  # the second used the first's copy, unpacked nothing again


def test_specs() -> None:
    assert hub.parse_spec("mmad") == hub.HubSpec(hub.MMAD, None)
    assert hub.parse_spec("mmad@c4ed190dcb530f2f673ab293e575ad32054bb3cf").revision.startswith("c4ed190")
    assert hub.parse_spec("synthetic") is None and hub.parse_spec("./mmad") is None
    with pytest.raises(InputError, match="not a revision"):
        hub.parse_spec("mmad@../x")


@pytest.mark.slow
def test_mmeval_run_data_mmad_from_the_command_line(syn: Path, tmp_path: Path) -> None:
    """The user's path: fetch through the CLI (HF_ENDPOINT names the hub), then run on --data mmad."""
    repo = hub_repo(syn, tmp_path / "repo")
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "MMEVAL_HOME": str(tmp_path / "home"),
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    with FakeHub({REPO: repo}) as h:
        env["HF_ENDPOINT"] = h.url
        fetch = subprocess.run([sys.executable, "-m", "mmeval", "data", "fetch", "mmad", "--allow-other-counts"],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert fetch.returncode == 0, fetch.stderr
    assert "CC BY-NC-SA 4.0" in fetch.stderr and fetch.stdout.strip() == str(tmp_path / "home" / "mmad" / "main")
    env["HF_HUB_OFFLINE"] = "1"  # from now on no network is needed
    run = subprocess.run([sys.executable, "-m", "mmeval", "run", "--model", "random", "--data", "mmad", "--out",
                          str(tmp_path / "run"), "--no-progress"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["config"]["data"] == str(tmp_path / "home" / "mmad" / "main" / "mmad.json")
    assert "CC BY-NC-SA" not in run.stderr  # the licence shows on the first download only
