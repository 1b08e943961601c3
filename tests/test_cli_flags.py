"""The command line's flags: numeric ones checked by argparse with a message naming the flag."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from mmeval.cli import build_parser, main


def _parsers(parser: argparse.ArgumentParser, name: str = "mmeval") -> dict[str, argparse.ArgumentParser]:
    """Every parser of the command line, by its command ("mmeval build mvtec" ...)."""
    out = {name: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                out.update(_parsers(sub, f"{name} {sub_name}"))
    return out


def test_no_numeric_flag_takes_a_bare_int_or_float() -> None:
    """A bare ``type=int`` lets -1 through to code that may end in a traceback; every number has a checked type."""
    bare = [f"{command} {'/'.join(a.option_strings)}" for command, parser in _parsers(build_parser()).items()
            for a in parser._actions if a.type in (int, float)]
    assert bare == []


@pytest.mark.parametrize("argv,message", [
    (["build", "synthetic", "--out", "{tmp}/s", "--seed", "-1"],
     "argument --seed: must be a whole number of at least 0, got -1"),
    (["build", "mvtec", "{tmp}", "--out", "{tmp}/b", "--concurrency", "-1"],
     "argument --concurrency: must be a whole number from 1 to 1024, got -1"),
    (["build", "visa", "{tmp}", "--out", "{tmp}/b", "--seed", "-1"], "argument --seed: must be a whole number"),
    (["build", "folders", "{tmp}", "--out", "{tmp}/b", "--template-share", "1.5"],
     "argument --template-share: must be a number strictly between 0 and 1, got 1.5"),
    (["build", "mvtec", "{tmp}", "--out", "{tmp}/b", "--template-count", "0"], "argument --template-count: must be"),
    (["build", "mvtec", "{tmp}", "--out", "{tmp}/b", "--writer-attempts", "x"],
     "argument --writer-attempts: must be a whole number of at least 1, got 'x'"),
    (["run", "--model", "random", "--seed", "-1"], "argument --seed: must be a whole number of at least 0, got -1"),
    (["run", "--model", "random", "--shots", "two"], "argument --shots: must be a whole number of at least 0"),
    (["run", "--model", "random", "--limit", "0"], "argument --limit: must be a whole number of at least 1, got 0"),
    (["run", "--model", "random", "--batch-size", "-3"], "argument --batch-size: must be"),
    (["run", "--model", "random", "--concurrency", "2000"], "argument --concurrency: must be a whole number from 1"),
    (["compare", "{tmp}", "--bootstrap", "0"], "argument --bootstrap: must be a whole number of at least 1"),
    (["compare", "{tmp}", "--seed", "-2"], "argument --seed: must be a whole number of at least 0, got -2"),
    (["data", "check", "synthetic", "--seed", "-1"], "argument --seed: must be a whole number of at least 0"),
])
def test_bad_numbers_are_exit_2_naming_the_flag(argv: list[str], message: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_config_file_number_gets_its_flags_check(official_data: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"model: random\ndata: {official_data}\nseed: -1\n", encoding="utf-8")
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert f"--config {config}: seed: must be a whole number of at least 0, got -1" in capsys.readouterr().err
    config.write_text(f"model: random\ndata: {official_data}\ncycle_ms: -5\n", encoding="utf-8")
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "cycle_ms: must be a positive number of milliseconds" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ moved flags


@pytest.mark.parametrize("argv,replacement", [
    (["--base-url", "http://localhost:8000/v1"], "use -M base_url=http://localhost:8000/v1"),
    (["--no-api-cache"], "use -M no_cache=true"),
    (["--request-timeout=30"], "use -M request_timeout=30"),
    (["--api-key-env", "OTHER_KEY"], "use -M api_key_env=OTHER_KEY"),
    (["--no-prefix-reuse"], "use -M prefix_reuse=false"),
    (["--hf-preset", "llava-1.5"], "use -M preset=llava-1.5"),
    (["--expert-patch", "8"], "use -M patch=8"),
    (["--dtype"], "use -M dtype=auto|bf16|fp16|fp32"),
])
def test_a_flag_that_moved_under_m_names_its_replacement(argv: list[str], replacement: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["run", "--model", "openai:gpt-4o", *argv, "--out", str(tmp_path / "r")])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {argv[0].split('=')[0]} has moved: {replacement}" in err and "unrecognized" not in err


def test_every_moved_flag_points_at_an_option_that_exists_and_hides_from_help(
        capsys: pytest.CaptureFixture[str]) -> None:
    from mmeval.cli.moved import RUN_FLAGS
    from mmeval.experts import expert_option_names
    from mmeval.model_adapters import FAMILIES

    options = expert_option_names()
    for family in FAMILIES.values():
        options |= set(family.load().Options.model_fields)
    for flag, (new, _) in RUN_FLAGS.items():
        assert new.startswith("-M ") and new[3:].split("=")[0] in options, flag
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    shown = capsys.readouterr().out
    assert "--model-arg" in shown and not any(flag in shown for flag in RUN_FLAGS)


@pytest.mark.parametrize("command", [["experts"], ["models", "show", "hf"]])
def test_a_reader_that_goes_away_ends_the_listing_quietly(command: list[str]) -> None:
    """``mmeval experts | head -0``: the reader is gone before the listing is written; no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "mmeval", *command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err
