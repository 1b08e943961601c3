"""Nothing lost, nothing wrong: the run directory, changed data, bad images, hostile paths, odd environments.

Each test reproduces one way mmeval once lost data or mis-read its input, and fails if it comes back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from conftest import materialise, write_png
from PIL import Image

from mmeval import model_adapters
from mmeval.cli import main
from mmeval.config import RunConfig, RunRecord
from mmeval.model_adapters.baselines import RandomAdapter
from mmeval.predictions import read_predictions
from mmeval.prompting.messages import Request, Response
from mmeval.run.rundir import RunDirLock
from mmeval.run.runner import run

ROOT = Path(__file__).resolve().parents[1]
BROKEN_KEY = "DS-MVTec/bottle/image/good/003.png"


def cli(data: Path, out: Path, *extra: str, model: str = "random") -> int:
    return main(["run", "--model", model, "--data", str(data), "--out", str(out), "--no-progress", "--shots", "1",
                 *extra])


# ------------------------------------------------------------------------------------------ the run directory


def test_overwrite_removes_only_mmevals_own_files(official_data: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "r"
    assert cli(official_data, out, "--seed", "1") == 0
    (out / "notes.txt").write_text("mine")
    (out / "scores.csv.bak").write_text("mine too")
    assert cli(official_data, out, "--seed", "2", "--overwrite") == 2  # a foreign file: refused, nothing removed
    assert "did not write (notes.txt, scores.csv.bak)" in capsys.readouterr().err
    assert (out / "predictions.jsonl").is_file() and (out / "notes.txt").is_file()
    assert cli(official_data, out, "--seed", "2", "--overwrite", "--allow-other-files") == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "scores.csv.bak").read_text() == "mine too"
    assert RunRecord.read(out / "run.json").config.seed == 2


def test_out_holding_the_data_is_refused(official_data: Path, capsys: pytest.CaptureFixture) -> None:
    before = sorted(p.relative_to(official_data.parent) for p in official_data.parent.rglob("*"))
    assert cli(official_data, official_data.parent) == 2
    assert "holds the benchmark itself" in capsys.readouterr().err
    assert cli(official_data, official_data.parent / "DS-MVTec") == 2  # inside the data too
    assert cli(official_data, official_data.parent, "--overwrite") == 2
    assert sorted(p.relative_to(official_data.parent) for p in official_data.parent.rglob("*")) == before


def test_a_second_run_into_the_same_directory_is_refused(official_data: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "r"
    out.mkdir()
    with RunDirLock(out):  # as another process holding it would
        assert cli(official_data, out) == 2
        err = capsys.readouterr().err
        assert f"is in use by mmeval pid {os.getpid()}" in err
    assert not (out / "predictions.jsonl").exists()
    assert cli(official_data, out) == 0  # the lock dies with its holder


def test_a_second_process_is_refused_while_the_first_runs(official_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    script = ("import sys, time\nfrom pathlib import Path\nfrom mmeval.run.rundir import RunDirLock\n"
              "with RunDirLock(Path(sys.argv[1])):\n    print('locked', flush=True)\n    time.sleep(30)\n")
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        done = subprocess.run([sys.executable, "-m", "mmeval", "run", "--model", "random", "--data", str(official_data),
                               "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=120,
                              env={**os.environ})
        assert done.returncode == 2 and f"pid {holder.pid}" in done.stderr
    finally:
        holder.kill()
        holder.wait()


class Forgetful(RandomAdapter):
    """Never answers one question (as a buggy or interrupted adapter would)."""

    family: ClassVar[str] = "forgetful"

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        for r in super().predict(batch):
            if not r.id.endswith("good/003.png#1"):
                yield r


def test_a_partial_run_is_not_reported_complete(official_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    result = run(RunConfig(model="random", data=str(official_data), shots=1), tmp_path / "a", progress=False,
                 adapter=Forgetful("forgetful"))
    assert result.missing == 1 and result.answered == result.total - 1
    family = model_adapters.Family("forgetful", f"{__name__}:Forgetful", "test", False)
    monkeypatch.setitem(model_adapters.FAMILIES, "forgetful", family)
    assert cli(official_data, tmp_path / "b", model="forgetful") == 3
    assert "incomplete: 1 of 12 question(s) have no answer: 1 never asked" in capsys.readouterr().err
    status = json.loads((tmp_path / "b" / "status.json").read_text())
    assert status["complete"] is False and status["missing"] == 1


class Failing(RandomAdapter):
    """Records an error for one question (a timeout, a refused request ...), as an API or worker family does."""

    family: ClassVar[str] = "failing"

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        for r in super().predict(batch):
            yield Response(id=r.id, error="timed out", retryable=True) if r.id.endswith("good/003.png#1") else r


def test_a_run_whose_questions_ended_in_errors_exits_3_and_says_so(
        official_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(model_adapters.FAMILIES, "failing",
                        model_adapters.Family("failing", f"{__name__}:Failing", "test", False))
    out = tmp_path / "r"
    assert cli(official_data, out, model="failing") == 3
    err = capsys.readouterr().err
    assert "incomplete: 1 of 12 question(s) have no answer: 1 ended in an error (1 may succeed on a rerun)" in err
    assert "rerun the same command" in err
    scores = json.loads((out / "scores.json").read_text())
    assert scores["status"]["complete"] is False and scores["status"]["errors"] == 1
    assert "Incomplete run" in (out / "report.html").read_text()
    # the same run, finished by a model that answers: complete, exit 0, and the report says nothing of it
    answering = model_adapters.Family("failing", "mmeval.model_adapters.baselines:RandomAdapter", "test", False)
    monkeypatch.setitem(model_adapters.FAMILIES, "failing", answering)
    assert cli(official_data, out, model="failing") == 0
    assert json.loads((out / "status.json").read_text())["complete"] is True
    assert json.loads((out / "scores.json").read_text())["status"]["summary"] == "complete: all 12 question(s) answered"
    assert "Incomplete run" not in (out / "report.html").read_text()


# ------------------------------------------------------------------------------------------ changed data


def test_changed_records_are_asked_again_and_removed_ones_dropped(official_records: dict, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    data = materialise(official_records, tmp_path / "d")
    out = tmp_path / "r"
    assert cli(data, out, "--no-shuffle") == 0
    first = {p.id: p for p in read_predictions(out / "predictions.jsonl")}
    records = json.loads(data.read_text())
    flipped = "DS-MVTec/bottle/image/broken_large/000.png"
    item = records[flipped]["conversation"][0]
    item["Answer"] = "B" if item["Answer"] == "A" else "A"
    removed = next(k for k in records if k != flipped)
    del records[removed]
    data.write_text(json.dumps(records), encoding="utf-8")
    capsys.readouterr()
    assert cli(data, out, "--no-shuffle") == 0
    err = capsys.readouterr().err
    assert "the data changed" in err and "1 question(s) asked again" in err
    second = {p.id: p for p in read_predictions(out / "predictions.jsonl")}
    assert not any(i.startswith(removed + "#") for i in second)  # its predictions left with it
    assert second[f"{flipped}#0"].answer != first[f"{flipped}#0"].answer  # scored against the new answer
    assert all(second[i] == first[i] for i in second if not i.startswith(flipped + "#0"))  # the rest reused
    log = [json.loads(line) for line in (out / "changes.jsonl").read_text().splitlines()]
    assert log[-1]["changed"] == 1 and log[-1]["removed"] == sum(i.startswith(removed + "#") for i in first)


# ------------------------------------------------------------------------------------------ bad input


def _broken(kind: str, path: Path) -> None:
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "not-an-image":
        path.write_bytes(b"this is text")
    elif kind == "truncated":
        Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8")).save(path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "bomb":  # a tiny file that claims to be 20000 x 20000 pixels
        Image.new("1", (20000, 20000)).save(path)


@pytest.mark.parametrize("kind,needle,level", [("zero-byte", "empty file", "header"),
                                                ("not-an-image", "not a readable image", "header"),
                                                ("bomb", "too large", "header"),
                                                ("truncated", "unreadable image", "full")])
def test_bad_images_are_bad_records(official_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                    kind: str, needle: str, level: str) -> None:
    _broken(kind, official_data.parent / BROKEN_KEY)
    assert cli(official_data, tmp_path / "strict", "--strict", "--verify-images", level) == 2
    err = capsys.readouterr().err
    assert f"record '{BROKEN_KEY}'" in err and needle in err and "Traceback" not in err
    assert cli(official_data, tmp_path / "lenient", "--verify-images", level, "--model", "expert") == 0
    report = json.loads((tmp_path / "lenient" / "scores.json").read_text())
    assert [r["key"] for r in report["skipped"]["records"]] == [BROKEN_KEY]
    assert needle in report["skipped"]["records"][0]["reason"]


def test_duplicate_keys_are_reported(official_records: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = materialise(official_records, tmp_path / "d")
    text = data.read_text()
    clean = text
    key = next(iter(official_records))
    copy = json.dumps({key: official_records[key]})[1:-1]  # the same key once more, at the end
    data.write_text(text.rstrip()[:-1] + ", " + copy + "}", encoding="utf-8")
    assert cli(data, tmp_path / "strict", "--strict") == 2
    assert "appears again later in the file" in capsys.readouterr().err
    assert cli(data, tmp_path / "r") == 0
    skipped = json.loads((tmp_path / "r" / "scores.json").read_text())["skipped"]["records"]
    assert [r["key"] for r in skipped] == [key]
    inner = clean.replace('"Answer": "A"', '"Answer": "A", "Answer": "B"', 1)
    data.write_text(inner, encoding="utf-8")
    assert cli(data, tmp_path / "inner", "--strict") == 2
    assert "Answer: the field appears twice" in capsys.readouterr().err


def test_symlinks_out_of_the_data_root_are_refused(official_data: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    secret = tmp_path / "outside" / "secret.png"
    write_png(secret, 99)
    target = official_data.parent / BROKEN_KEY
    target.unlink()
    target.symlink_to(secret)
    assert cli(official_data, tmp_path / "r", "--strict") == 2
    assert "leads outside the data root" in capsys.readouterr().err
    assert cli(official_data, tmp_path / "r2") == 0
    preds = read_predictions(tmp_path / "r2" / "predictions.jsonl")
    assert preds and not any(p.image == BROKEN_KEY for p in preds)
    assert "secret" not in (tmp_path / "r2" / "report.html").read_text(encoding="utf-8")


def test_a_linked_folder_is_followed_to_where_it_really_is(official_data: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    """A folder that is a symbolic link counts by where it leads: inside the root is fine, outside is not."""
    folder = (official_data.parent / BROKEN_KEY).parent
    inside = folder.with_name(folder.name + "-real")
    folder.rename(inside)
    folder.symlink_to(inside.name)  # a relative link within the data root
    assert cli(official_data, tmp_path / "ok", "--strict") == 0
    outside = tmp_path / "outside" / folder.name
    outside.parent.mkdir()
    inside.rename(outside)
    folder.unlink()
    folder.symlink_to(outside)
    assert cli(official_data, tmp_path / "r", "--strict") == 2
    assert "leads outside the data root" in capsys.readouterr().err


@pytest.mark.parametrize("mask", ["/etc/passwd", "https://example.com/mask.png", "../../outside.png"])
def test_masks_must_be_relative_paths(official_records: dict, tmp_path: Path, capsys: pytest.CaptureFixture,
                                      mask: str) -> None:
    key = next(k for k, r in official_records.items() if r.get("mask_path"))
    official_records[key]["mask_path"] = mask
    data = materialise(official_records, tmp_path / "d")
    assert cli(data, tmp_path / "r", "--strict") == 2
    assert f"record '{key}': mask_path" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ environment, flags


def test_unwritable_out_is_a_clear_error(official_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert cli(official_data, blocker / "run") == 2
    assert "cannot write there" in capsys.readouterr().err
    assert main(["build", "synthetic", "--out", str(blocker / "synth")]) == 2
    assert "cannot write there" in capsys.readouterr().err


def test_damaged_run_json_is_a_clear_error(official_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "r"
    assert cli(official_data, out) == 0
    (out / "run.json").write_text('{"digest": "ab', encoding="utf-8")  # torn
    assert cli(official_data, out) == 2
    assert "run.json is damaged" in capsys.readouterr().err
    assert cli(official_data, out, "--overwrite") == 0


def test_deeply_nested_json_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "mmad.json"
    data.write_text("[" * 100_000 + "]" * 100_000)
    assert cli(data, tmp_path / "r") == 2
    assert "nested too deeply" in capsys.readouterr().err


def test_bad_rank_variables_are_clear_errors(official_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("RANK", "abc")
    assert cli(official_data, tmp_path / "r") == 2
    assert "RANK='abc' is not an integer" in capsys.readouterr().err


def test_world_size_without_a_launcher_fails_fast(official_data: Path, tmp_path: Path) -> None:
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "MMEVAL_LAUNCH_TIMEOUT": "2"}
    done = subprocess.run([sys.executable, "-m", "mmeval", "run", "--model", "random", "--data", str(official_data),
                           "--out", str(tmp_path / "r"), "--no-progress"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 2 and "the others did not show up" in done.stderr and "torchrun" in done.stderr


def test_world_size_without_a_launcher_says_at_once_what_it_waits_for(official_data: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "MASTER_ADDR")}
    env.update(WORLD_SIZE="2", RANK="0", MMEVAL_LAUNCH_TIMEOUT="60")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "mmeval", "run", "--model", "random", "--data",
                             str(official_data), "--out", str(tmp_path / "r"), "--no-progress"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the first thing it says
        waited = time.monotonic() - started
    finally:
        proc.kill()
        proc.wait()
    assert waited < 30  # not the 60 s of the launch timeout
    assert "process 0 of 2 (WORLD_SIZE=2) is waiting up to 60 s for process 1" in line
    assert ".rank1.alive" in line and "unset WORLD_SIZE and RANK" in line


@pytest.mark.parametrize("flags,needle", [
    (["--cycle-ms", "-5"], "positive number of milliseconds"),
    (["--model", "expert", "-M", "patch=7"], "must be even"),
    (["--model", "expert", "--shots", "0"], "--shots 1 or more"),
])
def test_bad_values_are_refused(official_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                flags: list[str], needle: str) -> None:
    args = ["run", "--data", str(official_data), "--out", str(tmp_path / "x"), "--no-progress"]
    if "--model" not in flags:
        args += ["--model", "random"]
    try:
        code = main([*args, *flags])
    except SystemExit as exc:  # argparse's own exit for a bad flag value
        code = int(exc.code or 0)
    assert code == 2
    assert needle in capsys.readouterr().err


def test_cycle_ms_is_saved_with_the_run(official_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert cli(official_data, out, "--cycle-ms", "250") == 0
    assert RunRecord.read(out / "run.json").cycle_ms == 250
    first = json.loads((out / "analysis.json").read_text())["latency"]
    assert main(["report", str(out)]) == 0  # no --cycle-ms: the saved one is used
    again = json.loads((out / "analysis.json").read_text())["latency"]
    assert again == first and "250" in json.dumps(again)


def test_the_guarded_json_reader_names_its_source() -> None:
    from mmeval.errors import InputError
    from mmeval.jsonsafe import MAX_DEPTH, parse_json

    assert parse_json(b'{"a": [1, {"b": null}]}', "x.json") == {"a": [1, {"b": None}]}
    with pytest.raises(InputError, match=r"^x\.json: JSON nested too deeply to read"):
        parse_json("[" * 50_000 + "]" * 50_000, "x.json")
    nested = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)  # readable, but deeper than any file needs
    with pytest.raises(InputError, match=rf"^x\.json: JSON nested too deeply \(more than {MAX_DEPTH} levels"):
        parse_json(nested, "x.json")
    assert isinstance(parse_json(nested, "x.json", max_depth=None), list)
    with pytest.raises(InputError, match=r"^x\.json: invalid JSON at line 2, column 1"):
        parse_json('{"a": 1,\n}', "x.json")
    with pytest.raises(InputError, match=r"^x\.json: not UTF-8 at line 1, column 8"):
        parse_json(b'{"a": "\xe9"}', "x.json")

