"""Snapshot tests of rendered prompts: a template change that moves every number is never silent.

To accept a deliberate change: UPDATE_SNAPSHOTS=1 pytest tests/test_prompts.py, and review the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from mmeval.config import RunConfig
from mmeval.data import load_benchmark
from mmeval.prompting.shuffle import shuffle_options
from mmeval.run.prepare import prepare

SNAPSHOTS = Path(__file__).parent / "snapshots"
FROZEN = ["DS-MVTec/bottle/image/broken_large/000.png#0", "DS-MVTec/bottle/image/broken_large/000.png#2",
          "DS-MVTec/bottle/image/good/003.png#1", "MVTec-LOCO/breakfast_box/test/good/000.png#1"]


def rendered(official_data: Path, shots: int, shuffle: bool) -> dict:
    root = official_data.parent
    bench = load_benchmark(official_data, root, shots=shots, strict=True)
    cfg = RunConfig(model="random", data=str(official_data), shots=shots, shuffle=shuffle, seed=0)
    out = {}
    for p in prepare([q for q in bench.questions if q.id in FROZEN], cfg):
        msg = asdict(p.request)
        for part in msg["message"]["parts"]:
            if part["type"] == "image":
                part["path"] = str(Path(part["path"]).relative_to(root))
        out[p.request.id] = {"request": msg, "answer": p.answer}
    return out


@pytest.mark.parametrize("shots,shuffle", [(0, False), (1, True)])
def test_rendered_prompts_match_snapshot(official_data: Path, shots: int, shuffle: bool) -> None:
    got = rendered(official_data, shots, shuffle)
    path = SNAPSHOTS / f"prompts_{shots}shot_{'shuffled' if shuffle else 'fixed'}.json"
    text = json.dumps(got, indent=1, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing snapshot {path.name}: run with UPDATE_SNAPSHOTS=1 once and review it"
    assert text == path.read_text(encoding="utf-8")


def test_shuffle_remaps_answer_and_is_seeded() -> None:
    opts = {"A": "Top right.", "B": "Top left.", "C": "Center.", "D": "Bottom right."}
    new, ans = shuffle_options(opts, "D", seed=3, qid="x#2")
    assert sorted(new.values()) == sorted(opts.values()) and new[ans] == "Bottom right."
    assert shuffle_options(opts, "D", seed=3, qid="x#2") == (new, ans)
    orders = {tuple(shuffle_options(opts, "D", seed=s, qid="x#2")[0].values()) for s in range(10)}
    assert len(orders) > 3
