"""One command line: the shared flags mean the same wherever they apply, every command's
help says what it reads and writes, and ``fadejax --version`` answers."""

import argparse

import pytest

from fadejax import __version__
from fadejax.cli import COMMAND_IO, _parser, main

#: commands that take a config (and so --set), read a run directory someone may have shared
#: (and so --trust-code), or write progress (and so --quiet)
TAKES_CONFIG = {"discover", "landscape", "describe", "propose-conditions", "init", "fade"}
READS_RUNS = {"summarize", "restructure", "compare", "sweep", "describe", "check"}
WRITES_PROGRESS = {"discover", "landscape", "summarize", "restructure", "compare", "sweep", "describe", "propose-conditions", "init", "fade", "export"}


def _commands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings}


def test_every_command_says_what_it_reads_and_writes(capsys):
    commands = _commands()
    assert set(commands) == set(COMMAND_IO)
    for name in commands:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        assert f"usage: fadejax {name}" in text and "reads: " in text and "writes: " in text, name


@pytest.mark.parametrize("flag, commands", [("--set", TAKES_CONFIG), ("--trust-code", READS_RUNS), ("--quiet", WRITES_PROGRESS)])
def test_a_shared_flag_is_on_every_command_it_applies_to_and_means_the_same(flag, commands):
    found = {name: _flags(parser).get(flag) for name, parser in _commands().items()}
    assert {name for name, action in found.items() if action is not None} == commands
    kinds = {(type(action).__name__, action.dest, action.metavar) for action in found.values() if action is not None}
    assert len(kinds) == 1, kinds  # one meaning: the same action, destination and value
    helps = {action.help.split("with --")[-1] for action in found.values() if action is not None}
    assert len({h.split(": ", 1)[-1] for h in helps}) == 1


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"fadejax {__version__}"


def test_the_shell_completes_commands_and_flags(tmp_path):
    """What bash gets after ``eval "$(register-python-argcomplete fadejax)"`` (argcomplete)."""
    import os
    import subprocess
    import sys

    def complete(line: str) -> list[str]:
        out = tmp_path / "completions"
        env = {**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_STDOUT_FILENAME": str(out), "COMP_LINE": line, "COMP_POINT": str(len(line))}
        subprocess.run([sys.executable, "-c", "import sys; from fadejax.cli import main; sys.exit(main())"], env=env, check=True, timeout=120)
        return out.read_text().split()

    assert complete("fadejax su") == ["summarize"]
    assert "--quiet" in complete("fadejax restructure --q") and complete("fadejax --vers") == ["--version"]
