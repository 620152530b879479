"""The fused recorded loop (fadejax/engine/fused.py): a vmapped batch of seeds, scanned on the device,
makes exactly the queries of the plain per-iteration loop run one seed at a time."""

import numpy as np
import pytest

from fadejax.engine.config import parse_config
from fadejax.engine.fused import run_fused
from fadejax.engine.ground_truth import landscape_key
from fadejax.engine.recording import RecordedTask, record
from fadejax.engine.checkpoints import build_discovery

SMALL_SPACE = {"axes": [{"name": "rotation", "values": [-20, 0, 20]}, {"name": "darkness", "values": [0.0, 0.7]}, {"name": "blur", "values": [0.0, 3.0]}]}
ITERATIONS, ENVS, SEEDS = 10, 32, [0, 1, 2]


@pytest.fixture(scope="module")
def small():
    """The embedded model (cached after its first training) on a 12-cell space over the first 60 held-out digits, recorded."""
    from fadejax.engine.build import build_task

    config = parse_config({"data": {"limit": 60}, "space": SMALL_SPACE, "run": {"iterations": ITERATIONS, "num_envs": ENVS}})
    task = build_task(config, progress=False)
    recording = record(task, landscape_key(config), config.name)
    return config, RecordedTask(recording, config.concept_space()), task


def _stepped(discovery, seed):
    """The plain loop: ``Discovery.step`` one iteration at a time, ``(sample, cell, failed)`` each ``(T, B)``."""
    state, rows = discovery.init(seed), []
    for _ in range(ITERATIONS):
        state, outcome, _ = discovery.step(state)
        rows.append([np.asarray(outcome[k]) for k in ("sample", "cell", "failed")])
    return [np.stack(column) for column in zip(*rows)]


@pytest.mark.parametrize("searcher", [{"kind": "random"}, {"kind": "posterior"}], ids=lambda s: s["kind"])
def test_a_fused_batch_of_seeds_makes_the_stepped_loops_queries_exactly(small, searcher):
    config, task, _ = small
    config = parse_config({**config.model_dump(mode="json"), "searcher": searcher})
    discovery = build_discovery(config, task)
    fused = run_fused(discovery, SEEDS, ITERATIONS, keep_queries=True)
    assert fused.failures.shape == (len(SEEDS), ITERATIONS)
    assert fused.sample.shape == fused.cell.shape == fused.failed.shape == (len(SEEDS), ITERATIONS, ENVS)
    for i, seed in enumerate(SEEDS):
        sample, cell, failed = _stepped(discovery, seed)
        # Bitwise: under vmap the searchers' float reductions (the posterior's Newton sweeps:
        # segment sums, sums over the kept queries) keep their order on this backend.
        np.testing.assert_array_equal(fused.sample[i], sample)
        np.testing.assert_array_equal(fused.cell[i], cell)
        np.testing.assert_array_equal(fused.failed[i], failed)
        np.testing.assert_array_equal(fused.failures[i], failed.sum(axis=1))
    assert len({tuple(fused.sample[i].ravel()) for i in range(len(SEEDS))}) == len(SEEDS)  # the seeds differ
    if searcher["kind"] == "random":  # (compiling each program costs seconds: checked on the cheapest searcher)
        again = run_fused(discovery, SEEDS, ITERATIONS, keep_queries=True)
        assert again.compile_seconds == 0.0  # the compiled program is reused for the same discovery and shapes
        np.testing.assert_array_equal(again.failed, fused.failed)
        np.testing.assert_array_equal(run_fused(discovery, SEEDS, ITERATIONS).failures, fused.failures)  # counts only


def test_a_live_task_is_refused(small):
    config, _, live = small
    discovery = build_discovery(config, live)
    with pytest.raises(TypeError, match="RecordedTask"):
        run_fused(discovery, [0], 2)


def test_searcher_settings_swept_in_one_program_make_each_settings_own_queries(small):
    """ε-greedy at three ε values and two seeds, vmapped over settings and seeds, equals each
    setting's own fused run (itself equal to the stepped loop, above), query by query."""
    from fadejax.engine.fused import batchable, run_fused_settings

    config, task, _ = small
    discoveries = [build_discovery(parse_config({**config.model_dump(mode="json"), "searcher": {"kind": "greedy", "epsilon": eps}}), task)
                   for eps in (0.1, 0.5, 0.9)]
    assert batchable(discoveries[0], "epsilon") is None
    together = run_fused_settings(discoveries, ["epsilon"], SEEDS[:2], ITERATIONS, keep_queries=True)
    assert len(together) == 3
    for discovery, result in zip(discoveries, together):
        alone = run_fused(discovery, SEEDS[:2], ITERATIONS, keep_queries=True)
        for i in range(2):
            for got, want in zip(result.queries(i), alone.queries(i)):
                np.testing.assert_array_equal(got, want)
    assert len({int(r.failures.sum()) for r in together}) > 1  # the settings really differ

    posterior = build_discovery(config, task)  # a field that sets a count is refused by name, not mis-run
    assert "identify_fraction" in batchable(posterior, "identify_fraction")
    other_floor = build_discovery(parse_config({**config.model_dump(mode="json"), "searcher": {"kind": "greedy", "floor": 0.2}}), task)
    with pytest.raises(ValueError, match=r"differ in \['floor'\]"):
        run_fused_settings([discoveries[0], other_floor], ["epsilon"], SEEDS[:1], ITERATIONS)
