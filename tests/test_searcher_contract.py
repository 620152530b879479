"""What every registered searcher owes the loop, checked through the real loop on the
embedded model: exactly ``num_envs`` queries charged per iteration, the figures it declares
(``reports``) in every learning-curve row, and an interrupted run, resumed, ending exactly
as the uninterrupted one (the same record bytes, the same learning curves)."""

import pytest

from fadejax.engine.config import parse_config
from fadejax.engine.store.learning_log import read_metrics
from fadejax.engine.store.records import read_records
from fadejax.searchers import REGISTRY
from resume_check import assert_resumes_exactly
from fadejax.engine.store.record_fields import records_path

ITERATIONS, NUM_ENVS = 8, 16
#: small networks that start learning within the run (after 2 of its 8 iterations), so the
#: replay buffer and optimiser state are part of what is checkpointed and resumed
SMALL = {
    "dqn": {"hidden_sizes": [32], "batch_size": 32, "min_replay": 32, "replay_capacity": 1024},
    "bootstrapped": {"num_heads": 4, "hidden_sizes": [16], "batch_size": 32, "min_replay": 32, "replay_capacity": 1024},
}


def _config(kind: str):
    macro = REGISTRY[kind][1].supports_macro
    data = {
        "mode": "macro" if macro else "micro", "data": {"limit": 120}, "searcher": {"kind": kind, **SMALL.get(kind, {})},
        "run": {"iterations": ITERATIONS, "num_envs": NUM_ENVS, "checkpoint_every": 2, "seed": 1},
    }
    if not macro:  # a walker: start two notches from the origin, walk up to 6 moves
        data["micro"] = {"start": [2, 0, 0], "max_steps": 6}
    return parse_config(data)


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_searcher_is_charged_exactly_and_resumes_exactly(tmp_path, digits_task, kind):
    assert_resumes_exactly(_config(kind), tmp_path, digits_task.oracle, stop_after=5)  # stops between checkpoints 4 and 6
    records = list(read_records(records_path(tmp_path / "whole")))
    assert len(records) == ITERATIONS * NUM_ENVS
    assert [sum(r["iteration"] == i for r in records) for i in range(ITERATIONS)] == [NUM_ENVS] * ITERATIONS
    # its learning curves carry exactly the figures it declares, every iteration
    declared = {f"searcher.{name}" for name in REGISTRY[kind][1].reports}
    for row in read_metrics(tmp_path / "whole" / "metrics.jsonl"):
        assert {k for k in row if k.startswith("searcher.")} == declared
        assert row["failures"] == sum(r["failed"] for r in records if r["iteration"] == row["iteration"])
