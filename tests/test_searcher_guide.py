"""docs/benchmark-your-searcher.md works as written: a searcher registered from a file of the
user's gets Table 1 rows and sweeps on a shipped recording, then live (tiny budgets)."""

import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

from fadejax.searchers import REGISTRY, register
from fadejax.searchers.base import Searcher, SearcherConfig
from fadejax.searchers.baselines.greedy import EpsilonGreedy, GreedyConfig

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "benchmark-your-searcher.md"
TINY = ["--iterations", "2", "--num-envs", "16", "--seeds", "2"]
INLINE = ["--inline"]  # table1.py's points in this process: Ray's own start is tested in test_sweep.py


@pytest.fixture()
def clean_registry():
    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


def _guide_commands() -> list[list[str]]:
    """Every ``.venv/bin/python benchmarks/...`` command in the guide's bash blocks, as argv."""
    blocks = re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), re.S)
    commands = [line for block in blocks for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return [shlex.split(line)[1:] for line in commands if line.startswith(".venv/bin/python benchmarks/")]


def _run(argv: list[str], capsys) -> str:
    saved = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(str(ROOT / argv[0]), run_name="__main__")
    finally:
        sys.argv = saved
    return capsys.readouterr().out


def test_register_names_what_is_wrong(clean_registry):
    class NoKind(SearcherConfig):
        pass

    with pytest.raises(ValueError, match="needs a default naming the searcher"):
        register(NoKind, EpsilonGreedy)
    with pytest.raises(ValueError, match="is not a subclass"):
        register(GreedyConfig, dict)

    class Clash(GreedyConfig):
        pass

    with pytest.raises(ValueError, match="'greedy' is already registered"):
        register(Clash, type("Other", (Searcher,), {}))
    assert register(GreedyConfig, EpsilonGreedy) == "greedy"  # the same pair again: allowed


def test_the_guides_commands_run_with_a_plugin_searcher(clean_registry, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    commands = _guide_commands()
    assert [c[0] for c in commands] == ["benchmarks/table1.py", "benchmarks/table1.py", "benchmarks/sweep.py"]
    recorded, live, sweep = commands

    out = _run(recorded + TINY + INLINE + ["--searchers", "uniform,random", "--out", str(tmp_path / "rec"), "--sweep-dir", str(tmp_path / "s1")], capsys)
    assert re.search(r"^\| uniform \| \d+", out, re.M) and re.search(r"^\| random \| \d+", out, re.M)
    assert "uniform" in (tmp_path / "rec" / "table1_recorded_runs.csv").read_text()

    # live: the audited model answers; a coarse truth on 30 held-out digits and one row keep it quick
    out = _run(live + TINY + INLINE + ["--searchers", "uniform", "--set", "data.limit=30", "--truth-dir", str(tmp_path / "truth"),
                                        "--out", str(tmp_path / "live"), "--sweep-dir", str(tmp_path / "s2")], capsys)
    assert re.search(r"^\| uniform \| \d+", out, re.M) and "ground truth computed" in out

    out = _run(sweep + TINY + ["--out", str(tmp_path / "sweep")], capsys)
    assert "searcher.epsilon: swept inside one program" in out and "12 runs" in out
    out = _run(sweep[:5] + TINY + ["--plugin", "examples/uniform_searcher.py", "--searcher", '{"kind": "uniform"}', "--out", str(tmp_path / "mine")], capsys)
    assert "2 runs" in out and (tmp_path / "mine" / "sweep.csv").is_file()

    nothing = tmp_path / "nothing.py"
    nothing.write_text("x = 1\n")
    with pytest.raises(SystemExit):  # a file that registers nothing is refused by name
        _run(["benchmarks/table1.py", "--recorded", "recordings/digits.npz", "--plugin", str(nothing)], capsys)
    assert "registered no searcher" in capsys.readouterr().err
