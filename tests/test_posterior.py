"""The posterior-sampling searcher, the report's shrinkage estimate, and recorded audits."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from fadejax.engine.config import parse_config
from fadejax.analysis.estimates import cell_estimates
from fadejax.engine.ground_truth import failure_landscape, landscape_key
from fadejax.engine.recording import RecordedTask, RecordingError, load_recording, record
from fadejax.engine.checkpoints import build_discovery
from fadejax.searchers import Transition
from fadejax.searchers.posterior import PosteriorConfig, PosteriorSampling


def _searcher(sizes=(5, 5), num_samples=40, num_envs=64, iterations=40, **config):
    return PosteriorSampling(PosteriorConfig(**config), num_actions=int(np.prod(sizes)), obs_dim=1, num_samples=num_samples,
                             total_iterations=iterations, num_envs=num_envs, sizes=sizes)


def _transition(samples, actions, failed):
    n = len(samples)
    obs = jnp.zeros((n, 1))
    failed = jnp.asarray(failed, bool)
    return Transition(obs, jnp.asarray(actions, jnp.int32), failed.astype(jnp.float32), obs, jnp.ones(n, bool),
                      jnp.asarray(samples, jnp.int32), failed)


def _synthetic(seed=0, num_samples=40, sizes=(5, 5)):
    """A known additive world: sample difficulty + axis effects + one interacting cell."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 1.0, num_samples)
    w = [rng.normal(0, 1.0, n) for n in sizes]
    logit = -1.0 + u[:, None] + (w[0][:, None] + w[1][None, :]).reshape(1, -1)
    logit[:, 7] += 2.5  # an interaction the axes alone do not explain
    return 1 / (1 + np.exp(-logit))  # (N, A)


