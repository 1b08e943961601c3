"""How a run is described: plain flags, namespaced --model-arg / --boost-arg, config files, run.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmeval.cli import main
from mmeval.config import RunRecord
from mmeval.predictions import read_predictions


def run(official_data: Path, out: Path, *extra: str) -> int:
    return main(["run", "--data", str(official_data), "--out", str(out), "--no-progress", *extra])


def test_run_json_is_a_typed_record(official_data: Path, tmp_path: Path) -> None:
    assert run(official_data, tmp_path / "r", "--model", "expert", "--shots", "1", "-M", "patch=8",
               "-M", "cache=3") == 0
    record = RunRecord.read(tmp_path / "r" / "run.json")
    assert record.version >= 1 and record.config.model == "expert" and record.boosts == []
    assert record.config.model_args == {"patch": 8} and record.config.runtime_args == {"cache": 3}
    assert record.digest == record.config.digest()
    assert {p.config for p in read_predictions(tmp_path / "r" / "predictions.jsonl")} == {record.digest}


def test_config_file_and_flags_override_it(official_data: Path, tmp_path: Path) -> None:
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(f"model: expert\ndata: {official_data}\nshots: 1\nseed: 3\nmodel_args:\n  patch: 8\n"
                         f"  temperature: 4\nout: {tmp_path / 'from-file'}\n", encoding="utf-8")
    assert main(["run", "--config", str(yaml_file), "--no-progress"]) == 0
    first = RunRecord.read(tmp_path / "from-file" / "run.json").config
    assert (first.seed, first.shots, first.model_args) == (3, 1, {"patch": 8, "temperature": 4.0})
    toml_file = tmp_path / "run.toml"
    toml_file.write_text(f'model = "expert"\ndata = "{official_data}"\nshots = 1\nseed = 3\n'
                         f'[model_args]\npatch = 8\ntemperature = 4\n', encoding="utf-8")
    # the same run from TOML plus a flag that overrides the file's seed, and a -M that overrides one model arg
    assert main(["run", "--config", str(toml_file), "--seed", "5", "-M", "temperature=2", "--out",
                 str(tmp_path / "flags"), "--no-progress"]) == 0
    second = RunRecord.read(tmp_path / "flags" / "run.json").config
    assert second.seed == 5 and second.model_args == {"patch": 8, "temperature": 2.0} and second.shots == 1


def test_spelling_of_a_value_does_not_change_the_run(official_data: Path, tmp_path: Path) -> None:
    assert run(official_data, tmp_path / "a", "--model", "expert", "--shots", "1", "-M", "temperature=4") == 0
    assert run(official_data, tmp_path / "b", "--model", "expert", "--shots", "1", "-M", "temperature=4.0") == 0
    assert (RunRecord.read(tmp_path / "a" / "run.json").digest == RunRecord.read(tmp_path / "b" / "run.json").digest)


@pytest.mark.parametrize("flags,needle", [
    (["--model", "expert", "-M", "patchsize=8"], "patchsize: unknown option"),
    (["--model", "expert", "-M", "patch=two"], "patch=two"),
    (["--model", "expert", "-M", "patch"], "expected KEY=VALUE"),
    (["--model", "random", "--answer-mode", "likelihood"], "supports generate only"),
    (["--model", "random", "--boost", "rgg"], "unknown boost 'rgg'"),
    (["--model", "random", "--boost-arg", "top_k=3"], "add it, e.g. --boost rag"),
    (["--shots", "1"], "--model is required"),
])
def test_bad_settings_exit_2_naming_the_culprit(official_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                flags: list[str], needle: str) -> None:
    assert run(official_data, tmp_path / "x", *flags) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize("content,needle", [
    ("model: random\nshotz: 1\n", "unknown setting(s) shotz"),
    ("- model\n", "expected a mapping"),
    ("model: [unclosed\n", "cannot parse"),
    ("model: random\nmodel_args: 3\n", "model_args must be a mapping"),
])
def test_bad_config_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, content: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "x")]) == 2
    assert needle in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_models_show_lists_a_familys_options(capsys: pytest.CaptureFixture) -> None:
    assert main(["models", "show", "openai"]) == 0
    out = capsys.readouterr().out
    for name in ("base_url", "api_key_env", "max_tokens", "rpm", "no_cache"):
        assert f"  {name}:" in out
    assert "answer modes: generate, likelihood" in out and "[operational" in out
    assert main(["models", "show", "expert"]) == 0
    out = capsys.readouterr().out
    assert "  temperature:" in out and "  threshold_scale:" in out and "(expert patch)" in out
    assert main(["models", "show", "hff"]) == 2
    assert "Did you mean 'hf'" in capsys.readouterr().err
    assert main(["models"]) == 0
    assert "models show FAMILY" in capsys.readouterr().out


def test_boosts_and_experts_are_listed(capsys: pytest.CaptureFixture) -> None:
    assert main(["boosts"]) == 0
    assert "none" in capsys.readouterr().out
    assert main(["experts"]) == 0
    out = capsys.readouterr().out
    assert "patch" in out and "threshold_scale" in out


def test_plain_flags_reach_the_adapter(official_data: Path, tmp_path: Path) -> None:
    assert run(official_data, tmp_path / "r", "--model", "random", "--batch-size", "3", "--seed", "2") == 0
    record = RunRecord.read(tmp_path / "r" / "run.json")
    assert record.config.batch_size == 3 and record.config.seed == 2
    # the batch size is operational: the same run with another one resumes instead of refusing
    assert run(official_data, tmp_path / "r", "--model", "random", "--batch-size", "7", "--seed", "2") == 0
    timings = [json.loads(line) for line in (tmp_path / "r" / "timings.jsonl").read_text().splitlines()]
    assert max(t["batch_size"] for t in timings) <= 3


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_a_config_file_not_in_utf8_is_named_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          suffix: str) -> None:
    config = tmp_path / f"run{suffix}"
    config.write_bytes('model = "random"\n# réglage du modèle\n'.replace(" = ", ": " if suffix == ".yaml" else " = ")
                       .encode("latin-1"))
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"--config {config}: not UTF-8 at line 2, column 4" in err and "save it as UTF-8" in err
    assert "Traceback" not in err
