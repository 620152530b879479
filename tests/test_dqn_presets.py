"""The DQN's learning-per-query settings: presets, epsilon and learning-rate schedules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fadejax.engine.config import ConfigError, parse_config
from fadejax.searchers import DQN, DQNConfig, Transition
from fadejax.searchers.dqn import PRESETS

PAPER = dict(
    epsilon_start=1.0, epsilon_end=0.6, epsilon_decay_fraction=1.0, epsilon_schedule="linear", hidden_sizes=(256, 256),
    updates_per_iteration=1, batch_size=256, learning_rate=1e-3, learning_rate_schedule="constant",
    target_update="periodic", target_period=50, double_q=True,
)
ENGINE = dict(
    epsilon_start=1.0, epsilon_end=0.05, epsilon_decay_fraction=0.3, epsilon_schedule="linear", hidden_sizes=(256, 256),
    updates_per_iteration=8, batch_size=128, learning_rate=1e-3, learning_rate_schedule="cosine", learning_rate_end_factor=0.1,
    target_update="polyak", polyak_tau=0.05, double_q=True,
)


def _agent(config: DQNConfig, total_iterations: int = 100) -> DQN:
    return DQN(config, num_actions=3, obs_dim=1, num_samples=1, total_iterations=total_iterations, num_envs=4)


@pytest.mark.parametrize("name, expected", [("paper", PAPER), ("engine", ENGINE)])
def test_presets_resolve_to_the_documented_values(name, expected):
    assert PRESETS[name] == expected
    config = DQNConfig(preset=name)
    assert {k: getattr(config, k) for k in expected} == expected
    # through the experiment config too, and its dump re-parses to the same config
    parsed = parse_config({"searcher": {"kind": "dqn", "preset": name}})
    assert parsed.searcher_config() == config
    assert parse_config(parsed.model_dump(mode="json")) == parsed


def test_the_paper_preset_is_what_no_preset_gives():
    assert DQNConfig(preset="paper").model_dump(exclude={"preset"}) == DQNConfig().model_dump(exclude={"preset"})


def test_an_explicit_field_wins_over_the_preset():
    config = DQNConfig(preset="engine", batch_size=64, epsilon_end=0.2, target_update="periodic")
    assert (config.batch_size, config.epsilon_end, config.target_update) == (64, 0.2, "periodic")
    assert config.updates_per_iteration == 8 and config.learning_rate_schedule == "cosine"  # the rest from the preset
    parsed = parse_config({"searcher": {"kind": "dqn", "preset": "engine", "updates_per_iteration": 2}}).searcher_config()
    assert parsed.updates_per_iteration == 2 and parsed.batch_size == 128


def test_an_unknown_preset_is_a_config_error_naming_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"searcher\.preset: Input should be 'paper' or 'engine'"):
        parse_config({"searcher": {"kind": "dqn", "preset": "fast"}})


def test_the_paper_preset_decays_epsilon_linearly_from_1_to_0_6_over_the_run():
    agent = _agent(DQNConfig(preset="paper"), total_iterations=100)
    assert float(agent.epsilon(0)) == pytest.approx(1.0)
    assert float(agent.epsilon(25)) == pytest.approx(0.9)
    assert float(agent.epsilon(50)) == pytest.approx(0.8)
    assert float(agent.epsilon(100)) == pytest.approx(0.6)


def test_the_engine_preset_reaches_its_epsilon_floor_at_30_percent():
    agent = _agent(DQNConfig(preset="engine"), total_iterations=200)
    assert float(agent.epsilon(0)) == pytest.approx(1.0)
    assert float(agent.epsilon(30)) == pytest.approx(1.0 - 0.95 / 2)
    assert float(agent.epsilon(60)) == pytest.approx(0.05)
    assert float(agent.epsilon(200)) == pytest.approx(0.05)


def test_the_exponential_epsilon_schedule_is_geometric_and_reaches_the_end_at_the_decay_fraction():
    agent = _agent(DQNConfig(epsilon_schedule="exponential", epsilon_start=0.8, epsilon_end=0.05, epsilon_decay_fraction=0.5), total_iterations=100)
    values = np.array([float(agent.epsilon(t)) for t in (0, 25, 50, 75, 100)])
    np.testing.assert_allclose(values, [0.8, 0.8 * (0.05 / 0.8) ** 0.5, 0.05, 0.05, 0.05], rtol=1e-5)
    with pytest.raises(ConfigError, match="needs epsilon_start and epsilon_end > 0"):
        parse_config({"searcher": {"kind": "dqn", "epsilon_schedule": "exponential", "epsilon_end": 0.0}})


@pytest.mark.parametrize("schedule, middle", [("cosine", 0.1 + 0.9 * 0.5), ("linear", 1 - 0.9 * 0.5), ("constant", 1.0)])
def test_the_learning_rate_schedule_reaches_the_end_factor_in_gradient_steps(schedule, middle):
    config = DQNConfig(learning_rate=2e-3, learning_rate_schedule=schedule, learning_rate_end_factor=0.1, updates_per_iteration=4)
    agent = _agent(config, total_iterations=50)  # 200 planned gradient steps
    end = 1.0 if schedule == "constant" else 0.1
    assert float(agent.learning_rate(0)) == pytest.approx(2e-3)
    assert float(agent.learning_rate(100)) == pytest.approx(2e-3 * middle, rel=1e-5)
    assert float(agent.learning_rate(200)) == pytest.approx(2e-3 * end, rel=1e-5)
    assert float(agent.learning_rate(400)) == pytest.approx(2e-3 * end, rel=1e-5)


def test_the_optimiser_follows_the_schedule_down_to_its_end():
    """A linear decay to 0 over 2 iterations x 2 updates: after those 4 gradient steps the parameters freeze."""
    config = DQNConfig(hidden_sizes=(8,), batch_size=8, min_replay=8, replay_capacity=64, updates_per_iteration=2,
                       learning_rate_schedule="linear", learning_rate_end_factor=0.0, learning_rate=1e-2)
    agent = DQN(config, num_actions=3, obs_dim=2, num_samples=1, total_iterations=2, num_envs=8)
    update = jax.jit(agent.update)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (8, 2))
    t = Transition(obs, jnp.arange(8, dtype=jnp.int32) % 3, jnp.arange(8, dtype=jnp.float32), obs, jnp.ones(8, bool), jnp.zeros(8, jnp.int32), jnp.ones(8, bool))
    snapshots = []
    for i in range(4):
        state, _ = update(state, t, jax.random.PRNGKey(10 + i))
        snapshots.append(jax.tree.map(np.asarray, state.params))
    assert int(state.updates) == 8
    changed = [any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y))) for x, y in zip(snapshots, snapshots[1:])]
    assert changed == [True, False, False]  # steps 3-4 still move (lr > 0 until step 4), steps 5-8 have lr 0
