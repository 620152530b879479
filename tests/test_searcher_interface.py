"""The documentation's "Adding a searcher" example (docs/searchers.md) runs as written through the real loop."""

import re
from pathlib import Path

import pytest

from fadejax import searchers
from fadejax.engine.config import parse_config
from fadejax.engine.store.records import read_records
from fadejax.stages.discover import discover
from fadejax.engine.store.record_fields import records_path


@pytest.fixture
def readme_searcher(monkeypatch):
    page = Path(__file__).resolve().parents[1] / "docs" / "searchers.md"
    block = re.search(r"# fadejax/searchers/uniform.py\n(.*?)```", page.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "docs/searchers.md", "exec"), namespace)
    monkeypatch.setitem(searchers.REGISTRY, "uniform", (namespace["UniformConfig"], namespace["Uniform"]))
    return namespace["Uniform"]


def test_the_readme_searcher_plugs_into_the_loop(readme_searcher, tmp_path, digits_task):
    config = parse_config({"searcher": {"kind": "uniform"}, "run": {"iterations": 6, "num_envs": 64}})
    summary = discover(config, tmp_path / "run", oracle=digits_task.oracle, progress=False)
    records = list(read_records(records_path(tmp_path / "run")))
    assert summary.queries == len(records) == 6 * 64
    assert len({r["action"] for r in records}) > 50  # uniform over 125 actions
    assert summary.top_cells and summary.failures == sum(r["failed"] for r in records)
