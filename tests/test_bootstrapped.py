"""The bootstrapped DQN: per-head bootstrap masks, per-environment heads, a learned bandit,
bootstrapping through gamma, and exact resume through the real loop."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fadejax.engine.config import ConfigError, parse_config
from fadejax.searchers import REGISTRY, Transition
from fadejax.searchers.bootstrapped import BootstrappedConfig, BootstrappedDQN

def _make(config, *, num_actions=25, obs_dim=4, num_envs=8, total_iterations=100):
    return BootstrappedDQN(config, num_actions=num_actions, obs_dim=obs_dim, num_samples=10, total_iterations=total_iterations, num_envs=num_envs)


def _transition(obs, action, reward, next_obs=None, terminal=None):
    n = obs.shape[0]
    next_obs = obs if next_obs is None else next_obs
    terminal = jnp.ones(n, bool) if terminal is None else terminal
    return Transition(obs, jnp.asarray(action, jnp.int32), jnp.asarray(reward, jnp.float32), next_obs, terminal, jnp.zeros(n, jnp.int32), jnp.asarray(reward) > 0)


def _leaves_of_head(tree, k):
    return [np.asarray(leaf[k]) for leaf in jax.tree.leaves(tree)]


def test_registered_with_its_defaults_and_the_factored_head_refused():
    assert REGISTRY["bootstrapped"] == (BootstrappedConfig, BootstrappedDQN)
    c = parse_config({"searcher": {"kind": "bootstrapped"}}).searcher_config()
    assert (c.num_heads, c.mask_probability, c.prior_scale, c.updates_per_iteration, c.epsilon) == (10, 0.5, 0.0, 4, 0.0)
    with pytest.raises(ConfigError, match="only the flat head"):
        parse_config({"searcher": {"kind": "bootstrapped", "head": "factored"}})
    parse_config({"mode": "micro", "searcher": {"kind": "bootstrapped"}})  # a Q-learner: microscopic episodes are fine


def test_bootstrap_masks_are_per_head_and_per_transition_and_a_masked_out_head_learns_nothing_from_it():
    agent = _make(BootstrappedConfig(num_heads=4, hidden_sizes=(8,), prior_scale=1.0, batch_size=1, min_replay=1, updates_per_iteration=1),
                  num_actions=3, obs_dim=2, num_envs=64)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    update = jax.jit(agent.update)

    # One transition, its mask (1, 0, 1, 0): heads 1 and 3 get exactly zero gradient, prior included.
    batch = dict(obs=jnp.array([[0.3, -1.0]]), action=jnp.array([2]), reward=jnp.array([1.5]), next_obs=jnp.array([[0.3, -1.0]]),
                 terminal=jnp.array([False]), mask=jnp.array([[1.0, 0.0, 1.0, 0.0]]))
    grads = jax.jit(jax.grad(agent._loss))(state.params, state.target_params, state.prior_params, batch)
    for k in range(4):
        nonzero = any(np.any(leaf != 0) for leaf in _leaves_of_head(grads, k))
        assert nonzero == (k in (0, 2)), k

    # Through update: 64 transitions in, masks drawn per transition and per head and stored;
    # heads redrawn only for the environments whose episode ended.
    obs = jnp.broadcast_to(batch["obs"], (64, 2))
    terminal = jnp.arange(64) % 2 == 0
    for seed in range(10):  # a key whose sampled transition selects some heads but not all (checked below)
        new, _ = update(state, _transition(obs, jnp.full(64, 2), jnp.full(64, 1.5), terminal=terminal), jax.random.PRNGKey(100 + seed))
        moved = tuple(any(not np.array_equal(a, b) for a, b in zip(_leaves_of_head(new.params, k), _leaves_of_head(state.params, k))) for k in range(4))
        if 0 < sum(moved) < 4:
            break
    mask = np.asarray(new.replay.experience["mask"])[0, :64]
    assert mask.shape == (64, 4) and set(np.unique(mask)) == {0.0, 1.0}
    assert abs(mask.mean() - 0.5) < 0.1
    assert len({tuple(row) for row in mask}) > 8  # transitions get different masks
    assert len({tuple(col) for col in mask.T}) == 4  # heads get different masks
    assert np.asarray(new.replay.experience["mask"])[0, 64:].sum() == 0
    before, after = np.asarray(state.heads), np.asarray(new.heads)
    np.testing.assert_array_equal(after[1::2], before[1::2])
    assert (after[::2] != before[::2]).sum() > 8

    # One gradient step on one sampled transition (all 64 are alike but for their masks):
    # the heads that moved are exactly the ones a stored mask selects, the others kept their parameters.
    assert int(new.updates) == 1 and 0 < sum(moved) < 4
    assert moved in {tuple(bool(m) for m in row) for row in mask}


@pytest.fixture(scope="module")
def bandit_agent():
    """25 actions, 8 environments, a constant observation."""
    return _make(BootstrappedConfig(hidden_sizes=(32,), batch_size=32, min_replay=32, replay_capacity=4096), num_envs=8)


def test_heads_disagree_at_init_and_each_environment_acts_with_its_own_head(bandit_agent):
    agent = bandit_agent
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (8, 4))
    q = np.asarray(jax.jit(agent.head_values)(state, obs))  # (K, B, A)
    assert q.shape == (10, 8, 25)
    assert len({int(a) for a in np.argmax(q[:, 0], axis=-1)}) > 3  # the heads' greedy actions differ
    heads = np.asarray(state.heads)
    assert heads.shape == (8,) and len(set(heads.tolist())) > 2
    actions = np.asarray(jax.jit(agent.act)(state, obs, jax.random.PRNGKey(2)))
    np.testing.assert_array_equal(actions, np.argmax(q[heads, np.arange(8)], axis=-1))
    mean, std = jax.jit(lambda s, o: (agent.action_scores(s, o), agent.action_uncertainty(s, o)))(state, obs)
    np.testing.assert_allclose(mean, q.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, q.std(axis=0), rtol=1e-4, atol=1e-6)
    assert float(jnp.min(std)) > 0
    assert agent.act(state, obs[:5], jax.random.PRNGKey(3)).shape == (5,)  # another batch size draws its own heads


def test_learns_a_bernoulli_bandit(bandit_agent):
    """Cell 17 fails with p = 0.9, the 24 others with p = 0.1; reward +1 on a failure, -1 otherwise."""
    agent, best = bandit_agent, 17
    p = jnp.full(25, 0.1).at[best].set(0.9)
    obs = jnp.ones((8, 4))

    @jax.jit
    def pull(state, key):
        k_act, k_env, k_update = jax.random.split(key, 3)
        action = agent.act(state, obs, k_act)
        failed = jax.random.uniform(k_env, action.shape) < p[action]
        state, _ = agent.update(state, _transition(obs, action, jnp.where(failed, 1.0, -1.0)), k_update)
        return state, action

    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    pulls = []
    for key in jax.random.split(jax.random.PRNGKey(1), 100):  # 800 pulls
        state, action = pull(state, key)
        pulls.append(np.asarray(action))
    pulls = np.concatenate(pulls)
    assert len(set(pulls[:160].tolist())) > 12  # it explored first
    assert np.mean(pulls[-200:] == best) >= 0.7, np.bincount(pulls[-200:], minlength=25)
    assert int(jnp.argmax(agent.action_scores(state, obs[:1])[0])) == best


def test_microscopic_targets_bootstrap_through_gamma():
    """Chain s0 -(a=1, r=0)-> s1 -(a=1, r=10, terminal)->; a=0 always ends with -1. Mean Q(s0, 1) -> gamma * 10."""
    gamma = 0.9
    agent = _make(BootstrappedConfig(num_heads=4, hidden_sizes=(32,), batch_size=64, min_replay=64, gamma=gamma, prior_scale=0.5),
                  num_actions=2, obs_dim=2, num_envs=4, total_iterations=200)
    update = jax.jit(agent.update)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    s0, s1 = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
    t = _transition(jnp.stack([s0, s0, s1, s1]), jnp.array([1, 0, 1, 0]), jnp.array([0.0, -1.0, 10.0, -1.0]),
                    next_obs=jnp.stack([s1, s0, s1, s1]), terminal=jnp.array([False, True, True, True]))
    for i in range(200):
        state, _ = update(state, t, jax.random.PRNGKey(i))
    q = agent.action_scores(state, jnp.stack([s0, s1]))
    np.testing.assert_allclose(q, [[-1.0, gamma * 10.0], [-1.0, 10.0]], atol=0.3)