@pytest.mark.parametrize("interaction_std", [0.0, 1.0])
def test_the_fit_is_the_map_of_the_stated_model(interaction_std):
    """Many Newton sweeps reach the same optimum as scipy's L-BFGS on the penalised likelihood,
    with and without the sample x axis-value interactions ``z``."""
    p = _synthetic()
    rng = np.random.default_rng(1)
    samples, actions = rng.integers(0, 40, 3000), rng.integers(0, 25, 3000)
    failed = rng.random(3000) < p[samples, actions]
    s = _searcher(sweeps=300, capacity=3000, interaction_prior_std=interaction_std)
    assert s.interactions == (interaction_std > 0)
    state = s.init(jax.random.PRNGKey(0))
    state, _ = jax.jit(s.update)(state, _transition(samples, actions, failed), jax.random.PRNGKey(1))
    assert int(state.seen) == 3000

    c = PosteriorConfig(interaction_prior_std=interaction_std)
    a0, a1 = actions // 5, actions % 5 + 5
    size = 76 + (400 if s.interactions else 0)

    def unpack(theta):
        z = theta[76:].reshape(40, 10) if s.interactions else np.zeros((40, 10))
        return theta[0], theta[1:41], theta[41:51], theta[51:76], z

    def objective(theta):
        b, u, w, v, z = unpack(theta)
        eta = b + u[samples] + w[a0] + w[a1] + v[actions] + z[samples, a0] + z[samples, a1]
        nll = np.sum(np.logaddexp(0, eta) - failed * eta)
        prior = (b / c.bias_prior_std) ** 2 + np.sum(u**2) / c.sample_prior_std**2 + np.sum(w**2) / c.axis_prior_std**2 + np.sum(v**2) / c.cell_prior_std**2
        if s.interactions:
            prior += np.sum(z**2) / c.interaction_prior_std**2
        return nll + prior / 2

    best = minimize(objective, np.zeros(size), method="L-BFGS-B", options={"maxiter": 20000, "gtol": 1e-8})
    ours = np.concatenate([[float(state.bias)], np.asarray(state.u), np.asarray(state.w), np.asarray(state.v)]
                          + ([np.asarray(state.z).reshape(-1)] if s.interactions else []))
    assert objective(ours) <= best.fun + 1e-2
    # The predictions agree; single parameters less tightly (the bias and the axis effects
    # trade along a nearly flat ridge that only the priors pin down).
    def probabilities(theta):
        b, u, w, v, z = unpack(theta)
        a = np.arange(25)
        return 1 / (1 + np.exp(-(b + u[:, None] + (w[a // 5] + w[a % 5 + 5] + v)[None, :] + z[:, a // 5] + z[:, a % 5 + 5])))

    # (with z, 400 more parameters share the ridges: two of 1,000 probabilities differ by 0.013)
    np.testing.assert_allclose(probabilities(ours), probabilities(best.x), atol=2e-2 if s.interactions else 1e-2)
    if not s.interactions:  # with z, u_i and z_i trade along ridges only the priors pin down: the predictions are the check
        np.testing.assert_allclose(ours, best.x, atol=0.1)


def test_the_history_keeps_exactly_the_recorded_queries():
    s = _searcher(capacity=8)
    state = s.init(jax.random.PRNGKey(0))
    state, _ = s.update(state, _transition([1, 2, 3], [4, 5, 6], [True, False, True]), jax.random.PRNGKey(1))
    assert int(state.seen) == 3
    np.testing.assert_array_equal(state.hist_sample[:3], [1, 2, 3])
    np.testing.assert_array_equal(state.hist_action[:3], [4, 5, 6])
    np.testing.assert_array_equal(state.hist_failed[:3], [1, 0, 1])
    state, _ = s.update(state, _transition(list(range(10, 17)), [0] * 7, [False] * 7), jax.random.PRNGKey(2))
    assert int(state.seen) == 10  # a ring of 8: the oldest two are overwritten
    np.testing.assert_array_equal(state.hist_sample, [15, 16, 3, 10, 11, 12, 13, 14])


def test_the_fit_on_pair_counts_equals_the_fit_on_the_history():
    """Where the (cell, sample) grid is small the fit reads per-pair counts: the same MAP and
    precisions as the sweeps over every kept query, to float32 rounding (the additive model:
    the sample x axis-value interactions are fitted on the counts only)."""
    p = _synthetic()
    rng = np.random.default_rng(2)
    samples, actions = rng.integers(0, 40, 2000), rng.integers(0, 25, 2000)
    failed = rng.random(2000) < p[samples, actions]
    s = _searcher(capacity=2000, interaction_prior_std=0.0)
    assert s.fit_on_pairs
    state = jax.jit(s.keep)(s.init(jax.random.PRNGKey(0)), jnp.asarray(samples, jnp.int32), jnp.asarray(actions, jnp.int32), jnp.asarray(failed))
    on_pairs, on_history = jax.jit(s._fit_pairs)(state), jax.jit(s._fit_history)(state)
    for field in ("bias", "u", "w", "v", "prec_u", "prec_w", "prec_v"):
        np.testing.assert_allclose(getattr(on_pairs, field), getattr(on_history, field), rtol=1e-4, atol=1e-5, err_msg=field)
    assert not _searcher(capacity=100).fit_on_pairs  # 1,000 pairs against 100 kept queries: the history is cheaper


def test_the_pair_counts_forget_exactly_what_the_ring_overwrites():
    s = _searcher(num_samples=8, capacity=64, num_envs=16)
    assert s.fit_on_pairs
    keep = jax.jit(s.keep)
    state = s.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(3)
    for _ in range(9):  # 144 queries through a ring of 64
        batch = rng.integers(0, 8, 16), rng.integers(0, 25, 16), rng.random(16) < 0.4
        state = keep(state, *(jnp.asarray(x) for x in batch))
    queries, failures = np.zeros((25, 8)), np.zeros((25, 8))
    np.add.at(queries, (np.asarray(state.hist_action), np.asarray(state.hist_sample)), 1.0)
    np.add.at(failures, (np.asarray(state.hist_action), np.asarray(state.hist_sample)), np.asarray(state.hist_failed))
    np.testing.assert_array_equal(state.pair_queries, queries)
    np.testing.assert_array_equal(state.pair_failures, failures)


def test_identify_samples_are_uniform_among_the_fresh_ones():
    from fadejax.searchers.posterior import _uniform_true

    mask = np.zeros((3, 10), bool)
    mask[0, [1, 4, 7]] = True
    mask[1, :] = True
    picks = np.stack([np.asarray(_uniform_true(k, jnp.asarray(mask))) for k in jax.random.split(jax.random.PRNGKey(0), 3000)])
    assert set(np.unique(picks[:, 0])) == {1, 4, 7}
    np.testing.assert_allclose(np.bincount(picks[:, 0], minlength=10)[[1, 4, 7]] / 3000, 1 / 3, atol=0.04)
    np.testing.assert_allclose(np.bincount(picks[:, 1], minlength=10) / 3000, 0.1, atol=0.025)
    assert np.all(picks[:, 2] == -1)  # no fresh sample: the caller falls back


def test_the_nth_true_entry_of_each_row_is_found():
    from fadejax.searchers.posterior import _nth_true

    rng = np.random.default_rng(0)
    mask = rng.random((200, 37)) < rng.random((200, 1))  # rows from nearly empty to nearly full
    rank = rng.integers(0, 38, 200)
    expected = [np.flatnonzero(row)[r] if r < row.sum() else -1 for row, r in zip(mask, rank)]
    np.testing.assert_array_equal(_nth_true(jnp.asarray(mask), jnp.asarray(rank, jnp.int32)), expected)


def test_environments_sharing_an_identify_cell_get_distinct_fresh_samples_uniformly_drawn():
    s = _searcher(num_samples=12, num_envs=16)
    asked = np.zeros((12, 25), bool)
    asked[[0, 1, 2, 3], 4] = True  # cell 4: 8 fresh samples
    asked[:10, 9] = True  # cell 9: 2 fresh samples (10 and 11) for its 3 environments
    state = s.init(jax.random.PRNGKey(0)).replace(asked=jnp.asarray(asked))
    cells = jnp.asarray([4, 4, 4, 9, 9, 9, 17], jnp.int32)  # equal cells next to each other, as _identify_cells gives them
    fresh = jax.jit(s._fresh_samples)
    picks = np.stack([np.asarray(fresh(state.asked, k, cells)) for k in jax.random.split(jax.random.PRNGKey(1), 2000)])
    for row in picks:
        assert len(set(row[:3])) == 3 and not asked[row[:3], 4].any()
        assert sorted(row[3:5]) == [10, 11] and row[5] == -1  # the third environment of cell 9 finds none left
    for env, cell, options in ((0, 4, range(4, 12)), (2, 4, range(4, 12)), (6, 17, range(12))):
        counts = np.bincount(picks[:, env], minlength=12)[list(options)]
        np.testing.assert_allclose(counts / 2000, 1 / len(options), atol=0.035)  # each environment's pick: uniform over the fresh
    np.testing.assert_allclose(np.mean(picks[:, 3] == 10), 0.5, atol=0.05)


def test_settling_environments_take_the_fresh_samples_the_model_is_least_sure_of():
    s = _searcher(num_samples=12, num_envs=16, interaction_prior_std=0.0)
    # sample i's failure log-odds under every cell: u_i, so p(1 - p) falls as |u_i| grows
    # (the interactions' part is checked in the joint choice's test below)
    u = jnp.asarray([4.0, -0.1, 3.0, 0.2, -4.0, 0.5, -2.0, 1.0, 6.0, -0.8, 2.5, -6.0])
    asked = np.zeros((12, 25), bool)
    asked[1, 4] = True  # cell 4's surest-unsure sample is taken already
    asked[:, 9] = True
    asked[11, 9] = False  # cell 9: one fresh sample left for its two environments
    state = s.init(jax.random.PRNGKey(0)).replace(u=u, asked=jnp.asarray(asked))
    cells = jnp.asarray([4, 4, 4, 9, 9, 17], jnp.int32)
    picks = np.asarray(jax.jit(s._uncertain_samples)(state, state.asked, jax.random.PRNGKey(3), cells))
    np.testing.assert_array_equal(picks, [3, 5, 9, 11, -1, 1])  # by |u| among the fresh: 0.2, 0.5, 0.8 under cell 4
    # a crowded cell: its first 16 environments take the 16 least sure samples, the rest distinct other fresh ones
    s = _searcher(num_samples=40, num_envs=64, interaction_prior_std=0.0)
    u = jnp.asarray(np.random.default_rng(0).permutation(40) - 19.3) / 4.0  # no two equally sure
    state = s.init(jax.random.PRNGKey(0)).replace(u=u)
    picks = np.asarray(jax.jit(s._uncertain_samples)(state, state.asked, jax.random.PRNGKey(3), jnp.full(20, 6, jnp.int32)))
    np.testing.assert_array_equal(picks[:16], np.argsort(np.abs(np.asarray(u)), kind="stable")[:16])
    assert len(set(picks)) == 20 and (picks >= 0).all()


def _logits(s, state):
    """The fitted model's failure log-odds of every (sample, cell), ``(N, A)``."""
    eta = state.bias + state.u[:, None] + s._cell_scores(state.w, state.v)[None, :]
    return np.asarray(eta + s._sample_cell_terms(state.z) if s.interactions else eta)


def test_the_joint_choice_marks_only_the_completing_identify_environments_as_drawn():
    """With ``settle_samples: uncertain`` the settling half takes, per cell, the fresh samples
    the fitted model is least sure of, after the completing half's uniform draws (a top 3 small
    enough that the halves share cells); only the completing half is marked drawn, and every
    pair of the batch is fresh and distinct."""
    p = _synthetic(seed=2, num_samples=120)
    for settle in ("uncertain", "uniform"):
        s = _searcher(num_samples=120, num_envs=32, iterations=20, identify_fraction=0.5, fresh_pairs=True, settle_samples=settle, top_k=3)
        assert s.interactions
        state = s.init(jax.random.PRNGKey(0))
        choose, update = jax.jit(s.choose, static_argnums=(3, 4)), jax.jit(s.update)
        rng = np.random.default_rng(0)
        asked = np.zeros((120, 25), bool)
        shared = 0
        for i in range(8):  # (the top cells keep fresh samples throughout: every identify environment placed)
            chosen = choose(state, jax.random.PRNGKey(2 * i), jax.random.PRNGKey(2 * i + 1), 32, lambda idx: jnp.zeros((idx.shape[0], 1)))
            sample, cell, drawn = (np.asarray(x) for x in (chosen.sample, chosen.action, chosen.drawn))
            assert not asked[sample, cell].any() and len(set(zip(sample, cell))) == 32
            # environments 0-7 settle, 8-15 complete the top k, 16-31 find
            assert not drawn[16:].any() and drawn[8:16].all()
            assert drawn[:8].all() == (settle == "uniform") and drawn[:8].any() == (settle == "uniform")
            if settle == "uncertain":
                q = 1.0 / (1.0 + np.exp(-_logits(s, state)))
                sure = q * (1.0 - q)
                for c in np.unique(cell[:8]):
                    free = ~asked[:, c]
                    free[sample[8:16][cell[8:16] == c]] = False  # the completing half drew first
                    shared += int((cell[8:16] == c).any())
                    takes = sample[:8][cell[:8] == c]
                    best = np.sort(np.where(free, sure[:, c], -1.0))[::-1][: takes.size]
                    np.testing.assert_allclose(np.sort(sure[takes, c])[::-1], best, atol=2e-4)  # up to the tie-break
            asked[sample, cell] = True
            state, _ = update(state, _transition(sample, cell, rng.random(32) < p[sample, cell]), jax.random.PRNGKey(99))
        assert settle == "uniform" or shared > 0  # the halves did share cells


def test_a_lone_identify_environment_is_a_uniform_draw():
    s = _searcher(num_samples=40, num_envs=4, identify_fraction=0.25, fresh_pairs=True)
    chosen = jax.jit(s.choose, static_argnums=(3, 4))(s.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), jax.random.PRNGKey(2), 4,
                                                      lambda idx: jnp.zeros((idx.shape[0], 1)))
    np.testing.assert_array_equal(np.asarray(chosen.drawn), [True, False, False, False])


@pytest.mark.parametrize("settle", ["uncertain", "uniform"])
def test_identify_environments_left_without_a_fresh_sample_take_fresh_find_pairs(settle):
    """Identify environments whose cell has been asked on every sample take the find ranking's
    next pairs; with exactly as many fresh pairs left as the batch, none re-asks."""
    s = _searcher(num_samples=30, num_envs=16, identify_fraction=0.5, fresh_pairs=True, settle_samples=settle)
    asked = np.ones((30, 25), bool)
    asked[np.arange(16) % 30, 20 + np.arange(16) % 5] = False  # 16 fresh pairs, all in cells 20-24
    state = s.init(jax.random.PRNGKey(0)).replace(asked=jnp.asarray(asked), w=-jnp.arange(10, dtype=jnp.float32))
    cells = np.asarray(s._identify_cells(state, 8))
    assert (cells < 20).sum() >= 2  # the completing half asks the top cells, which have no fresh sample
    chosen = jax.jit(s.choose, static_argnums=(3, 4))(state, jax.random.PRNGKey(1), jax.random.PRNGKey(2), 16,
                                                      lambda idx: jnp.zeros((idx.shape[0], 1)))
    sample, cell = np.asarray(chosen.sample), np.asarray(chosen.action)
    assert not asked[sample, cell].any() and len(set(zip(sample, cell))) == 16


def _play(searcher, p, iterations, seed=0):
    """Drive the searcher on a synthetic world ``p`` (N, A) with jitted calls; returns the last state and every query."""
    state = searcher.init(jax.random.PRNGKey(seed))
    select, act, update = jax.jit(searcher.select_samples, static_argnums=2), jax.jit(searcher.act), jax.jit(searcher.update)
    rng, key = np.random.default_rng(seed), jax.random.PRNGKey(seed)
    log = []
    for _ in range(iterations):
        key, k1, k2, k3 = jax.random.split(key, 4)
        samples = select(state, k1, searcher.num_envs)
        actions = act(state, jnp.zeros((searcher.num_envs, 1)), k2, sample=samples)
        failed = rng.random(searcher.num_envs) < p[np.asarray(samples), np.asarray(actions)]
        state, _ = update(state, _transition(samples, actions, failed), k3)
        log.append((np.asarray(samples), np.asarray(actions), failed))
    return state, log


def test_it_learns_a_known_bandit_and_spends_most_queries_on_the_failing_cell():
    p = np.full((20, 25), 0.1)
    p[:, 13] = 0.9
    s = _searcher(num_samples=20, num_envs=32, iterations=30)
    state, log = _play(s, p, 30)
    scores = np.asarray(s.action_scores(state, jnp.zeros((1, 1))))[0]
    assert int(np.argmax(scores)) == 13
    last = np.concatenate([a for _, a, _ in log[-10:]])
    assert np.mean(last == 13) > 0.5  # the rest: the identify share (35%) and posterior draws


def test_find_environments_prefer_hard_samples_and_identify_environments_ask_fresh_pairs():
    p = np.full((40, 25), 0.05)
    p[:10] = 0.8  # samples 0-9 fail almost anywhere
    s = _searcher(num_samples=40, num_envs=64, iterations=30, identify_fraction=0.25)
    state, log = _play(s, p, 30)
    samples = np.stack([smp for smp, _, _ in log[-10:]])  # (10, 64)
    assert np.mean(samples[:, 16:] < 10) > 0.7  # find environments: the hard samples
    # identify environments: the cells select_samples and act agree on, each on a sample not yet asked under it
    key = jax.random.PRNGKey(7)
    rows = np.asarray(s.select_samples(state, key, 64))[:16]
    cells = np.asarray(s.act(state, jnp.zeros((64, 1)), key, sample=jnp.asarray(np.pad(rows, (0, 48)))))[:16]
    np.testing.assert_array_equal(cells, np.asarray(s._identify_cells(state, 16)))
    asked = np.asarray(state.asked)
    has_fresh = ~asked[:, cells].all(axis=0)
    assert has_fresh.any() and not asked[rows[has_fresh], cells[has_fresh]].any()


def test_fresh_pairs_keeps_find_environments_off_pairs_already_asked():
    p = np.full((40, 25), 0.05)
    p[:, 13] = 0.95
    s = _searcher(num_samples=40, num_envs=64, iterations=20, identify_fraction=0.0, fresh_pairs=True)
    state, log = _play(s, p, 20)
    asked_before = np.zeros((40, 25), bool)
    repeats = 0
    for samples, actions, _ in log:
        repeats += int(asked_before[samples, actions].sum())
        asked_before[samples, actions] = True
    stale = _searcher(num_samples=40, num_envs=64, iterations=20, identify_fraction=0.0, fresh_pairs=False)
    _, stale_log = _play(stale, p, 20)
    asked_before[:] = False
    stale_repeats = 0
    for samples, actions, _ in stale_log:
        stale_repeats += int(asked_before[samples, actions].sum())
        asked_before[samples, actions] = True
    assert repeats < 0.35 * stale_repeats  # the rest: pairs two environments of one batch both chose


def test_identify_environments_pick_cells_near_the_top_k_boundary():
    p = np.tile(np.linspace(0.05, 0.95, 25), (400, 1))  # cell a fails with a rising probability
    s = _searcher(num_samples=400, num_envs=64, iterations=12, identify_fraction=0.5, top_k=5)
    state, _ = _play(s, p, 12)
    cells = np.asarray(s._identify_cells(state, 32))
    assert np.mean((cells >= 15) & (cells <= 23)) > 0.6  # ranks 2..10: around the top-5 boundary (cells 19 | 20)


def test_the_shrinkage_estimate_corrects_for_hard_samples_and_its_interval_covers_the_truth():
    """Cells queried only on hard samples look worse in raw rates than they are."""
    rng = np.random.default_rng(4)
    outcome = rng.random((40, 25)) < _synthetic(seed=3)  # what the model answers on each (sample, cell): fixed
    truth = outcome.mean(axis=0)
    hard = np.argsort(-outcome.mean(axis=1))[:10]
    samples = np.where(np.arange(4000) % 2 == 0, rng.integers(0, 40, 4000), rng.choice(hard, 4000))
    actions = np.where(np.arange(4000) % 2 == 0, rng.integers(0, 25, 4000), rng.integers(0, 5, 4000))  # cells 0-4 mostly on hard samples
    failed = outcome[samples, actions]
    est = cell_estimates(samples, actions, failed, 40, (5, 5))
    raw = np.bincount(actions, failed, 25) / np.bincount(actions, minlength=25)
    assert np.abs(est.rate - truth).mean() < 0.5 * np.abs(raw - truth).mean()
    assert np.mean((est.lower <= truth) & (truth <= est.upper)) >= 0.8
    assert np.all(est.lower <= est.rate) and np.all(est.rate <= est.upper)
    # A cell asked on every sample is known exactly, whatever the model says.
    every = cell_estimates(np.arange(40), np.full(40, 3), outcome[:, 3], 40, (5, 5))
    np.testing.assert_allclose([every.lower[0], every.rate[0], every.upper[0]], truth[3])


# -- recorded audits ----------------------------------------------------------------------------
SMALL_SPACE = {"axes": [{"name": "rotation", "values": [-20, 0, 20]}, {"name": "darkness", "values": [0.0, 0.7]}, {"name": "blur", "values": [0.0, 3.0]}]}


@pytest.fixture(scope="module")
def small(digits_task, default_config):
    """The embedded model on a 12-cell space over the first 120 held-out digits, and its recording."""
    from fadejax.engine.build import build_task

    config = parse_config({"data": {"limit": 120}, "space": SMALL_SPACE, "run": {"iterations": 6, "num_envs": 32, "checkpoint_every": 2, "seed": 5}})
    task = build_task(config, progress=False)
    return config, task, record(task, landscape_key(config), config.name)


def test_a_recording_holds_the_exhaustive_landscape_and_round_trips(small, tmp_path):
    config, task, recording = small
    np.testing.assert_allclose(recording.failure_rates(), failure_landscape(task))
    path = recording.save(tmp_path / "rec.npz")
    loaded = load_recording(path, expect_key=landscape_key(config))
    np.testing.assert_array_equal(loaded.failed, recording.failed)
    np.testing.assert_array_equal(loaded.reward, recording.reward)
    assert loaded.meta["sizes"] == [3, 2, 2] and loaded.meta["task"] == "image"


def test_recordings_of_another_config_or_truncated_or_foreign_files_are_refused(small, tmp_path):
    config, _, recording = small
    path = recording.save(tmp_path / "rec.npz")
    other = parse_config({"data": {"limit": 60}, "space": SMALL_SPACE})
    with pytest.raises(RecordingError, match="other data, model or concept space"):
        load_recording(path, expect_key=landscape_key(other))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RecordingError, match="cannot be read"):
        load_recording(cut)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, failed=np.zeros((2, 3), bool))
    with pytest.raises(RecordingError, match="lacks"):
        load_recording(foreign)
    with pytest.raises(RecordingError, match="does not exist"):
        load_recording(tmp_path / "missing.npz")


@pytest.mark.parametrize("searcher", [{"kind": "posterior"}, {"kind": "greedy", "epsilon": 0.5}])
def test_a_recorded_run_makes_the_live_runs_choices_query_by_query(small, searcher):
    config, task, recording = small
    config = parse_config({**config.model_dump(mode="json"), "searcher": searcher})
    runs = []
    for audited in (task, RecordedTask(recording, config.concept_space())):
        discovery = build_discovery(config, audited)
        state, queries = discovery.init(config.run.seed), []
        for _ in range(config.run.iterations):
            state, outcome, _ = discovery.step(state)
            queries.append({k: np.asarray(outcome[k]) for k in ("sample", "action", "failed", "reward")})
        runs.append({k: np.concatenate([q[k] for q in queries]) for k in queries[0]})
    live, replay = runs
    for k in ("sample", "action", "failed"):
        np.testing.assert_array_equal(replay[k], live[k])
    # The CNN's float sums can differ in the last bits between batch shapes (1,024 vs 32 images per
    # call); eq. 4's log of 1 - score + 1e-3 magnifies that for confident scores.
    np.testing.assert_allclose(replay["reward"], live["reward"], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_all_find_or_all_identify_batches_act(fraction):
    """Either role may have the whole batch (the other then draws nothing)."""
    s = _searcher(num_envs=8, identify_fraction=fraction)
    state = s.init(jax.random.PRNGKey(0))
    samples = jax.jit(lambda st, k: s.select_samples(st, k, 8))(state, jax.random.PRNGKey(1))
    actions = jax.jit(lambda st, k: s.act(st, jnp.zeros((8, 1)), k, sample=samples))(state, jax.random.PRNGKey(2))
    assert samples.shape == actions.shape == (8,)
    assert np.all((0 <= np.asarray(samples)) & (np.asarray(samples) < 40)) and np.all((0 <= np.asarray(actions)) & (np.asarray(actions) < 25))
