"""No traceback reaches a user: an unexpected failure is one ``error:`` line naming the
command and its step, with the traceback in a log file; every shipped config validates;
every ``fadejax`` command the README shows parses."""

from pathlib import Path

import pytest
import yaml

from fadejax import cli
from fadejax.cli import ERROR_LOG, EXIT_FAILED, main
from fadejax.engine.config import load_config
from readme import readme_commands

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "run": {"iterations": 2, "num_envs": 8}}))
    return path


def test_an_unexpected_failure_is_one_line_naming_the_step_and_the_traceback_is_logged(tiny_config, tmp_path, monkeypatch, capsys):
    import fadejax.stages.discover

    def broken_discover(config, out, **kwargs):
        Path(out).mkdir(parents=True)
        raise RuntimeError("the oracle returned nonsense\nsecond line")

    monkeypatch.setattr(fadejax.stages.discover, "discover", broken_discover)
    out = tmp_path / "run"
    assert main(["discover", "--config", str(tiny_config), "--out", str(out), "--quiet"]) == EXIT_FAILED
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("error: fadejax discover failed while running discovery: RuntimeError: the oracle returned nonsense")
    log = out / ERROR_LOG
    assert str(log) in err
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "broken_discover" in text and "second line" in text


def test_without_a_run_directory_the_log_goes_to_the_temporary_directory(tmp_path, monkeypatch, capsys):
    import fadejax.engine.config

    monkeypatch.setattr(cli.tempfile, "gettempdir", lambda: str(tmp_path))

    def broken_load(path, overrides=()):
        raise KeyError("surprise")

    monkeypatch.setattr(fadejax.engine.config, "load_config", broken_load)
    assert main(["landscape", "--config", "configs/digits.yaml"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "fadejax landscape failed while loading the config: KeyError" in err
    assert (tmp_path / ERROR_LOG).exists() and str(tmp_path / ERROR_LOG) in err


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_shipped_config_loads_and_validates(path):
    config = load_config(ROOT / "configs" / path)  # validation only: no model or data is loaded
    assert config.concept_space().num_actions >= 2


def test_every_readme_command_parses_and_names_a_shipped_config():
    commands = readme_commands()
    assert {argv[0] for argv in commands} >= {"discover", "summarize", "restructure"}
    parser = cli._parser()
    for argv in commands:
        args = parser.parse_args(argv)  # exits (SystemExit) on a flag the CLI does not have
        config = getattr(args, "config", None)
        if config is not None:
            load_config(ROOT / config, getattr(args, "overrides", []))
