"""Thompson sampling, Bayes-UCB, the cross-entropy method and REINFORCE: each follows its
definition, learns a known Bernoulli bandit, and resumes a run exactly."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from fadejax.searchers import REGISTRY, Transition
from fadejax.searchers.baselines.cem import CEMConfig, CrossEntropy
from fadejax.searchers.policy_gradient import Reinforce, ReinforceConfig
from fadejax.searchers.thompson import BayesUCB, ThompsonConfig, ThompsonSampling, UCBConfig

NEW = ["thompson", "ucb", "cem", "reinforce"]


def _make(cls, config, *, num_actions=25, sizes=(5, 5), num_envs=8, obs_dim=4):
    return cls(config, num_actions=num_actions, obs_dim=obs_dim, num_samples=10, total_iterations=50, num_envs=num_envs, sizes=sizes)


def _transition(actions, failed, reward=None, obs_dim=4):
    actions = jnp.asarray(actions, jnp.int32)
    failed = jnp.asarray(failed, bool)
    reward = jnp.where(failed, 1.0, -1.0) if reward is None else jnp.asarray(reward, jnp.float32)
    obs = jnp.ones((actions.shape[0], obs_dim))
    return Transition(obs, actions, reward, obs, jnp.ones(actions.shape[0], bool), jnp.zeros(actions.shape[0], jnp.int32), failed)


# -- Thompson sampling ----------------------------------------------------------------


def test_thompson_posteriors_count_exactly_the_recorded_failures_and_successes():
    searcher = _make(ThompsonSampling, ThompsonConfig(prior_alpha=2.0, prior_beta=0.5), num_actions=4, sizes=(4,))
    state = searcher.init(jax.random.PRNGKey(0))
    # cell 0: fail, success; cell 1: fail; cell 2: fail, fail, success (repeats in one batch all count); cell 3: none
    state, _ = searcher.update(state, _transition([0, 0, 1, 2, 2, 2], [True, False, True, True, True, False]), jax.random.PRNGKey(1))
    state, _ = searcher.update(state, _transition([3], [False]), jax.random.PRNGKey(2))
    np.testing.assert_array_equal(state.alpha, [2 + 1, 2 + 1, 2 + 2, 2])
    np.testing.assert_array_equal(state.beta, [0.5 + 1, 0.5, 0.5 + 1, 0.5 + 1])
    assert int(state.queries) == 7
    mean = np.asarray(state.alpha / (state.alpha + state.beta))
    np.testing.assert_allclose(searcher.action_scores(state, jnp.zeros((3, 4))), np.broadcast_to(mean, (3, 4)), rtol=1e-6)


def test_thompson_draws_one_posterior_sample_per_environment():
    searcher = _make(ThompsonSampling, ThompsonConfig(), num_envs=4000)
    state = searcher.init(jax.random.PRNGKey(0))

    @jax.jit  # one program: the act and the reference draws compile once
    def act_and_draws(state, key):
        return searcher.act(state, jnp.zeros((4000, 4)), key), jax.random.beta(key, state.alpha, state.beta, shape=(4000, 25))

    actions, theta = act_and_draws(state, jax.random.PRNGKey(7))
    actions = np.asarray(actions)
    np.testing.assert_array_equal(actions, np.argmax(theta, axis=-1))  # row i = environment i's own draw
    # Under the flat prior each environment's argmax is uniform over the 25 cells.
    counts = np.bincount(actions, minlength=25)
    assert stats.chisquare(counts).pvalue > 1e-3


# -- Bayes-UCB ------------------------------------------------------------------------


def _ucb_state(searcher):
    state = searcher.init(jax.random.PRNGKey(0))
    # cell 0: 5/10 failures, cell 1: 0/10, cell 2: never queried, cell 3: 1/2
    actions = [0] * 10 + [1] * 10 + [3] * 2
    failed = [True] * 5 + [False] * 5 + [False] * 10 + [True, False]
    state, _ = searcher.update(state, _transition(actions, failed), jax.random.PRNGKey(1))
    return state


def test_ucb_bounds_are_the_posterior_quantiles_and_it_picks_the_unvisited_cell():
    searcher = _make(BayesUCB, UCBConfig(pending=False), num_actions=4, sizes=(4,))
    state = _ucb_state(searcher)
    level = 1 - 1 / (22 + 1)
    expected = stats.beta.ppf(level, np.asarray(state.alpha), np.asarray(state.beta))
    np.testing.assert_allclose(searcher.bounds(state), expected, atol=1e-5)
    assert int(np.argmax(expected)) == 2  # the unvisited cell has the widest posterior
    actions = jax.jit(searcher.act)(state, jnp.zeros((16, 4)), jax.random.PRNGKey(3))
    np.testing.assert_array_equal(actions, np.full(16, 2))
    # Once every cell is well known, the highest bound is the highest mean.
    state = state.replace(alpha=jnp.array([300.0, 10, 10, 10]), beta=jnp.array([100.0, 300, 300, 300]), queries=jnp.int32(1000))
    np.testing.assert_array_equal(jax.jit(searcher.act)(state, jnp.zeros((4, 4)), jax.random.PRNGKey(4)), np.zeros(4))


def test_ucb_breaks_ties_at_random_and_pending_pulls_spread_a_batch():
    fresh = _make(BayesUCB, UCBConfig(pending=False))
    state = fresh.init(jax.random.PRNGKey(0))
    actions = np.asarray(fresh.act(state, jnp.zeros((2000, 4)), jax.random.PRNGKey(1)))
    assert stats.chisquare(np.bincount(actions, minlength=25)).pvalue > 1e-3  # all tie: uniform, not cell 0
    searcher = _make(BayesUCB, UCBConfig(pending=True), num_actions=4, sizes=(4,))
    state = _ucb_state(searcher)
    actions = np.asarray(jax.jit(searcher.act)(state, jnp.zeros((16, 4)), jax.random.PRNGKey(3)))
    assert actions[0] == 2  # the first environment takes the highest bound
    assert len(set(actions.tolist())) > 1  # pending pulls narrow cell 2's posterior: the batch spreads


# -- cross-entropy method ---------------------------------------------------------------


def test_cem_refits_each_axis_to_exactly_its_elite_fraction():
    searcher = _make(CrossEntropy, CEMConfig(), num_actions=6, sizes=(2, 3))
    state = searcher.init(jax.random.PRNGKey(0))
    np.testing.assert_allclose(state.probs, [[1 / 2, 1 / 2, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    # 10 queries, elite fraction 0.2 -> the top 2 rewards: action 5 = cell (1, 2) and action 3 = cell (1, 0).
    actions = [0, 5, 1, 2, 3, 4, 0, 1, 2, 4]
    reward = [-1, 3.0, -1, 0.5, 2.0, -1, -1, 0.2, -1, -1]
    state, _ = searcher.update(state, _transition(actions, np.asarray(reward) > 0, reward), jax.random.PRNGKey(1))
    axis0 = 0.3 * np.array([1 / 2, 1 / 2]) + 0.7 * np.array([0, 1])
    axis1 = 0.3 * np.array([1 / 3, 1 / 3, 1 / 3]) + 0.7 * np.array([1 / 2, 0, 1 / 2])
    axis0 = (1 - 2 * 0.01 / 2) * axis0 + 0.01 / 2
    axis1 = (1 - 3 * 0.01 / 3) * axis1 + 0.01 / 3
    np.testing.assert_allclose(state.probs, [np.append(axis0, 0), axis1], rtol=1e-6)
    np.testing.assert_allclose(state.probs.sum(axis=1), 1, rtol=1e-6)
    # action scores are the observed per-cell failure rates
    np.testing.assert_allclose(searcher.action_scores(state, jnp.zeros((1, 4)))[0], [0, 1 / 2, 1 / 2, 1, 0, 1])


def test_cem_breaks_elite_ties_with_the_key_and_samples_its_distribution():
    searcher = _make(CrossEntropy, CEMConfig(elite_fraction=0.2), num_actions=6, sizes=(2, 3))
    reward = jnp.array([5.0, 1, 1, 1, 0, 0, 0, 0, 0, 0])  # 2 elites: position 0, then one of the tied 1, 2, 3
    picked = set()
    for i in range(30):
        elites = np.asarray(searcher.elites(reward, jax.random.PRNGKey(i)))
        assert elites.shape == (2,) and elites[0] == 0 and elites[1] in (1, 2, 3)
        picked.add(int(elites[1]))
    assert picked == {1, 2, 3}
    state = searcher.init(jax.random.PRNGKey(0)).replace(probs=jnp.array([[0.2, 0.8, 0.0], [0.1, 0.3, 0.6]]))
    actions = jnp.asarray(searcher.act(state, jnp.zeros((20_000, 4)), jax.random.PRNGKey(1)))
    cells = np.asarray(searcher.cells_of(actions))
    np.testing.assert_allclose(np.bincount(cells[:, 0], minlength=2) / 20_000, [0.2, 0.8], atol=0.015)
    np.testing.assert_allclose(np.bincount(cells[:, 1], minlength=3) / 20_000, [0.1, 0.3, 0.6], atol=0.015)
    np.testing.assert_array_equal(np.asarray(actions), cells[:, 0] * 3 + cells[:, 1])  # row-major, last axis fastest


def test_cem_refuses_a_floor_that_leaves_no_mass():
    _make(CrossEntropy, CEMConfig(min_prob=0.25), num_actions=6, sizes=(2, 3))  # 3 x 0.25 < 1: fine
    with pytest.raises(ValueError, match="min_prob"):
        _make(CrossEntropy, CEMConfig(min_prob=0.5), num_actions=6, sizes=(2, 3))  # 2 x 0.5 = 1: axis 0 fixed


# -- REINFORCE --------------------------------------------------------------------------


@pytest.mark.parametrize("updates", [1, 4])
def test_reinforce_moves_probability_towards_rewarded_actions(updates):
    searcher = _make(Reinforce, ReinforceConfig(updates_per_iteration=updates))
    policy = lambda state: jax.nn.softmax(searcher.action_scores(state, jnp.ones((1, 4)))[0])  # noqa: E731

    @jax.jit  # one program, compiled once
    def one_update(key):
        k_init, k_update, k_act = jax.random.split(key, 3)
        state = searcher.init(k_init)
        before = policy(state)
        state, metrics = searcher.update(state, _transition([3, 3, 7, 7], [True, True, False, False]), k_update)
        actions = searcher.act(state, jnp.ones((20_000, 4)), k_act)
        return before, policy(state), state.updates, metrics["loss"], actions

    before, after, steps, loss, actions = jax.device_get(one_update(jax.random.PRNGKey(0)))
    np.testing.assert_allclose(before, 1 / 25, atol=0.01)  # starts near uniform
    assert after[3] > before[3] and after[7] < before[7]
    assert int(steps) == updates and np.isfinite(loss)
    # the scores are the policy's logits: acting samples their softmax
    np.testing.assert_allclose(np.bincount(actions, minlength=25) / 20_000, after, atol=0.01)


# -- every new searcher learns a Bernoulli bandit ------------------------------------------

BEST = 17  # cell (3, 2) of a 5 x 5 grid fails with p = 0.9, every other with p = 0.1


@pytest.mark.parametrize("kind", NEW)
def test_learns_a_bernoulli_bandit(kind):
    config_cls, cls = REGISTRY[kind]
    searcher = _make(cls, config_cls())
    p = jnp.full(25, 0.1).at[BEST].set(0.9)
    obs = jnp.ones((8, 4))  # a constant observation

    @jax.jit
    def pull(state, key):
        k_act, k_env, k_update = jax.random.split(key, 3)
        action = searcher.act(state, obs, k_act)
        failed = jax.random.uniform(k_env, action.shape) < p[action]
        state, _ = searcher.update(state, _transition(action, failed), k_update)
        return state, action

    state = searcher.init(jax.random.PRNGKey(0))
    pulls = []
    for key in jax.random.split(jax.random.PRNGKey(1), 50):  # 400 pulls
        state, action = pull(state, key)
        pulls.append(np.asarray(action))
    last = np.concatenate(pulls)[-100:]
    assert np.mean(last == BEST) >= 0.7, np.bincount(last, minlength=25)
    scores = np.asarray(searcher.action_scores(state, obs))
    assert scores.shape == (8, 25) and int(np.argmax(scores[0])) == BEST
