"""The collector pauses while records are built, and what was frozen is given back (mmeval.heap)."""

from __future__ import annotations

import gc
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
