"""The DQN searcher learns what it should: a contextual bandit and a two-step chain."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fadejax.searchers import DQN, DQNConfig, Transition


def _train_bandit(config: DQNConfig, iterations: int = 300):
    """Two contexts (one-hot observations); the failing action is 1 in context 0 and 3 in context 1."""
    payoff = jnp.array([[-1.0, 2.0, -1.0, 0.5], [0.5, -1.0, -1.0, 2.0]])
    agent = DQN(config, num_actions=4, obs_dim=2, num_samples=2, total_iterations=iterations, num_envs=32)
    state = agent.init(jax.random.PRNGKey(0))
    act, update = jax.jit(agent.act), jax.jit(agent.update)
    key = jax.random.PRNGKey(1)
    for _ in range(iterations):
        key, k_ctx, k_act, k_upd = jax.random.split(key, 4)
        ctx = jax.random.randint(k_ctx, (32,), 0, 2)
        obs = jax.nn.one_hot(ctx, 2)
        action = act(state, obs, k_act)
        reward = payoff[ctx, action]
        transition = Transition(obs, action, reward, obs, jnp.ones(32, bool), ctx, reward > 0)
        state, metrics = update(state, transition, k_upd)
    return agent, state, metrics, payoff


@pytest.mark.parametrize(
    "options",
    [dict(), dict(double_q=False), dict(target_update="polyak", polyak_tau=0.05)],
    ids=["double-q periodic", "q-learning", "polyak"],
)
def test_dqn_learns_a_contextual_bandit(options):
    config = DQNConfig(batch_size=64, min_replay=64, replay_capacity=2048, hidden_sizes=(32,), **options)
    agent, state, metrics, payoff = _train_bandit(config)
    q = agent.action_scores(state, jnp.eye(2))
    np.testing.assert_array_equal(agent.greedy(state, jnp.eye(2)), [1, 3])
    np.testing.assert_allclose(q, payoff, atol=0.15)  # one-step terminal episodes: Q -> expected reward
    assert float(metrics["loss"]) < 0.05


def test_epsilon_follows_the_papers_schedule_by_default():
    agent = DQN(DQNConfig(), num_actions=3, obs_dim=1, num_samples=1, total_iterations=100, num_envs=1)
    assert float(agent.epsilon(0)) == pytest.approx(1.0)
    assert float(agent.epsilon(50)) == pytest.approx(0.8)
    assert float(agent.epsilon(100)) == pytest.approx(0.6)


def test_no_learning_until_the_replay_holds_a_batch():
    agent = DQN(DQNConfig(batch_size=64, min_replay=64), num_actions=2, obs_dim=1, num_samples=1, total_iterations=10, num_envs=16)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jnp.zeros((16, 1))
    t = Transition(obs, jnp.zeros(16, jnp.int32), jnp.ones(16), obs, jnp.ones(16, bool), jnp.zeros(16, jnp.int32), jnp.ones(16, bool))
    state, metrics = agent.update(state, t, jax.random.PRNGKey(1))
    assert int(state.updates) == 0 and np.isnan(float(metrics["loss"]))
    for _ in range(3):
        state, metrics = agent.update(state, t, jax.random.PRNGKey(1))
    assert int(state.updates) == 1 and np.isfinite(float(metrics["loss"]))


def test_replay_takes_a_batch_of_envs_per_add_and_wraps_at_capacity():
    agent = DQN(DQNConfig(batch_size=8, min_replay=8, replay_capacity=40), num_actions=2, obs_dim=1, num_samples=1, total_iterations=10, num_envs=16)
    state = agent.init(jax.random.PRNGKey(0))
    for i in range(3):  # 3 x 16 = 48 items into a buffer of 40
        obs = jnp.full((16, 1), float(i))
        t = Transition(obs, jnp.zeros(16, jnp.int32), jnp.full(16, float(i)), obs, jnp.ones(16, bool), jnp.zeros(16, jnp.int32), jnp.zeros(16, bool))
        state, _ = agent.update(state, t, jax.random.PRNGKey(i))
    stored = np.asarray(state.replay.experience["reward"]).ravel()
    assert stored.shape == (40,)
    assert sorted(np.unique(stored).tolist()) == [0.0, 1.0, 2.0]
    assert (stored == 0.0).sum() == 8  # the oldest 8 were overwritten


def test_microscopic_targets_bootstrap_through_gamma():
    """Chain s0 -(a=1, r=0)-> s1 -(a=1, r=10, terminal)->; a=0 always ends with -1. Q(s0, 1) -> gamma * 10."""
    gamma = 0.9
    config = DQNConfig(batch_size=64, min_replay=64, replay_capacity=4096, hidden_sizes=(32,), gamma=gamma, epsilon_start=1.0, epsilon_end=1.0)
    agent = DQN(config, num_actions=2, obs_dim=2, num_samples=1, total_iterations=600, num_envs=4)
    state = agent.init(jax.random.PRNGKey(0))
    update = jax.jit(agent.update)
    s0, s1 = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
    obs = jnp.stack([s0, s0, s1, s1])
    action = jnp.array([1, 0, 1, 0])
    reward = jnp.array([0.0, -1.0, 10.0, -1.0])
    next_obs = jnp.stack([s1, s0, s1, s1])
    terminal = jnp.array([False, True, True, True])
    t = Transition(obs, action, reward, next_obs, terminal, jnp.zeros(4, jnp.int32), jnp.zeros(4, bool))
    for i in range(600):
        state, _ = update(state, t, jax.random.PRNGKey(i))
    q = agent.action_scores(state, jnp.stack([s0, s1]))
    np.testing.assert_allclose(q, [[-1.0, gamma * 10.0], [-1.0, 10.0]], atol=0.3)


def _factored(sizes, **options):
    config = DQNConfig(head="factored", hidden_sizes=(16,), batch_size=32, min_replay=32, replay_capacity=1024, **options)
    return DQN(config, num_actions=int(np.prod(sizes)), obs_dim=3, num_samples=1, total_iterations=10, num_envs=8, sizes=sizes)


@pytest.mark.parametrize("sizes", [(5,), (3, 4), (2, 3, 4), (4, 1, 3, 2)])
def test_factored_greedy_is_the_argmax_over_the_product_space(sizes):
    agent = _factored(sizes)
    obs = jax.random.normal(jax.random.PRNGKey(3), (64, 3))
    for seed in range(3):
        state = agent.init(jax.random.PRNGKey(seed))
        q = agent.action_scores(state, obs)  # the product, built only for this comparison
        assert q.shape == (64, int(np.prod(sizes)))
        np.testing.assert_array_equal(agent.greedy(state, obs), jnp.argmax(q, axis=-1))
        # the per-axis marginals of softmax(Q) equal the factored softmaxes
        probs = jax.nn.softmax(q, axis=-1).reshape((64,) + sizes)
        for i, marginal in enumerate(agent.policy_marginals(state, obs)):
            others = tuple(a + 1 for a in range(len(sizes)) if a != i)
            np.testing.assert_allclose(marginal, probs.sum(axis=others), atol=1e-5)


def test_factored_exploration_is_uniform_over_the_product():
    agent = _factored((2, 3, 4))
    state = agent.init(jax.random.PRNGKey(0))  # iteration 0: epsilon = 1
    actions = np.asarray(agent.act(state, jnp.zeros((24_000, 3)), jax.random.PRNGKey(1)))
    counts = np.bincount(actions, minlength=24)
    assert actions.min() >= 0 and actions.max() < 24
    assert counts.min() > 800 and counts.max() < 1200  # 1000 expected per action


def test_factored_head_learns_a_separable_bandit():
    """Reward = r0[a0] + r1[a1]: the factored head represents it exactly and finds the best cell."""
    r0, r1 = jnp.array([0.0, 1.0, -0.5]), jnp.array([0.2, -1.0, 0.0, 0.8])
    agent = DQN(DQNConfig(head="factored", hidden_sizes=(32,), batch_size=64, min_replay=64, replay_capacity=4096),
                num_actions=12, obs_dim=1, num_samples=1, total_iterations=300, num_envs=32, sizes=(3, 4))
    state = agent.init(jax.random.PRNGKey(0))
    update = jax.jit(agent.update)
    obs = jnp.ones((32, 1))
    for i in range(300):
        action = jax.random.randint(jax.random.PRNGKey(i), (32,), 0, 12)
        reward = r0[action // 4] + r1[action % 4]
        t = Transition(obs, action, reward, obs, jnp.ones(32, bool), jnp.zeros(32, jnp.int32), reward > 0)
        state, metrics = update(state, t, jax.random.PRNGKey(1000 + i))
    assert int(agent.greedy(state, obs[:1])[0]) == 1 * 4 + 3
    np.testing.assert_allclose(agent.action_scores(state, obs[:1])[0], (r0[:, None] + r1[None, :]).ravel(), atol=0.15)
