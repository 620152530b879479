"""Multi-device discovery on two forced host devices: sharded for real, and learning as on one device.

XLA fixes the number of host devices when JAX starts, so the comparison runs in a child
process with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``; it runs the same
seeded discovery with ``run.devices`` 1 and 2 and reports both.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from subprocess_env import jax_subprocess_env

CHILD = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from fadejax.engine.config import parse_config
    from fadejax.engine.checkpoints import build_discovery
    from fadejax.engine.build import build_task

    assert len(jax.devices()) == 2, jax.devices()
    out = {}
    for devices in (1, 2):
        config = parse_config({
            "searcher": {"kind": "dqn", "hidden_sizes": [64], "batch_size": 64, "min_replay": 64, "replay_capacity": 1024},
            "run": {"iterations": 8, "num_envs": 64, "devices": devices, "seed": 3},
        })
        task = build_task(config, progress=False)
        seen = []
        oracle = task.oracle
        task.oracle = lambda images: (seen.append(len(images.sharding.device_set)), oracle(images))[1]
        discovery = build_discovery(config, task)
        state = discovery.init(config.run.seed)
        actions, failed, losses = [], [], []
        for _ in range(config.run.iterations):
            state, outcome, metrics = discovery.step(state)
            actions.append(np.asarray(outcome["action"]).tolist())
            failed.append(np.asarray(outcome["failed"]).tolist())
            losses.append(float(metrics["loss"]))
        replay = state.searcher.replay.experience["obs"]
        out[devices] = {
            "oracle_shards": seen, "actions": actions, "failed": failed, "losses": losses,
            "replay_devices": len(replay.sharding.device_set), "sample_devices": len(state.sample.sharding.device_set),
            "params": [np.asarray(x).ravel().tolist() for x in jax.tree.leaves(state.searcher.params)],
            "failures": int(state.failures),
        }
    json.dump(out, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def runs(digits_task):  # digits_task: the embedded model is trained and cached before the child loads it
    flags = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()  # keeps the suite's compile flags
    env = jax_subprocess_env(XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout)
    return data["1"], data["2"]


def test_two_devices_really_shard_the_batch_the_oracle_and_the_replay(runs):
    one, two = runs
    assert set(one["oracle_shards"]) == {1} and set(two["oracle_shards"]) == {2}
    assert one["replay_devices"] == one["sample_devices"] == 1
    assert two["replay_devices"] == two["sample_devices"] == 2


def test_two_devices_learn_like_one(runs):
    """Same seed, same keys: the queries agree exactly while exploration dominates, and the
    learned parameters agree to float32 reduction-order noise (stated tolerance: 1e-4)."""
    one, two = runs
    assert one["actions"][0] == two["actions"][0] and one["failed"][0] == two["failed"][0]
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-3, atol=1e-5)
    for a, b in zip(one["params"], two["params"]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    agree = np.mean(np.asarray(one["actions"]) == np.asarray(two["actions"]))
    assert agree >= 0.99, f"only {agree:.1%} of the queries agree"
    assert abs(one["failures"] - two["failures"]) <= 0.01 * 8 * 64
