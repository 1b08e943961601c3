"""``--data mmad``: the published MMAD benchmark, fetched from the Hugging Face hub into mmeval's cache.

What :func:`fetch` does, once (later calls find the verified folder and touch no network):

1. lists the files of the dataset repository (``jiang-cc/MMAD``) at the revision asked for, rather
   than assuming them;
2. downloads ``mmad.json``, ``domain_knowledge.json`` and the image data through
   ``huggingface_hub.snapshot_download`` into ``$MMEVAL_HOME/hub`` (the hub library's own cache: it
   resumes a dropped connection with a range request, and files that arrived are never fetched twice,
   so rerunning after an interruption downloads only the rest). The image
   data is taken as the repository ships it: one archive per source dataset (``DS-MVTec.zip`` ...),
   else ``ALL_DATA.zip``, else the per-dataset folders;
3. unpacks the archives safely (:mod:`mmeval.data.unpack`: no path escapes, zip-bomb limits, a
   damaged archive is an error that says what to do) into ``$MMEVAL_HOME/mmad/<revision>``;
4. verifies it: the question and image counts must be those of a known release (39,672 questions on
   8,366 images, or 39,670 questions in the later revision), and query images missing from the data
   are counted and reported;
5. writes a marker with what it verified; from then on ``--data mmad`` behaves like
   ``--data $MMEVAL_HOME/mmad/<revision>``.

One process fetches at a time: steps 1 to 5 run under a lock beside the folder (a second fetch, or a run
that needs one, waits and then uses the first one's copy). The dataset's licence (CC BY-NC-SA 4.0) is
printed before the first download. Offline (``HF_HUB_OFFLINE=1``) the hub cache is used when it holds
the files; otherwise the error says which files to download and where to put them
(``$MMEVAL_HOME/incoming/MMAD``, which is read before the hub).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mmeval.data.unpack import Limits, common_top, extract
from mmeval.errors import InputError
from mmeval.home import mmeval_home, staged
from mmeval.jsonsafe import parse_json
from mmeval.locks import folder_lock

READY = ".mmeval-ready.json"
KNOWLEDGE = "domain_knowledge.json"
ALL_DATA = "ALL_DATA.zip"


@dataclass(frozen=True)
class Release:
    """Counts that identify a published version of a benchmark file."""

    questions: int
    images: int | None  # None: not checked
    label: str


@dataclass(frozen=True)
class HubBenchmark:
    """A benchmark in the mmad.json layout published as a dataset repository on the hub."""

    spec: str  # the --data keyword
    repo: str
    licence: str
    licence_url: str
    releases: tuple[Release, ...]
    citation: str = ""

    @property
    def name(self) -> str:
        return self.repo.rsplit("/", 1)[-1]


MMAD = HubBenchmark(
    spec="mmad", repo="jiang-cc/MMAD", licence="CC BY-NC-SA 4.0",
    licence_url="https://creativecommons.org/licenses/by-nc-sa/4.0/",
    releases=(Release(39_672, 8_366, "the release of the MMAD paper (39,672 questions on 8,366 images)"),
              Release(39_670, None, "the later revision (39,670 questions; images replaced in DS-MVTec/pill)")),
    citation="Jiang et al., MMAD: A Comprehensive Benchmark for Multimodal Large Language Models in Industrial "
             "Anomaly Detection, ICLR 2025",
)
BENCHMARKS = {MMAD.spec: MMAD}
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")


class FetchError(InputError):
    """The download could not be completed (network, offline, missing files): the message says what to do."""


@dataclass(frozen=True)
class HubSpec:
    bench: HubBenchmark
    revision: str | None


def parse_spec(data: str) -> HubSpec | None:
    """``mmad`` or ``mmad@REVISION`` -> the benchmark and revision; None when ``data`` names something else."""
    name, sep, revision = data.partition("@")
    bench = BENCHMARKS.get(name)
    if bench is None:
        return None
    if sep and not _REVISION.match(revision):
        raise InputError(f"--data {data}: '{revision}' is not a revision (a branch, tag or commit hash)")
    return HubSpec(bench, revision or None)


def benchmark_home(bench: HubBenchmark, revision: str | None = None) -> Path:
    """Where the verified, unpacked benchmark lives: ``$MMEVAL_HOME/<name>/<revision>``."""
    return mmeval_home() / bench.name.lower() / (revision or "main").replace("/", "--")


def incoming_folder(bench: HubBenchmark) -> Path:
    """Files put here by hand (mmad.json and the archives) are used instead of downloading them."""
    return mmeval_home() / "incoming" / bench.name


def hub_cache() -> Path:
    return mmeval_home() / "hub"


def _say(text: str) -> None:
    print(f"mmeval: {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ fetching


def fetch(bench: HubBenchmark = MMAD, *, revision: str | None = None, endpoint: str | None = None,
          force: bool = False, allow_other_counts: bool = False, delete_archives: bool = False,
          limits: Limits | None = None, say: Callable[[str], None] = _say) -> Path:
    """The benchmark's verified ``mmad.json``, downloaded, unpacked and checked on first use.

    One process at a time fetches into a folder (a lock beside it, :func:`mmeval.locks.folder_lock`): another
    fetch, or a run on ``--data mmad`` that needs the fetch, says whom it waits for and waits; when the holder
    leaves a verified copy, the waiter uses it (even under ``force``: it is as fresh as can be).
    """
    home = benchmark_home(bench, revision)
    if _is_ready(home) and not force:
        return home / "mmad.json"
    waited: list[str] = []

    def waiting(holder: str) -> None:
        waited.append(holder)
        say(f"{bench.name} is being fetched into {home} by another process; waiting for {holder}")

    lock = folder_lock(home).acquire(on_wait=waiting)
    try:
        if _is_ready(home) and (waited or not force):
            return home / "mmad.json"
        return _fetch_locked(bench, home, revision, endpoint, allow_other_counts, delete_archives, limits, say)
    finally:
        lock.release()


def _is_ready(home: Path) -> bool:
    return (home / READY).is_file() and (home / "mmad.json").is_file()


def _fetch_locked(bench: HubBenchmark, home: Path, revision: str | None, endpoint: str | None,
                  allow_other_counts: bool, delete_archives: bool, limits: Limits | None,
                  say: Callable[[str], None]) -> Path:
    """Download (or take from the incoming folder), unpack and verify into ``home``; the caller holds its lock."""
    incoming = incoming_folder(bench)
    if (incoming / "mmad.json").is_file():
        say(f"using the files in {incoming} (put there by hand) instead of downloading them")
        source, commit, downloaded = incoming, None, False
    else:
        say(f"{bench.name} ({bench.repo}) is licensed {bench.licence} ({bench.licence_url}): attribution, "
            "non-commercial use only, share-alike. Cite: " + (bench.citation or bench.repo))
        source, commit = _download(bench, revision, endpoint, say)
        downloaded = True
    facts = _install(bench, source, home, revision, commit, allow_other_counts, limits, say)
    if delete_archives and downloaded:
        for name in facts.get("archives", []):
            _delete_cached(source / name)
    return home / "mmad.json"


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise InputError("--data mmad needs the huggingface_hub package: pip install 'mmeval[hub]'") from None
    return huggingface_hub


def _network_errors() -> tuple[type[BaseException], ...]:
    """The errors a download can end with: the hub library's, its HTTP client's, and the OS's."""
    import importlib

    found: list[type[BaseException]] = [OSError, ValueError]
    for module, name in (("huggingface_hub.errors", "EntryNotFoundError"), ("httpx2", "HTTPError"),
                         ("httpx", "HTTPError"), ("requests", "RequestException")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _offline_help(bench: HubBenchmark, revision: str | None, why: str) -> FetchError:
    base = f"https://huggingface.co/datasets/{bench.repo}/resolve/{revision or 'main'}"
    return FetchError(
        f"--data {bench.spec}: {why}. Either allow downloads (unset HF_HUB_OFFLINE) and rerun, or download "
        f"these files on a machine with network access: {base}/mmad.json, {base}/{KNOWLEDGE} and the image "
        f"archives ({', '.join(f'{d}.zip' for d in ('DS-MVTec', 'MVTec-AD', 'MVTec-LOCO', 'VisA', 'GoodsAD'))}, or "
        f"{ALL_DATA}), put them into {incoming_folder(bench)} and rerun: mmeval unpacks and verifies them there "
        f"without a network. (Or copy a hub cache made elsewhere with 'mmeval data fetch {bench.spec}' to "
        f"{hub_cache()}.)")


def _download(bench: HubBenchmark, revision: str | None, endpoint: str | None,
              say: Callable[[str], None]) -> tuple[Path, str | None]:
    """Download what the repository holds into the hub cache; return (snapshot folder, commit)."""
    hf = _hub()
    errors = _network_errors()
    offline_errors: tuple[type[BaseException], ...] = (*errors, FetchError)
    from huggingface_hub import constants

    offline = bool(getattr(constants, "is_offline_mode", lambda: constants.HF_HUB_OFFLINE)())
    common = {"repo_id": bench.repo, "repo_type": "dataset", "revision": revision, "cache_dir": str(hub_cache())}
    if offline:
        try:
            first = Path(hf.snapshot_download(**common, local_files_only=True, allow_patterns=["mmad.json", KNOWLEDGE]))
            present = [p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file()]
            patterns, _ = _image_patterns(present, _datasets_named(first / "mmad.json"))
            folder = Path(hf.snapshot_download(**common, local_files_only=True,
                                               allow_patterns=["mmad.json", KNOWLEDGE, *patterns]))
        except offline_errors:
            raise _offline_help(bench, revision, "HF_HUB_OFFLINE is set and the hub cache does not hold the "
                                                 "dataset") from None
        return folder, folder.name
    try:
        files = hf.HfApi(endpoint=endpoint).list_repo_files(bench.repo, repo_type="dataset", revision=revision)
    except errors as exc:
        raise _download_failed(bench, revision, exc) from None
    if "mmad.json" not in files:
        raise FetchError(f"{bench.repo}: the repository holds no mmad.json at revision {revision or 'main'} (files: "
                         f"{', '.join(sorted(files)[:20])}{' ...' if len(files) > 20 else ''})")
    try:
        first = Path(hf.snapshot_download(**common, endpoint=endpoint, allow_patterns=["mmad.json", KNOWLEDGE]))
        patterns, names = _image_patterns(files, _datasets_named(first / "mmad.json"))
        say(f"downloading {bench.repo} ({', '.join(names)}) into {hub_cache()}; a dropped connection is resumed, and "
            "rerunning after an interruption downloads only the files that had not arrived")
        folder = Path(hf.snapshot_download(**common, endpoint=endpoint,
                                           allow_patterns=["mmad.json", KNOWLEDGE, *patterns]))
    except errors as exc:
        raise _download_failed(bench, revision, exc) from None
    return folder, folder.name


def _download_failed(bench: HubBenchmark, revision: str | None, exc: BaseException) -> FetchError:
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if name in ("OfflineModeIsEnabled", "LocalEntryNotFoundError"):
        return _offline_help(bench, revision, "the hub cannot be reached and the cache does not hold the dataset")
    if name in ("RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError"):
        return FetchError(f"{bench.repo}: {text} (check --data {bench.spec}@REVISION and your hub login)")
    if "Consistency check failed" in text:
        return FetchError(f"{bench.repo}: a file arrived with the wrong size ({text}); rerun the same command to "
                          "download it again")
    return FetchError(f"{bench.repo}: the download stopped ({name}: {text}); rerun the same command: the files "
                      "that arrived are kept and only the rest is downloaded")


def _read(json_path: Path, given: Path | None = None) -> dict[str, Any]:
    """The mmad.json as a dict (a damaged file is an error naming ``given``, the file as the user knows it,
    and saying how to fetch it again)."""
    shown = given or json_path
    try:
        data = parse_json(json_path.read_bytes(), "the file", max_depth=None)
    except (OSError, InputError) as exc:
        raise FetchError(f"{shown}: cannot be read as JSON ({exc}); fetch it again with --force") from None
    if not isinstance(data, dict):
        raise FetchError(f"{shown}: not an mmad.json (a JSON object keyed by image path)")
    return data


def _datasets_named(json_path: Path) -> list[str]:
    """The first path components the file's records use (query images, templates, in order of appearance)."""
    seen: dict[str, None] = {}
    for key, value in _read(json_path).items():
        paths = [key]
        if isinstance(value, dict):
            for field in ("similar_templates", "random_templates"):
                paths += [p for p in value.get(field) or [] if isinstance(p, str)]
        for p in paths:
            parts = PurePosixPath(p).parts
            if len(parts) > 1 and parts[0] not in ("/", ".."):
                seen.setdefault(parts[0], None)
    return list(seen)


def _image_patterns(files: Sequence[str], datasets: Sequence[str]) -> tuple[list[str], list[str]]:
    """Which repository files hold the images of ``datasets``: (allow patterns, readable names).

    Per dataset: its archive ``NAME.zip`` when the repository has one, else ``ALL_DATA.zip`` (once),
    else its folder ``NAME/``. A dataset found in none of them is an error naming it.
    """
    have = set(files)
    folders = {PurePosixPath(f).parts[0] for f in files if "/" in f}
    patterns: list[str] = []
    missing = []
    for name in datasets:
        if f"{name}.zip" in have:
            patterns.append(f"{name}.zip")
        elif ALL_DATA in have:
            if ALL_DATA not in patterns:
                patterns.append(ALL_DATA)
        elif name in folders:
            patterns.append(f"{name}/*")
        else:
            missing.append(name)
    if missing:
        raise FetchError(f"the repository holds no images for {', '.join(missing)} (neither NAME.zip, {ALL_DATA} nor "
                         f"a folder NAME/; files: {', '.join(sorted(have)[:20])})")
    return patterns, [p.removesuffix("/*") + ("/" if p.endswith("/*") else "") for p in patterns]


# ------------------------------------------------------------------------------------------ installing


def _install(bench: HubBenchmark, source: Path, home: Path, revision: str | None, commit: str | None,
             allow_other_counts: bool, limits: Limits | None, say: Callable[[str], None]) -> dict[str, Any]:
    """Unpack and verify ``source`` (a snapshot or the incoming folder) into ``home``, atomically."""
    datasets = _datasets_named(source / "mmad.json")
    archives: list[str] = []
    with staged(home, "building-") as tmp:
        for archive in sorted(source.glob("*.zip")):
            archives.append(archive.name)
            target, prefix = _placement(archive, datasets, tmp)
            extract(archive, target, limits=limits, strip=prefix, progress=True)
        for name in datasets:
            folder = source / name
            if folder.is_dir() and not (tmp / name).exists():
                _copy_tree(folder, tmp / name)
        for name in ("mmad.json", KNOWLEDGE):
            if (source / name).is_file():
                shutil.copyfile(source / name, tmp / name)
        facts = verify(bench, tmp / "mmad.json", allow_other_counts, given=source / "mmad.json")
        facts.update(repo=bench.repo, revision=revision or "main", commit=commit, archives=archives,
                     licence=bench.licence)
        (tmp / READY).write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")
    missing = facts["missing_images"]
    say(f"{bench.name} is ready in {home}: {facts['questions']:,} questions on {facts['images']:,} images, "
        f"{facts['release']}" + (f"; {missing:,} query image(s) are missing from the image data and will be "
                                 "skipped (listed in each run's scores.json)" if missing else ""))
    return facts


def _placement(archive: Path, datasets: Sequence[str], tmp: Path) -> tuple[Path, str]:
    """Where an archive's members go so that paths line up with the mmad.json keys: (folder, prefix to drop).

    ``ALL_DATA.zip`` holds ``ALL_DATA/<dataset>/...`` (its top folder is dropped); ``<dataset>.zip``
    holds ``<dataset>/...`` (kept) or the category folders directly (put under ``<dataset>/``).
    """
    import zipfile

    try:
        with zipfile.ZipFile(archive) as zf:
            names = [i.filename.replace("\\", "/") for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, EOFError):
        return tmp, ""  # extract() reports the damage
    known = set(datasets)
    top = common_top(names)
    firsts = {n.split("/")[0] for n in names}
    inner = {n.split("/")[1] for n in names if n.count("/") >= 1 and n.split("/")[0] == top}
    if top and top not in known and inner & known:
        return tmp, top
    return (tmp if firsts & known else tmp / archive.stem), ""


def _copy_tree(src: Path, dest: Path) -> None:
    """Copy a downloaded folder (hub snapshots hold links into the blob store) as plain files."""
    for path in sorted(src.rglob("*")):
        if path.is_dir():
            continue
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        real = path.resolve()
        try:
            os.link(real, target)
        except OSError:
            shutil.copyfile(real, target)


def _delete_cached(path: Path) -> None:
    """Remove a downloaded archive from the hub cache (its blob and the snapshot's link to it)."""
    real = path.resolve()
    for p in (real, path):
        try:
            p.unlink()
        except OSError:
            pass


def verify(bench: HubBenchmark, json_path: Path, allow_other_counts: bool = False, *,
           given: Path | None = None) -> dict[str, Any]:
    """Count questions and images; they must match a known release unless ``allow_other_counts``.

    ``json_path`` is the copy being installed (its images are counted beside it); ``given`` is the file it was
    copied from (the download or the incoming folder's), which errors name: the copy lies in a staging folder
    that is gone by the time the user reads the message.
    """
    data = _read(json_path, given)
    questions = sum(len(v.get("conversation") or []) for v in data.values() if isinstance(v, dict))
    images = len(data)
    root = json_path.parent
    missing = sum(1 for key in data if not (root / key).is_file())
    release = next((r for r in bench.releases
                    if r.questions == questions and (r.images is None or r.images == images)), None)
    if release is None and not allow_other_counts:
        known = "; ".join(r.label for r in bench.releases)
        raise FetchError(f"{given or json_path}: {questions:,} questions on {images:,} images, which is no known "
                         f"release of {bench.name} ({known}). The file may be damaged or a new revision: rerun with "
                         f"'mmeval data fetch {bench.spec} --force' to fetch it again, or add --allow-other-counts to "
                         "accept it")
    return {"questions": questions, "images": images, "missing_images": missing,
            "release": release.label if release else "a revision with counts of no known release (accepted)"}


def status(bench: HubBenchmark = MMAD, revision: str | None = None) -> dict[str, Any] | None:
    """What the verified copy holds (the marker's facts), or None when it is not fetched yet."""
    path = benchmark_home(bench, revision) / READY
    if not path.is_file():
        return None
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return facts if isinstance(facts, dict) else None
