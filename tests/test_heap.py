"""The collector pauses while records are built, and what was frozen is given back (mmeval.heap)."""

from __future__ import annotations

import gc
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from mmeval import heap
from mmeval.config import RunConfig
from mmeval.run.runner import run


@pytest.fixture(autouse=True)
def _clean_freeze() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.enable()


def test_building_pauses_the_collector_and_freezes_only_inside_records_kept() -> None:
    with heap.building():
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == 0  # outside records_kept nothing is frozen
    with heap.records_kept():
        with heap.building():
            records = [{"id": i} for i in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= len(records)
        with heap.records_kept():  # nested: the outer one gives the records back, not this one
            pass
        assert gc.get_freeze_count() >= len(records)
    assert gc.get_freeze_count() == 0


def test_a_collector_left_off_stays_off() -> None:
    gc.disable()
    with heap.records_kept(), heap.building():
        pass
    assert not gc.isenabled()


def _frozen(obj: object) -> bool:
    """Whether ``obj`` sits in the permanent generation (``gc.get_objects`` lists every other tracked object).

    Asked per object: the process-wide count also drops whenever some other frozen object dies."""
    return all(o is not obj for o in gc.get_objects())


def test_freezing_the_process_did_itself_is_left_alone() -> None:
    keep = [{"mine": i} for i in range(100)]
    gc.freeze()
    with heap.records_kept():
        with heap.building():
            more = [{"id": i} for i in range(1000)]
        assert not _frozen(more)  # not frozen by us: we did not start freezing here
    assert _frozen(keep) and not _frozen(more)  # and what the process froze stays frozen


def test_a_run_gives_back_what_it_froze(official_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = RunConfig(model="random", data=str(official_data), shots=1)
    seen: list[int] = []
    original = heap.building

    def watching() -> AbstractContextManager[None]:
        seen.append(gc.get_freeze_count())
        return original()

    monkeypatch.setattr(heap, "building", watching)
    result = run(cfg, tmp_path / "r", progress=False)
    assert result.answered == result.total > 0
    assert len(seen) == 2 and seen[1] > seen[0] == 0  # the questions were frozen before the requests were built
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_the_command_freezes_everything_as_it_ends_and_main_does_not(capsys: pytest.CaptureFixture[str]) -> None:
    from mmeval import cli

    assert cli.main(["tasks"]) == 0
    assert gc.get_freeze_count() == 0  # a process calling main keeps its collector
    mine = {"made": ["before"]}
    assert gc.is_tracked(mine) and not _frozen(mine)
    assert cli.entry(["tasks"]) == 0
    assert _frozen(mine)
    assert "Anomaly Detection" in capsys.readouterr().out


def test_python_m_mmeval_ends_frozen(tmp_path: Path) -> None:
    """``python -m mmeval`` goes through the entry point: at exit (atexit runs after the command) all is frozen."""
    code = ("import atexit, gc, runpy, sys\n"
            "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 10000))\n"
            "sys.argv = ['mmeval', 'tasks']\n"
            "runpy.run_module('mmeval', run_name='__main__', alter_sys=True)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "frozen True"


def test_the_console_script_is_the_entry_point() -> None:
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["mmeval"] == "mmeval.cli:entry"
