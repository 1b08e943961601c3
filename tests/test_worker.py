"""The worker protocol: a model in another Python, its faults, and what the user is told.

The worker here is the real one (``model_adapters/worker/standalone.py``) on a bare interpreter (no
site-packages), driving the test backend ``tests/standins/backends/faulty.py``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_png
from standin_env import STANDINS, make_python

from mmeval.cli import main
from mmeval.model_adapters import build_adapter
from mmeval.model_adapters.base import AdapterError, AdapterSettings
from mmeval.model_adapters.worker import request_seed
from mmeval.model_adapters.worker.backends import BACKENDS
from mmeval.model_adapters.worker.client import WORKER_SCRIPT
from mmeval.prompting.messages import ImagePart, Message, Request, TextPart

FAULTY = STANDINS / "backends" / "faulty.py"
pytestmark = pytest.mark.slow


def requests(folder: Path, n: int = 5) -> list[Request]:
    out = []
    for i in range(n):
        query, template = folder / f"img{i}.png", folder / f"tpl{i}.png"
        write_png(query, i)
        write_png(template, 100 + i)
        parts = [TextPart(text="Compare.\n"), ImagePart(path=str(template), role="template"),
                 ImagePart(path=str(query), role="query"), TextPart(text=f"\nQuestion {i}: defect?\nA. Yes\nB. No")]
        out.append(Request(id=f"cat/img{i}.png#{i}", task="Anomaly Detection", image=f"cat/img{i}.png",
                           options={"A": "Yes", "B": "No"}, message=Message(parts=parts, prefix_len=3)))
    return out


def worker(tmp_path: Path, python: Path, mode: str = "generate", **options: object):
    settings = AdapterSettings(seed=7, answer_mode=mode, artifacts_dir=tmp_path / "run" / "artifacts")  # type: ignore[arg-type]
    return build_adapter(f"worker:{FAULTY}", {"python": str(python), "restart_delay": 0, **options}, settings)


@pytest.fixture
def python(tmp_path: Path) -> Path:
    return make_python(tmp_path / "env")


def test_worker_and_backends_are_python_38_code_with_only_the_standard_library_at_import() -> None:
    stdlib = set(sys.stdlib_module_names)
    for path in [WORKER_SCRIPT, *BACKENDS.glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 8))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        for node in top:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                assert name.split(".")[0] in stdlib | {"__future__"}, f"{path.name} imports {name} at import time"
        assert not any(isinstance(n, ast.ImportFrom) and (n.module or "").startswith("mmeval") for n in ast.walk(tree))


def test_answers_from_a_bare_python_without_site_packages(tmp_path: Path, python: Path) -> None:
    adapter = worker(tmp_path, python, maps="1")
    batch = requests(tmp_path / "img")
    with adapter:
        got = {r.id: r for r in adapter.predict(batch)}
        info = adapter.run_info()
    assert set(got) == {r.id for r in batch} and all(r.error is None for r in got.values())
    assert info["worker_numpy"] is False  # no site-packages: the worker wrote the maps without numpy
    assert info["answered"] == 5 and info["worker_restarts"] == 0
    first = got[batch[0].id]
    assert first.text in ("A", "B")
    assert first.artifacts == {"image_score": 1.0, "map": "artifacts/maps/cat/img0.npz"}
    with np.load(tmp_path / "run" / first.artifacts["map"]) as f:
        assert f["map"].shape == (8, 8) and np.unravel_index(np.argmax(f["map"]), (8, 8)) == (2, 5)
        assert np.allclose(f["rows"], (np.arange(8) + 0.5) / 8)
    assert not (tmp_path / "run" / "artifacts" / "maps" / ".incoming").exists()  # the raw .npy files are gone
    log = (tmp_path / "run" / "artifacts" / "logs" / "worker.log").read_text()
    # everything the model printed went to the log, never into the protocol
    for line in ("faulty-model model loaded", "print from the model while loading", "raw write to fd 1 while loading",
                 "print while answering", "raw write while answering"):
        assert line in log


def test_request_carries_parts_mode_and_a_seed_from_run_seed_and_question(tmp_path: Path, python: Path) -> None:
    batch = requests(tmp_path / "img", 2)
    adapter = worker(tmp_path, python, "likelihood")
    message = adapter.worker_request(batch[1])
    assert message["seed"] == request_seed(7, batch[1].id) != request_seed(8, batch[1].id)
    assert [p["type"] for p in message["parts"]] == ["text", "image", "image", "text"]
    assert message["parts"][1]["role"] == "template" and message["answer_mode"] == "likelihood"
    with adapter:
        got = list(adapter.predict(batch))
    assert got[0].scores == {"A": 0.0, "B": -1.0}


def test_model_printing_to_stdout_and_a_python_without_site_survive_isolated_mode(tmp_path: Path) -> None:
    """The system python3 in isolated mode (no site, no PYTHONPATH, no user site) runs the worker too."""
    system = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    python = make_python(tmp_path / "env", site=None, interpreter=system, flags="-I -S")
    adapter = worker(tmp_path, python)
    with adapter:
        got = list(adapter.predict(requests(tmp_path / "img", 2)))
        info = adapter.run_info()
    assert all(r.error is None and r.text for r in got)
    assert info["worker_numpy"] is False  # not even the system's own site-packages


def test_each_process_of_a_launch_gets_its_gpu_and_its_log(tmp_path: Path, python: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("RANK", "1"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with worker(tmp_path, python) as adapter:
        list(adapter.predict(requests(tmp_path / "img", 1)))
        info = adapter.run_info()
    assert info["worker_cuda_visible_devices"] == "1" and str(info["worker_log"]).endswith("worker.rank1.log")


def test_a_crash_mid_batch_is_recorded_and_the_worker_restarted(tmp_path: Path, python: Path) -> None:
    adapter = worker(tmp_path, python, fault="crash", on="img2")
    batch = requests(tmp_path / "img")
    with adapter:
        got = list(adapter.predict(batch))
        info = adapter.run_info()
    assert [r.id for r in got] == [r.id for r in batch]
    crashed = got[2]
    assert crashed.error and "crashed" in crashed.error and "exited with code 3" in crashed.error
    assert crashed.retryable is True
    assert all(r.error is None for i, r in enumerate(got) if i != 2)
    assert info["worker_restarts"] == 1 and info["errors"] == 1 and info["answered"] == 4


def test_a_hung_worker_is_stopped_by_the_watchdog(tmp_path: Path, python: Path) -> None:
    adapter = worker(tmp_path, python, fault="hang", on="img1", request_timeout=2)
    batch = requests(tmp_path / "img", 3)
    started = time.monotonic()
    with adapter:
        got = list(adapter.predict(batch))
    assert time.monotonic() - started < 30
    assert got[1].error and "hung" in got[1].error and "within 2 s" in got[1].error and got[1].retryable
    assert got[0].error is None and got[2].error is None


def test_failures_in_a_row_stop_the_run_with_a_message(tmp_path: Path, python: Path) -> None:
    adapter = worker(tmp_path, python, fault="crash", on="img", max_restarts=1)
    with adapter, pytest.raises(AdapterError, match=r"(?s)failed 2 times in a row.*rerun retries the rest"):
        list(adapter.predict(requests(tmp_path / "img", 4)))


def test_a_run_a_hang_stops_is_reported_as_far_as_it_got_and_says_what_the_worker_was_doing(
        official_data: Path, tmp_path: Path, python: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = ", ".join(f"'ckpt_{i}': '/models/weights/part-{i}.bin'" for i in range(12))
    out = tmp_path / "run"
    args = ["run", "--model", f"worker:{FAULTY}", "-M", f"python={python}", "-M", "restart_delay=0", "--data",
            str(official_data), "--shots", "1", "--out", str(out), "--no-progress"]
    hang = ["-M", "fault=hang", "-M", "on=breakfast_box/test/good", "-M", "request_timeout=1", "-M", "max_restarts=0",
            "-M", "quiet=1", "-M", f"loading_line=loading the model: {{{paths}}}"]
    assert main(args + hang) == 3
    err = capsys.readouterr().err
    # what it was doing: nothing since the question; before it, loading (not the line's dozen checkpoint paths)
    assert "gave no answer within 1 s" in err
    assert "it wrote nothing after the question was sent (its last line before it: 'loading the model: ...')" in err
    assert "part-3.bin" not in err
    # the report of what was answered, marked incomplete
    scores = json.loads((out / "scores.json").read_text())
    status = scores["status"]
    assert status["complete"] is False and status["answered"] == 7 and status["missing"] == 5
    assert "failed 1 times in a row" in status["stopped"]
    assert scores["counts"]["questions"] == 7
    assert "Incomplete run" in (out / "report.html").read_text()
    assert json.loads((out / "status.json").read_text()) == status
    # the whole line stays in the worker log
    assert "part-11.bin" in (out / "artifacts" / "logs" / "worker.log").read_text()


def test_a_backend_refusal_is_permanent_and_an_exception_passing(tmp_path: Path, python: Path) -> None:
    batch = requests(tmp_path / "img", 3)
    with worker(tmp_path, python, fault="refuse", on="img0") as adapter:
        refused = list(adapter.predict(batch))
    assert refused[0].error == "worker:" + str(FAULTY) + ": RequestError: this request cannot be answered"
    assert refused[0].retryable is False and refused[1].error is None
    with worker(tmp_path, python, fault="raise", on="img0") as adapter:
        raised = list(adapter.predict(batch))
        assert adapter.run_info()["worker_restarts"] == 0
    assert raised[0].retryable is True and "ValueError: a passing failure" in (raised[0].error or "")
    log = (tmp_path / "run" / "artifacts" / "logs" / "worker.log").read_text()
    assert "Traceback" in log  # the traceback of an unexpected error is kept in the log, not shown


@pytest.mark.parametrize("options,message", [
    ({"fail_setup": "the checkpoint /x/y.pt is missing: download it from Z"},
     "could not be loaded: the checkpoint /x/y.pt is missing: download it from Z"),
    ({"import_missing": "1"}, "cannot import 'a_package_nobody_installed'"),
    ({"crash_on_load": "1"}, "exited with code 5"),
])
def test_load_failures_say_what_is_missing(tmp_path: Path, python: Path, options: dict, message: str) -> None:
    with pytest.raises(AdapterError, match=".*") as err, worker(tmp_path, python, **options) as adapter:
        list(adapter.predict(requests(tmp_path / "img", 1)))
    assert message in str(err.value)
    assert "Traceback" not in str(err.value)


def test_garbage_on_the_protocol_pipe_is_logged_and_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = make_python(tmp_path / "env", before='echo "banner printed by the environment before python starts"',
                       flags=f"-S {STANDINS / 'fake_worker.py'}")
    monkeypatch.setenv("FAKE_WORKER", "garbage")
    with worker(tmp_path, fake) as adapter:
        got = list(adapter.predict(requests(tmp_path / "img", 2)))
        ignored = adapter.run_info()["worker_ignored_lines"]
    assert [r.text for r in got] == ["B", "B"] and all(r.error is None for r in got)
    assert isinstance(ignored, int) and ignored >= 6
    log = (tmp_path / "run" / "artifacts" / "logs" / "worker.log").read_text()
    assert "banner printed by the environment" in log and "not a worker message" in log


def test_an_impossible_score_loses_and_an_unreadable_one_spoils_only_its_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmeval.answers import choose

    fake = make_python(tmp_path / "env", flags=f"-S {STANDINS / 'fake_worker.py'}")
    monkeypatch.setenv("FAKE_WORKER", "scores")
    batch = requests(tmp_path / "img", 2)
    with worker(tmp_path, fake, "likelihood") as adapter:
        first, second = adapter.predict(batch)
    assert first.scores == {"A": float("-inf"), "B": -1.0} and choose(first, batch[0].options) == "B"
    assert second.error is None and second.scores is not None and second.scores["A"] != second.scores["A"]  # NaN
    assert choose(second, batch[1].options) is None  # unusable, not read from B alone (nor from the text "A")


@pytest.mark.parametrize("mode,message", [("old", "is Python 3.7.9; the worker needs 3.8 or later"),
                                          ("protocol", "speaks protocol 99")])
def test_handshake_refuses_an_old_python_or_another_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             mode: str, message: str) -> None:
    fake = make_python(tmp_path / "env", flags=f"-S {STANDINS / 'fake_worker.py'}")
    monkeypatch.setenv("FAKE_WORKER", mode)
    with pytest.raises(AdapterError, match=message), worker(tmp_path, fake) as adapter:
        list(adapter.predict(requests(tmp_path / "img", 1)))


def test_missing_interpreter_is_exit_code_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "--model", f"worker:{FAULTY}", "-M", f"python={tmp_path / 'nowhere' / 'bin' / 'python'}",
                 "--out", str(tmp_path / "out"), "--limit", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "no such file" in err and "Traceback" not in err
    code = main(["run", "--model", f"worker:{FAULTY}", "--out", str(tmp_path / "out2"), "--limit", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "-M python=PATH_TO_ENV/bin/python" in err


def test_pure_npy_writer_matches_numpy(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("worker_standalone", WORKER_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Shim:  # neither numpy nor torch: shape and nested lists, like the stand-in torch
        shape = (2, 3)

        def tolist(self) -> list:
            return [[0.5, 1.0, -2.0], [3.25, float("nan"), 7.0]]

    shape = module.write_npy(str(tmp_path / "m.npy"), Shim())
    got = np.load(tmp_path / "m.npy")
    assert shape == [2, 3] and got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array(Shim().tolist(), dtype=np.float32))
    assert json.dumps(shape) == "[2, 3]"
