"""``--boost none,rag,agent``: one command answers every variant and writes what each boost changes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from mmeval import model_adapters, tasks
from mmeval.cli import main
from mmeval.config import RunRecord


@pytest.fixture
def hint_follower(monkeypatch: pytest.MonkeyPatch) -> str:
    family = model_adapters.Family("hint-follower", "test_agent:HintFollower", "test", False)
    monkeypatch.setitem(model_adapters.FAMILIES, "hint-follower", family)
    return "hint-follower"


def test_one_command_runs_every_variant_and_compares(hint_follower: str, tmp_path: Path) -> None:
    out = tmp_path / "abl"
    assert main(["run", "--model", hint_follower, "--data", "synthetic", "--shots", "1", "--no-progress",
                 "--boost", "none,rag,agent", "--boost-arg", "expert=oracle", "--boost-arg", "view=text",
                 "--boost-arg", "mode=category", "--out", str(out)]) == 0
    for variant in ("none", "rag", "agent"):
        record = RunRecord.read(out / variant / "run.json")
        assert record.config.boosts == (() if variant == "none" else (variant,))
        assert (out / variant / "report.html").is_file()
    assert RunRecord.read(out / "agent" / "run.json").config.boost_args == {"agent": {"expert": "oracle",
                                                                                       "view": "text"}}
    cells = pd.read_csv(out / "ablation" / "ablation.csv")
    avg = cells[(cells["dataset"] == "Average")].set_index(["variant", "task"])
    assert avg.loc[("agent", "Defect Localization"), "difference"] > 40  # the oracle hint is followed
    assert avg.loc[("agent", "Defect Localization"), "p_holm"] < 0.001
    assert abs(avg.loc[("rag", "Defect Localization"), "difference"]) < 1e-9  # this model ignores knowledge
    saved = json.loads((out / "ablation" / "ablation.json").read_text())
    assert saved["baseline"] == "none" and set(saved["variants"]) == {"none", "rag", "agent"}
    svg = ET.fromstring((out / "ablation" / "ablation_heatmap.svg").read_text(encoding="utf-8"))
    assert float(svg.get("width", "0")) > 400
    cells = [e for e in svg.iter("{http://www.w3.org/2000/svg}rect") if e.get("class") == "cell"]
    asked = {json.loads(line)["task"] for line in (out / "none" / "predictions.jsonl").read_text().splitlines()}
    assert len(cells) == 2 * (len(asked) + 1)  # rag and agent against none: the tasks the data asks, and Average
    html = (out / "ablation" / "ablation.html").read_text(encoding="utf-8")
    assert "What each boost changes" in html and "Defect Localization" in html


def test_notations_are_drawn_for_the_readme(tmp_path: Path) -> None:
    assert main(["boosts", "--notations", str(tmp_path / "n.png")]) == 0
    sheet = Image.open(tmp_path / "n.png")
    assert sheet.width == 6 * 256 and sheet.height > 256


def test_ablation_on_a_benchmark_built_from_an_mvtec_tree(synthetic_demo: Path, tmp_path: Path) -> None:
    """``mmeval build mvtec`` asks four of MMAD's seven types; the ablation compares those and only those."""
    from byod_trees import mvtec_tree

    bench = tmp_path / "bench"
    assert main(["build", "mvtec", str(mvtec_tree(synthetic_demo, tmp_path / "tree")), "--out", str(bench)]) == 0
    asked = {q["type"] for rec in json.loads((bench / "mmad.json").read_text()).values() for q in rec["conversation"]}
    out = tmp_path / "abl"
    assert main(["run", "--model", "random", "--data", str(bench), "--shots", "1", "--no-progress",
                 "--boost", "none,agent", "--out", str(out)]) == 0
    saved = json.loads((out / "ablation" / "ablation.json").read_text())
    assert {c["task"] for c in saved["cells"]} == asked | {"Average"} and len(asked) < len(tasks.task_names())
    assert all(isinstance(c["paired"], int) and c["paired"] > 0 for c in saved["cells"])
    cells = pd.read_csv(out / "ablation" / "ablation.csv")
    assert set(cells["task"]) == asked | {"Average"} and not cells["accuracy"].isna().any()
    scores = pd.read_csv(out / "none" / "scores.csv", index_col=0)
    assert set(scores.columns) - {"Average", "Recall", "Precision", "F1", "Overkill", "Miss"} == asked


def test_ablations_with_other_boost_options_get_their_own_default_folders() -> None:
    """Without --out, an ablation with another expert (or view) must not land in the folders of the first one,
    whose variants hold other answers under the same names; an ablation without boost options keeps the plain
    run's name."""
    from mmeval.boosts import parse_variants
    from mmeval.cli import build_parser
    from mmeval.cli.run import ablation_out, settings, variant_configs

    def folder(*extra: str) -> str:
        s = settings(build_parser().parse_args(["run", "--model", "random", "--shots", "1", "--boost", "none,agent",
                                                *extra]))
        variants = parse_variants(s["boost"])
        return ablation_out(s, variants, variant_configs(s, variants)).name

    patch, oracle = folder("--boost-arg", "expert=patch"), folder("--boost-arg", "expert=oracle")
    assert patch != oracle and "oracle" in oracle
    assert folder() == "random_synthetic_1shot_seed0"
