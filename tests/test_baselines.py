"""Each baseline follows its definition, and every searcher is charged queries the same way."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fadejax.engine.config import parse_config
from fadejax.searchers import Transition
from fadejax.searchers.baselines.bayes import BayesConfig, BayesOpt
from fadejax.searchers.baselines.greedy import EpsilonGreedy, GreedyConfig
from fadejax.searchers.baselines.threshold import Threshold, ThresholdConfig


def _transition(samples, failed, actions=None):
    samples = jnp.asarray(samples, jnp.int32)
    n = samples.shape[0]
    actions = jnp.zeros(n, jnp.int32) if actions is None else jnp.asarray(actions, jnp.int32)
    obs = jnp.zeros((n, 1))
    failed = jnp.asarray(failed, bool)
    return Transition(obs, actions, failed.astype(jnp.float32), obs, jnp.ones(n, bool), samples, failed)


def test_greedy_weights_move_by_epsilon_in_query_order_and_floor_at_001():
    searcher = EpsilonGreedy(GreedyConfig(epsilon=0.5), num_actions=4, obs_dim=1, num_samples=3, total_iterations=1, num_envs=5)
    state = searcher.init(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(state.weights, [1, 1, 1])
    # sample 0: fail, fail -> 2.0; sample 1: success, success -> 1 - 0.5 = 0.5 -> floor(0.0) = 0.01; sample 2: success then fail -> 0.5 -> 1.0
    state, _ = searcher.update(state, _transition([0, 1, 2, 0, 1], [True, False, False, True, False]), jax.random.PRNGKey(1))
    state, _ = searcher.update(state, _transition([2], [True]), jax.random.PRNGKey(2))
    np.testing.assert_allclose(state.weights, [2.0, 0.01, 1.0], rtol=1e-6)
    # A floored row goes back up by epsilon from the floor, not from below it.
    state, _ = searcher.update(state, _transition([1], [True]), jax.random.PRNGKey(3))
    np.testing.assert_allclose(state.weights[1], 0.51, rtol=1e-6)


def test_greedy_draws_rows_in_proportion_to_weight():
    searcher = EpsilonGreedy(GreedyConfig(epsilon=0.1), num_actions=4, obs_dim=1, num_samples=3, total_iterations=1, num_envs=4)
    state = searcher.init(jax.random.PRNGKey(0)).replace(weights=jnp.array([0.01, 1.0, 3.0]))
    rows = np.asarray(searcher.select_samples(state, jax.random.PRNGKey(1), 40_000))
    np.testing.assert_allclose(np.bincount(rows, minlength=3) / rows.size, np.array([0.01, 1.0, 3.0]) / 4.01, atol=0.01)


def test_threshold_switches_after_exactly_five_consecutive_non_failures():
    searcher = Threshold(ThresholdConfig(), num_actions=4, obs_dim=1, num_samples=1000, total_iterations=1, num_envs=2)
    state = searcher.init(jax.random.PRNGKey(0))
    start = np.asarray(state.current)
    # env 0: 4 successes, a failure (resets), then 5 successes -> switches only at the very end.
    # env 1: always fails -> never switches.
    pattern = [False, False, False, False, True, False, False, False, False, False]
    for step, ok in enumerate(pattern):
        picked = searcher.select_samples(state, jax.random.PRNGKey(step), 2)
        state, _ = searcher.update(state, _transition(picked, [ok, True]), jax.random.PRNGKey(100 + step))
        if step < len(pattern) - 1:
            np.testing.assert_array_equal(state.current, start)
    assert int(state.current[0]) != int(start[0]) and int(state.current[1]) == int(start[1])
    np.testing.assert_array_equal(state.streak, [0, 0])


def test_bayes_proposes_one_cell_per_batch_and_finds_a_planted_peak():
    sizes = (5, 5)
    searcher = BayesOpt(BayesConfig(n_initial_points=5), num_actions=25, obs_dim=1, num_samples=10, total_iterations=40, num_envs=8, sizes=sizes)
    state = searcher.init(jax.random.PRNGKey(0))
    peak = np.ravel_multi_index((4, 3), sizes)
    rates = np.exp(-0.5 * np.sum((np.stack(np.unravel_index(np.arange(25), sizes), 1) - [4, 3]) ** 2, axis=1))
    rng = np.random.default_rng(0)
    asked = []
    for i in range(40):
        actions = searcher.act(state, jnp.zeros((8, 1)), jax.random.PRNGKey(i))
        assert len(set(np.asarray(actions).tolist())) == 1  # the batch evaluates one proposal
        cell = int(actions[0])
        asked.append(cell)
        failed = rng.random(8) < rates[cell]
        state, _ = searcher.update(state, _transition(np.arange(8), failed, actions), jax.random.PRNGKey(i))
    # It concentrates near the planted worst cell: its late proposals are far better than chance.
    assert rates[asked[-10:]].mean() >= 2 * rates.mean()
    assert peak in asked


def test_baselines_refuse_microscopic_mode():
    from fadejax.engine.config import ConfigError

    with pytest.raises(ConfigError, match="searcher 'threshold' works on macroscopic cells only; for mode 'micro' use one of \\['bootstrapped', 'dqn', 'posterior_walk'\\]"):
        parse_config({"mode": "micro", "searcher": {"kind": "threshold"}})
