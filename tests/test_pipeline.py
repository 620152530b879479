"""The pipelined loop (run.pipeline): iteration t+1 proposed while the model answers t, from
the searcher before it learned from t. Reproducible, exact on resume, and the default
searcher still never re-asks a pair."""

from __future__ import annotations

import json

import numpy as np
import pytest

from readme import ROOT
from resume_check import reproducible_rows
from fadejax.engine.config import ConfigError, load_config
from fadejax.engine.store.records import query_columns, records_path
from fadejax.stages.discover import discover

EVERY = 4


def _config(pipeline: bool = True, *extra: str):
    return load_config(ROOT / "configs/digits.yaml", ["recording=recordings/digits.npz", "run.iterations=10", "run.num_envs=64",
                                                      f"run.checkpoint_every={EVERY}", "run.tensorboard=false", f"run.pipeline={str(pipeline).lower()}",
                                                      *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    discover(_config(True), root / "pipelined", progress=False)
    discover(_config(False), root / "plain", progress=False)
    return root


def test_a_pipelined_run_proposes_ahead_except_after_a_checkpoint_and_says_so(runs):
    rows = [json.loads(line) for line in (runs / "pipelined" / "metrics.jsonl").read_text().splitlines()]
    assert [r["proposal_lag"] for r in rows] == [0 if i % EVERY == 0 else 1 for i in range(10)]
    assert all("proposal_lag" not in json.loads(line) for line in (runs / "plain" / "metrics.jsonl").read_text().splitlines())
    pipelined, plain = (query_columns(records_path(runs / name)) for name in ("pipelined", "plain"))
    assert pipelined[0].size == plain[0].size == 640
    # iterations proposed ahead ask other pairs than the same seed's unpipelined run (the lag is real) ...
    assert not np.array_equal(pipelined[1][64 * 1: 64 * 2], plain[1][64 * 1: 64 * 2]) or not np.array_equal(pipelined[0][64:128], plain[0][64:128])
    # ... and the default searcher still asks every (sample, cell) pair at most once
    pairs = pipelined[0] * 10_000 + pipelined[1]
    assert np.unique(pairs).size == pairs.size


def test_a_pipelined_run_is_reproducible_and_resumes_exactly(runs, tmp_path):
    again = tmp_path / "again"
    discover(_config(True), again, progress=False, stop_after=6)  # stops between checkpoints 4 and 8
    assert json.loads((again / "run.json").read_text())["status"] == "running"
    discover(_config(True), again, resume=True, progress=False)  # from the checkpoint at 4
    assert records_path(again).read_bytes() == records_path(runs / "pipelined").read_bytes()
    assert reproducible_rows(again) == reproducible_rows(runs / "pipelined")


def test_pipelining_a_microscopic_run_is_refused_in_words():
    with pytest.raises(ConfigError, match="run.pipeline works in mode 'macro' only"):
        _config(True, "mode=micro", "searcher.kind=posterior_walk", "micro.start=[2,0,0]")
