"""The ``agent`` boost: experts (patch, maps, oracle), binarisation, the five notations, the text hint,
caching, and the map metrics the report uses to score an expert."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from mmeval import model_adapters
from mmeval.boosts.overlays import NOTATIONS, draw
from mmeval.cli import main
from mmeval.config import RunConfig, RunRecord
from mmeval.experts import build_expert
from mmeval.experts.binarise import Binarisation, binarise, boxes
from mmeval.experts.metrics import aupro, auroc, pixel_auroc
from mmeval.model_adapters.base import ModelAdapter
from mmeval.predictions import read_predictions
from mmeval.prompting.messages import Request, Response, TextPart
from mmeval.prompting.shuffle import question_rng
from mmeval.regions import option_region
from mmeval.run.prepare import prepare
from mmeval.run.runner import build_boosts, load
from mmeval.tasks import has_role


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmeval.data.synthetic.generator import build_synthetic

    return build_synthetic(tmp_path_factory.mktemp("agent-synth"), seed=0)


# ------------------------------------------------------------------------------------------ map metrics


def test_metrics_on_hand_made_maps() -> None:
    mask = np.zeros((20, 20), bool)
    mask[5:10, 5:10] = True
    perfect = mask.astype(float) + np.random.default_rng(0).random((20, 20)) * 0.1
    assert pixel_auroc([perfect], [mask]) == 1.0 and aupro([perfect], [mask]) == pytest.approx(1.0)
    assert pixel_auroc([1 - perfect], [mask]) == 0.0 and aupro([1 - perfect], [mask]) == 0.0
    two = np.zeros((20, 20), bool)
    two[2:4, 2:4] = True
    two[15:18, 15:18] = True
    half = np.zeros((20, 20))
    half[2:4, 2:4] = 1.0  # one region found, the other scored like normal pixels
    # PRO 0.5 at FPR 0, rising linearly to 1 at FPR 1: mean over [0, 0.3] = (0.5 + 0.65) / 2
    assert aupro([half], [two]) == pytest.approx(0.575)
    assert auroc([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2]) == 1.0 and auroc([1, 0], [0.5, 0.5]) == 0.5
    assert np.isnan(auroc([1, 1], [0.2, 0.3]))


# ------------------------------------------------------------------------------------------ binarisation


def test_mmad_binarisation_rule() -> None:
    amap = np.zeros((100, 100))
    amap[10:20, 10:20] = 1.0       # the peak region
    amap[60:70, 60:70] = 0.7       # above 2/3 of the maximum: kept
    amap[40:45, 80:85] = 0.5       # below: dropped
    amap[90, 90] = 1.0             # one pixel: smaller than 0.1% of the image, dropped
    marked = binarise(amap, Binarisation())
    assert marked[15, 15] and marked[65, 65] and not marked[42, 82] and not marked[90, 90]
    assert boxes(marked, 2) == [(10, 10, 20, 20), (60, 60, 70, 70)]
    assert boxes(marked, 1) == [(10, 10, 70, 70)]  # merged into one
    wide = np.linspace(0, 1, 10000).reshape(100, 100) ** 0.05  # most pixels near the maximum
    assert binarise(wide, Binarisation()).mean() == pytest.approx(0.5, abs=0.01)  # the median rule took over
    assert not binarise(np.zeros((10, 10)), Binarisation()).any()


def test_every_notation_draws_and_marks_where_the_map_is_high(tmp_path: Path) -> None:
    query = tmp_path / "q.png"
    Image.fromarray(np.full((64, 96, 3), 128, np.uint8)).save(query)
    amap = np.zeros((64, 96), np.float32)
    amap[10:30, 50:80] = 1.0
    base = np.asarray(Image.open(query).convert("RGB"), dtype=np.int16)
    for notation in NOTATIONS:
        img = np.asarray(draw(str(query), amap, notation, Binarisation()), dtype=np.int16)
        assert img.shape == base.shape, notation
        diff = np.abs(img - base).sum(axis=2)
        changed = diff > 30
        assert changed[10:30, 50:80].mean() > 0.05 or changed[9:31, 49:81].any(), notation  # marks at the region
        assert changed[45:, :30].mean() < 0.05 or notation in ("mask", "heatmap"), notation  # not elsewhere


# ------------------------------------------------------------------------------------------ experts


def test_maps_expert_reads_a_mirrored_folder(official_data: Path, tmp_path: Path) -> None:
    root = official_data.parent
    key = "DS-MVTec/bottle/image/broken_large/000.png"
    (tmp_path / "maps" / Path(key).parent).mkdir(parents=True)
    grid = np.zeros((8, 8), np.float32)
    grid[0, 7] = 0.9
    np.save(tmp_path / "maps" / Path(key).with_suffix(".npy"), grid)
    expert = build_expert("maps", {"maps": str(tmp_path / "maps")}, root)
    amap = expert.analyse(str(root / key), [])
    assert amap.score == pytest.approx(0.9) and amap.defective and amap.peak_cell() == (0, 2)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "maps" / Path(key).with_suffix(".png"))
    (tmp_path / "maps" / Path(key).with_suffix(".npy")).unlink()
    assert not expert.analyse(str(root / key), []).defective  # the .png version: all zero


@pytest.mark.parametrize("args,needle", [({"maps": "/nonexistent/maps"}, "no folder"),
                                         ({"maps": "{empty}"}, "no map for")])
def test_bad_map_folders_exit_2(official_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                args: dict[str, str], needle: str) -> None:
    (tmp_path / "empty").mkdir()
    value = args["maps"].format(empty=tmp_path / "empty")
    assert main(["run", "--model", "random", "--data", str(official_data), "--boost", "agent", "--boost-arg",
                 "expert=maps", "--boost-arg", f"maps={value}", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_the_oracle_is_never_given_to_a_model_directly(official_data: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--model", "expert", "-M", "expert=oracle", "--data", str(official_data), "--out",
                 str(tmp_path / "x"), "--no-progress"]) == 2
    assert "must never see" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the boost


def _prepared(data: Path, shots: int = 1, **args: object) -> list:
    cfg = RunConfig(model="random", data=str(data), shots=shots, boosts=("agent",), boost_args={"agent": args})
    bench = load(cfg)
    return prepare(bench.questions, cfg, build_boosts(cfg, bench))


def test_overlay_is_an_extra_image_in_the_prefix_and_cached(synth: Path) -> None:
    first = _prepared(synth, expert="oracle", view="bbox")
    for p in first[:40]:
        msg = p.request.message
        refs = [i for i, part in enumerate(msg.parts) if getattr(part, "role", None) == "reference"]
        assert len(refs) == 1 and refs[0] < msg.prefix_len
        path = Path(msg.parts[refs[0]].path)
        assert path.is_file() and p.notes["agent"]["overlay"] == str(path)
    again = _prepared(synth, expert="oracle", view="bbox")
    assert [p.request.message for p in again] == [p.request.message for p in first]  # same paths: resumable
    defect = next(p for p in first if not p.question.is_normal)
    overlay = np.asarray(Image.open(defect.notes["agent"]["overlay"]).convert("RGB"), dtype=np.int16)
    query = np.asarray(Image.open(defect.question.query_path).convert("RGB").resize(overlay.shape[1::-1]),
                       dtype=np.int16)
    assert (np.abs(overlay - query).sum(axis=2) > 60).any()  # red marks were drawn


class HintFollower(ModelAdapter):
    """Test family: answers a localization question with the region the text hint names, else by chance."""

    family: ClassVar[str] = "hint-follower"
    _REGION = re.compile(r"most likely in the ([a-z ]+?) of the image")

    def predict(self, batch: Sequence[Request]) -> Iterator[Response]:
        for req in batch:
            text = " ".join(p.text for p in req.message.parts if isinstance(p, TextPart))
            m = self._REGION.search(text)
            letter = None
            if m and has_role(req.task, "defect-location"):
                letter = next((k for k, v in req.options.items()
                               if option_region(v) == option_region(m.group(1))), None)
            chance = question_rng(self.seed, req.id, "hint").choice(sorted(req.options))
            yield Response(id=req.id, text=letter or chance)


def test_a_model_following_the_oracle_hint_localises_and_without_it_guesses(
        synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    family = model_adapters.Family("hint-follower", f"{__name__}:HintFollower", "test", False)
    monkeypatch.setitem(model_adapters.FAMILIES, "hint-follower", family)
    base = ["run", "--model", "hint-follower", "--data", str(synth), "--shots", "1", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "hint"), "--boost", "agent", "--boost-arg", "expert=oracle",
                 "--boost-arg", "view=text"]) == 0
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0

    def dl_accuracy(run: str) -> float:
        preds = [p for p in read_predictions(tmp_path / run / "predictions.jsonl") if p.task == "Defect Localization"]
        return sum(p.correct for p in preds) / len(preds)

    assert dl_accuracy("hint") >= 0.9
    assert dl_accuracy("plain") <= 0.4
    record = RunRecord.read(tmp_path / "hint" / "run.json")
    assert record.boosts[0].name == "agent" and record.boosts[0].model_extra["expert"] == "oracle"
    notes = [p.boost_notes["agent"] for p in read_predictions(tmp_path / "hint" / "predictions.jsonl")]
    assert all(n["defective"] == (not p.is_normal) for n, p in
               zip(notes, read_predictions(tmp_path / "hint" / "predictions.jsonl"), strict=True))
    assert all(Path(n["map"]).is_file() for n in notes)


def test_text_view_states_score_threshold_verdict_and_region(synth: Path) -> None:
    p = next(p for p in _prepared(synth, expert="oracle", view="text") if not p.question.is_normal)
    prefix = "".join(getattr(part, "text", "") for part in p.request.message.parts[: p.request.message.prefix_len])
    assert "anomaly score of 1.00" in prefix and "above 0.50" in prefix and "suggests a defect" in prefix
    assert f"most likely in the {p.notes['agent']['region']} of the image" in prefix


def test_patch_expert_needs_templates(synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--model", "random", "--data", str(synth), "--shots", "0", "--boost", "agent",
                 "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "--shots 1 or more" in capsys.readouterr().err


def test_agent_options_reach_the_expert(synth: Path, tmp_path: Path) -> None:
    assert main(["run", "--model", "random", "--data", str(synth), "--shots", "1", "--limit", "10", "--boost",
                 "agent", "--boost-arg", "patch=16", "--boost-arg", "view=mask", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    cfg = RunRecord.read(tmp_path / "r" / "run.json").config
    assert cfg.boost_args == {"agent": {"patch": 16, "view": "mask"}}
    json.loads((tmp_path / "r" / "scores.json").read_text())  # the report was written


def test_agent_on_the_official_layout(official_data: Path, tmp_path: Path) -> None:
    """The official mmad.json layout (DS-MVTec and MVTec-LOCO keys, train/good templates) with the patch expert."""
    assert main(["run", "--model", "random", "--data", str(official_data), "--shots", "1", "--boost", "agent",
                 "--boost-arg", "view=contour", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    preds = read_predictions(tmp_path / "r" / "predictions.jsonl")
    assert preds and all(Path(p.boost_notes["agent"]["overlay"]).is_file() for p in preds)
    assert "what the model was shown (contour)" in (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
