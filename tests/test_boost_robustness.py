"""Boosts and experts under hostile input and shared use: unusable map files, replaced inputs, several runs
writing one cache at once, and what the reports and hints say about them."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmeval.cli import main
from mmeval.errors import InputError
from mmeval.experts import build_expert

KEY = "DS-MVTec/bottle/image/broken_large/000.png"


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` grey pixels, with one empty data chunk: cheap to write,
    and enough for a reader that trusts the header to try to allocate the whole image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))


def _write_bad_map(stem: Path, kind: str) -> Path:
    stem.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        np.save(stem.with_suffix(".npy"), np.zeros((0, 5), np.float32))
    elif kind == "one-row":
        np.save(stem.with_suffix(".npy"), np.zeros((1, 5), np.float32))
    elif kind == "nan":
        np.save(stem.with_suffix(".npy"), np.full((4, 4), np.nan, np.float32))
    elif kind == "strings":
        np.save(stem.with_suffix(".npy"), np.array([["a", "b"], ["c", "d"]]))
    elif kind == "huge-npy":  # a header claiming 20000 x 20000 float32 (1.6 GB), and no data behind it
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (20000, 20000), }"
        header += " " * (63 - (10 + len(header)) % 64) + "\n"
        stem.with_suffix(".npy").write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    elif kind == "huge-png":
        _png_header_only(stem.with_suffix(".png"), 20000, 20000)
    elif kind == "large-png":  # below Pillow's own bomb limit, above a map's
        _png_header_only(stem.with_suffix(".png"), 9000, 9000)
    elif kind == "truncated-png":
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(stem.with_suffix(".png"))
        data = stem.with_suffix(".png").read_bytes()
        stem.with_suffix(".png").write_bytes(data[: len(data) // 2])
    elif kind == "not-a-png":
        stem.with_suffix(".png").write_text("a map, honestly", encoding="utf-8")
    elif kind == "colour-png":  # a colour heat map: not a grey map, reading its brightness would be wrong
        rgb = np.zeros((8, 8, 3), np.uint8)
        rgb[..., 0] = 255
        Image.fromarray(rgb).save(stem.with_suffix(".png"))
    return next(p for p in (stem.with_suffix(".npy"), stem.with_suffix(".png")) if p.exists())


BAD_MAPS = ["empty", "one-row", "nan", "strings", "huge-npy", "huge-png", "large-png", "truncated-png", "not-a-png",
            "colour-png"]


@pytest.mark.parametrize("kind", BAD_MAPS)
def test_an_unusable_map_file_is_an_input_error_naming_it(official_data: Path, tmp_path: Path, kind: str) -> None:
    root = official_data.parent
    bad = _write_bad_map(tmp_path / "maps" / Path(KEY).with_suffix(""), kind)
    expert = build_expert("maps", {"maps": str(tmp_path / "maps")}, root)
    with pytest.raises(InputError) as info:
        expert.analyse(str(root / KEY), [])
    assert str(bad) in str(info.value)


def test_an_unusable_map_stops_the_run_with_exit_2_naming_the_file(official_data: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    maps = tmp_path / "maps"
    for rec in json_keys(official_data):
        (maps / rec).parent.mkdir(parents=True, exist_ok=True)
        np.save((maps / rec).with_suffix(".npy"), np.ones((4, 4), np.float32))
    (maps / KEY).with_suffix(".npy").unlink()
    bad = _write_bad_map(maps / Path(KEY).with_suffix(""), "huge-png")
    assert main(["run", "--model", "random", "--data", str(official_data), "--boost", "agent", "--boost-arg",
                 "expert=maps", "--boost-arg", f"maps={maps}", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err


def test_sixteen_bit_grey_maps_keep_their_scale(official_data: Path, tmp_path: Path) -> None:
    root = official_data.parent
    path = (tmp_path / "maps" / KEY).with_suffix(".png")
    path.parent.mkdir(parents=True)
    grid = np.zeros((8, 8), np.uint16)
    grid[0, 0] = 65535
    grid[7, 7] = 13107  # 0.2 of the full scale
    Image.fromarray(grid).save(path)
    amap = build_expert("maps", {"maps": str(tmp_path / "maps")}, root).analyse(str(root / KEY), [])
    assert amap.score == pytest.approx(1.0) and amap.map[7, 7] == pytest.approx(0.2, abs=1e-4)


def test_a_missing_oracle_mask_stops_the_run_naming_it(official_data: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--model", "random", "--data", str(official_data), "--boost", "agent", "--boost-arg",
                 "expert=oracle", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "000_rbg_mask.png" in err and "Traceback" not in err


def test_an_unreadable_oracle_mask_is_an_input_error_naming_it(tmp_path: Path) -> None:
    query = tmp_path / "q.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(query)
    mask = tmp_path / "mask.png"
    _png_header_only(mask, 20000, 20000)
    with pytest.raises(InputError, match=str(mask)):
        build_expert("oracle").analyse(str(query), [], str(mask))


def json_keys(mmad_json: Path) -> list[str]:
    import json

    return list(json.loads(mmad_json.read_text(encoding="utf-8")))


# ------------------------------------------------------------------------------------------ cache keys


def _agent_prepared(data: Path, shots: int = 0, images: int | None = None, **args: object) -> list:
    """Every question prepared with the agent boost (``images``: only those of the first normal and the
    first defective images, that many of each)."""
    from mmeval.config import RunConfig
    from mmeval.run.prepare import prepare
    from mmeval.run.runner import build_boosts, load

    cfg = RunConfig(model="random", data=str(data), shots=shots, boosts=("agent",), boost_args={"agent": args})
    bench = load(cfg)
    questions = bench.questions
    if images is not None:
        keep = set()
        for normal in (True, False):
            keep |= set(list(dict.fromkeys(q.image for q in questions if q.is_normal == normal))[:images])
        questions = [q for q in questions if q.image in keep]
    return prepare(questions, cfg, build_boosts(cfg, bench))


def _write_maps(data: Path, maps: Path, peak: tuple[int, int]) -> None:
    for key in json_keys(data):
        grid = np.zeros((6, 6), np.float32)
        grid[peak] = 0.9
        (maps / key).parent.mkdir(parents=True, exist_ok=True)
        np.save((maps / key).with_suffix(".npy"), grid)


def test_replacing_the_map_files_is_seen_by_the_next_run(official_data: Path, tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    _write_maps(official_data, maps, (0, 0))
    first = _agent_prepared(official_data, expert="maps", maps=str(maps), view="text")
    assert {p.notes["agent"]["region"] for p in first} == {"top left"}
    _write_maps(official_data, maps, (5, 5))  # same folder, same names, other maps
    again = _agent_prepared(official_data, expert="maps", maps=str(maps), view="text")
    assert {p.notes["agent"]["region"] for p in again} == {"bottom right"}
    assert all(a.notes["agent"]["map"] != b.notes["agent"]["map"] for a, b in zip(first, again, strict=True))


def test_every_registered_expert_reads_only_what_its_cache_key_covers(synthetic_demo: Path, tmp_path: Path) -> None:
    """The audit hook sees every file an expert opens while it analyses; each must be one of its inputs, so a
    new expert that reads a file its key leaves out fails here."""
    import sys

    from mmeval import experts
    from mmeval.data import load_benchmark

    bench = load_benchmark(synthetic_demo / "mmad.json", synthetic_demo, shots=2)
    q = next(q for q in bench.questions if q.mask_path)
    rel = Path(q.query_path).relative_to(synthetic_demo)
    (tmp_path / "maps" / rel).parent.mkdir(parents=True)
    np.save((tmp_path / "maps" / rel).with_suffix(".npy"), np.eye(6, dtype=np.float32))
    args = {"maps": {"maps": str(tmp_path / "maps")}}  # experts with required options
    opened: list[str] | None = None

    def hook(event: str, event_args: tuple) -> None:
        if opened is not None and event == "open" and isinstance(event_args[0], (str, Path)):
            opened.append(str(Path(event_args[0]).resolve()))

    sys.addaudithook(hook)
    for name in experts.EXPERTS:
        expert = experts.build_expert(name, args.get(name, {}), synthetic_demo)
        inputs = {str(p.resolve()) for p in expert.inputs(q.query_path, list(q.template_paths), q.mask_path)}
        opened = []
        try:
            expert.analyse(q.query_path, list(q.template_paths), q.mask_path)
        finally:
            seen, opened = opened, None
        assert set(seen) <= inputs, (name, set(seen) - inputs)
        assert seen, name  # the hook saw the expert read its files


# ------------------------------------------------------------------------------------------ concurrent caches


@pytest.mark.parametrize("view,writer", [("text", "npz"), ("bbox", "png")])
def test_two_runs_writing_one_cache_entry_at_once_both_succeed(official_data: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, view: str,
                                                              writer: str) -> None:
    """Another run writes the same cache entry, completely, while this one is in the middle of writing it
    (between its write and its rename): the interleaving that crashed three agent runs started at once."""
    maps = tmp_path / "maps"
    _write_maps(official_data, maps, (2, 3))
    real = np.savez_compressed if writer == "npz" else Image.Image.save
    nested: list[int] = []

    def interleaved(*args: object, **kwargs: object) -> object:
        out = real(*args, **kwargs)
        if not nested:  # the other run, once, in the middle of this run's first write
            nested.append(1)
            _agent_prepared(official_data, expert="maps", maps=str(maps), view=view)
        return out

    if writer == "npz":
        monkeypatch.setattr(np, "savez_compressed", interleaved)
    else:
        monkeypatch.setattr(Image.Image, "save", interleaved)
    prepared = _agent_prepared(official_data, expert="maps", maps=str(maps), view=view)
    assert nested
    cache = Path(prepared[0].notes["agent"]["map"]).parent.parent
    assert not [p for p in cache.rglob("*") if "tmp" in p.name]  # no temporary file left behind
    with np.load(prepared[0].notes["agent"]["map"]) as f:
        assert f["map"].shape == (6, 6)


# ------------------------------------------------------------------------------------------ boost reporting


def test_the_expert_alone_scores_as_the_expert_model_scores(synthetic_demo: Path, tmp_path: Path) -> None:
    """One expert accuracy: the boost table's "expert alone" equals the score table of the expert answering
    as a model, cell for cell (balanced detection, the same localization rule)."""
    from mmeval import scoring
    from mmeval.predictions import read_predictions
    from mmeval.report.analysis.boosts import expert_use

    common = ["--data", str(synthetic_demo), "--shots", "2", "--limit", "160", "--no-progress"]
    assert main(["run", "--model", "expert", *common, "--out", str(tmp_path / "model")]) == 0
    assert main(["run", "--model", "random", "--boost", "agent", "--boost-arg", "view=text", *common,
                 "--out", str(tmp_path / "boost")]) == 0
    _, rows = expert_use(read_predictions(tmp_path / "boost" / "predictions.jsonl"))
    by_task = {r.task: r.expert_accuracy for r in rows}
    assert set(by_task) == {"Anomaly Detection", "Defect Localization"}
    expert_table = scoring.table_row(scoring.score_table(scoring.frame(
        read_predictions(tmp_path / "model" / "predictions.jsonl"))))
    for task, value in by_task.items():
        assert value == expert_table[task], task


def test_run_json_counts_the_images_the_expert_analysed(official_data: Path, tmp_path: Path) -> None:
    from mmeval.config import RunRecord

    _write_maps(official_data, tmp_path / "maps", (1, 1))
    assert main(["run", "--model", "random", "--data", str(official_data), "--boost", "agent", "--boost-arg",
                 "expert=maps", "--boost-arg", f"maps={tmp_path / 'maps'}", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    record = RunRecord.read(tmp_path / "r" / "run.json")
    assert record.boosts[0].model_extra["images_analysed"] == len(json_keys(official_data))


def test_runs_with_other_boost_options_get_other_default_folders() -> None:
    from mmeval.cli.run import default_out
    from mmeval.config import RunConfig

    def out(**args: object) -> Path:
        return default_out(RunConfig(model="random", data="synthetic", shots=1, boosts=("agent",),
                                     boost_args={"agent": args} if args else {}))

    folders = {out(), out(expert="oracle"), out(expert="oracle", view="text"), out(expert="maps", maps="/a/maps"),
               out(expert="maps", maps="/b/maps")}
    assert len(folders) == 5
    assert out() == Path("reports/random_synthetic_1shot_seed0_agent")  # no options: the name it always had
    long = default_out(RunConfig(model="hf:/" + "x" * 100, data="synthetic", shots=1, boosts=("agent",),
                                 boost_args={"agent": {"expert": "oracle"}}))
    assert long.name.endswith("_agent-expert-oracle") and len(long.name) <= 80  # the boosts part is never cut off


def test_an_option_of_a_boost_left_out_names_the_boost_to_add(official_data: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--model", "random", "--data", str(official_data), "--boost", "none", "--boost-arg",
                 "view=text", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--boost agent" in err and "BOOST." not in err and "Traceback" not in err


def test_mmeval_boosts_marks_required_options(capsys: pytest.CaptureFixture) -> None:
    assert main(["boosts"]) == 0
    out = capsys.readouterr().out
    assert "PydanticUndefined" not in out and "maps: str (required)" in out


# ------------------------------------------------------------------------------------------ hint wording


def _prefix_text(p: object) -> str:
    msg = p.request.message  # type: ignore[attr-defined]
    return "".join(getattr(part, "text", "") for part in msg.parts[: msg.prefix_len])


def test_the_oracles_words_say_what_it_found(synthetic_demo: Path) -> None:
    prepared = _agent_prepared(synthetic_demo, images=1, expert="oracle", view="text")
    normal = next(p for p in prepared if p.question.is_normal)
    text = _prefix_text(normal)
    assert "suggests no defect" in text and "center" not in text  # an all-zero map has no highest place
    assert "nothing anomalous" in text and normal.notes["agent"]["region"] is None
    defect = next(p for p in prepared if not p.question.is_normal)
    assert f"most likely in the {defect.notes['agent']['region']} of the image" in _prefix_text(defect)


@pytest.mark.parametrize("view", ["bbox", "heatmap"])
def test_an_overlay_sentence_says_what_the_expert_found(synthetic_demo: Path, view: str) -> None:
    prepared = _agent_prepared(synthetic_demo, images=1, expert="oracle", view=view)
    normal = _prefix_text(next(p for p in prepared if p.question.is_normal))
    defect = _prefix_text(next(p for p in prepared if not p.question.is_normal))
    assert "even on products without defects" not in normal + defect  # untrue of the oracle
    assert "found nothing anomalous" in normal and "defective" not in normal
    assert "judges the product defective" in defect and "nothing anomalous" not in defect
    patch = _agent_prepared(synthetic_demo, shots=1, images=1, view=view)  # a detector that always marks something
    quiet = next(p for p in patch if p.question.is_normal and not p.notes["agent"]["defective"])
    assert "the marks only show where" in _prefix_text(quiet)


def test_the_text_view_names_every_region_above_the_threshold(official_data: Path, tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    for key in json_keys(official_data):
        grid = np.zeros((6, 6), np.float32)
        grid[0, 0], grid[5, 5], grid[0, 5] = 0.9, 0.8, 0.3  # two regions above the line (0.5), one below
        (maps / key).parent.mkdir(parents=True, exist_ok=True)
        np.save((maps / key).with_suffix(".npy"), grid)
    text = _prefix_text(_agent_prepared(official_data, expert="maps", maps=str(maps), view="text")[0])
    assert "most likely in the top left of the image" in text
    assert "also above that line in the bottom right" in text and "top right" not in text
