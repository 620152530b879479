"""Microscopic walks planned on the posterior model, and the bound on what walks can find."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fadejax.engine.config import parse_config
from fadejax.engine.recording import RecordedTask, Recording
from fadejax.engine.checkpoints import build_discovery
from fadejax.searchers import Transition
from fadejax.searchers.base import Walk
from fadejax.searchers.posterior_walk import PosteriorWalk, PosteriorWalkConfig
from fadejax.core.spaces import Axis, ConceptSpace, MicroSpace
from fadejax.core.walks import crossing_failure_bound, distinct_failure_bound, first_failure_moves, neighbour_table

GRID = (4, 3, 3)


def _walker(grid=GRID, start=(0, 0, 0), max_steps=6, num_samples=10, num_envs=8, **config):
    return PosteriorWalk(PosteriorWalkConfig(**config), num_actions=2 * len(grid), obs_dim=1, num_samples=num_samples,
                         total_iterations=20, num_envs=num_envs, sizes=(2 * len(grid),), walk=Walk(grid, start, max_steps))


def _space(grid=GRID):
    return ConceptSpace([Axis(f"axis{j}", tuple(float(v) for v in range(n))) for j, n in enumerate(grid)])


def test_the_neighbour_table_is_the_micro_spaces_move():
    micro = MicroSpace(_space(), (0, 0, 0))
    table = neighbour_table(GRID)
    cells = np.stack(np.unravel_index(np.arange(np.prod(GRID)), GRID), axis=-1)
    for move in range(6):
        moved = np.asarray(micro.move(jnp.asarray(cells), jnp.full(len(cells), move)))
        np.testing.assert_array_equal(table[:, move], np.ravel_multi_index(tuple(moved.T), GRID))


def _brute_force_values(walker, new, end, cell, left, free=None):
    """Best discounted value of every move sequence of ``left`` moves starting with each first
    move; a move onto a ``free`` cell (crossed without a query) is not discounted."""
    gamma, table = walker.config.discount, np.asarray(neighbour_table(walker.grid))
    free = np.zeros(new.shape, bool) if free is None else free
    best = np.full(table.shape[1], -np.inf)
    for path in itertools.product(range(table.shape[1]), repeat=left):
        value, alive, discount, c = 0.0, 1.0, 1.0, cell
        for move in path:
            c = table[c, move]
            value += alive * discount * new[c]
            alive *= 1.0 - end[c]
            discount *= 1.0 if free[c] else gamma
        best[path[0]] = max(best[path[0]], value)
    return best


def test_the_plan_is_the_best_discounted_value_over_every_walk():
    walker = _walker(discount=0.8)
    rng = np.random.default_rng(0)
    cells = int(np.prod(GRID))
    new = rng.uniform(0, 0.6, cells)
    end = np.where(rng.random(cells) < 0.2, 1.0, new)  # some pairs already known to fail: they end the walk with nothing new
    new = np.where(end == 1.0, 0.0, new)
    for cell, left in [(0, 1), (0, 3), (17, 4), (35, 2)]:
        planned = walker._plan(jnp.asarray(new[None], jnp.float32), jnp.asarray(end[None], jnp.float32), jnp.asarray([cell]), jnp.asarray([left]))
        np.testing.assert_allclose(np.asarray(planned)[0], _brute_force_values(walker, new, end, cell, left), rtol=1e-5)
    # with known pairs that did not fail crossed without a query, only the queries are discounted
    free = (rng.random(cells) < 0.4) & (end < 1.0)
    new, end = np.where(free, 0.0, new), np.where(free, 0.0, end)
    differs = []
    for cell, left in [(0, 3), (17, 4), (35, 5)]:
        planned = walker._plan(jnp.asarray(new[None], jnp.float32), jnp.asarray(end[None], jnp.float32), jnp.asarray([cell]),
                               jnp.asarray([left]), jnp.asarray(free[None]))
        np.testing.assert_allclose(np.asarray(planned)[0], _brute_force_values(walker, new, end, cell, left, free), rtol=1e-5)
        differs.append(not np.allclose(np.asarray(planned)[0], _brute_force_values(walker, new, end, cell, left)))
    assert any(differs)  # it is not the plan that discounts every move


def _fit(walker, samples, cells, failed):
    """The walker's state after one batch of these queries."""
    state = walker.init(jax.random.PRNGKey(0))
    n = len(samples)
    obs = jnp.zeros((n, 1))
    transition = Transition(obs, jnp.zeros(n, jnp.int32), jnp.zeros(n), obs, jnp.asarray(failed, bool),
                            jnp.asarray(samples, jnp.int32), jnp.asarray(failed, bool), cell=jnp.asarray(cells, jnp.int32),
                            done=jnp.asarray(failed, bool))
    return jax.jit(walker.update)(state, transition, jax.random.PRNGKey(1))[0]


def test_walks_head_straight_for_the_failing_corner():
    walker = _walker(num_envs=3000, max_steps=8, identify_fraction=0.0, fresh_pairs=False, posterior_scale=0.3, capacity=3000)  # fitted on 3000 queries at once
    corner = int(np.ravel_multi_index((3, 2, 2), GRID))
    rng = np.random.default_rng(0)
    samples, cells = rng.integers(0, 10, 3000), rng.integers(0, 36, 3000)
    state = _fit(walker, samples, cells, cells == corner)
    # from the start, every walk reaches the corner in its Manhattan distance (3 + 2 + 2 = 7 moves)
    position = jnp.zeros((4, 3), jnp.int32)
    sample = jnp.arange(4, dtype=jnp.int32)
    space = MicroSpace(_space(), (0, 0, 0))
    act = jax.jit(walker.act)
    for step in range(7):
        key = jax.random.PRNGKey(step)
        move = act(state, jnp.zeros((4, 1)), key, sample=sample, cell=position, steps=jnp.full(4, step, jnp.int32))
        position = space.move(position, move)  # the key only breaks ties between equally short paths
    np.testing.assert_array_equal(np.asarray(position), np.tile([3, 2, 2], (4, 1)))


def test_known_answers_steer_walks_to_failures_not_yet_found():
    walker = _walker(num_envs=2001, identify_fraction=0.0, posterior_scale=1e-3, max_steps=2, capacity=2001)
    # cells (1,0,0) and (0,1,0) both fail often; sample 0 has already failed at (1,0,0)
    a, b = int(np.ravel_multi_index((1, 0, 0), GRID)), int(np.ravel_multi_index((0, 1, 0), GRID))
    rng = np.random.default_rng(1)
    samples, cells = rng.integers(1, 10, 2000), rng.integers(0, 36, 2000)
    failed = (cells == a) | (cells == b)
    state = _fit(walker, np.r_[samples, 0], np.r_[cells, a], np.r_[failed, True])
    assert bool(state.failed_pairs[0, a]) and bool(state.asked[0, a])
    move = walker.act(state, jnp.zeros((1, 1)), jax.random.PRNGKey(0), sample=jnp.asarray([0]), cell=jnp.zeros((1, 3), jnp.int32),
                      steps=jnp.zeros(1, jnp.int32))
    assert int(move[0]) == 3  # axis 1 up, towards the failure not yet found (axis 0 up would repeat a known one)


def test_each_sample_walks_to_where_it_breaks():
    # cells (1,0,0) and (0,1,0) fail equally often over the samples, but the even samples only
    # at the first and the odd ones only at the second: the additive model cannot tell them
    # apart, the sample x axis-value interactions can, and each walk heads for its own sample's
    walker = _walker(num_envs=2000, identify_fraction=0.0, fresh_pairs=False, posterior_scale=1e-3, max_steps=2, capacity=2000, sweeps=6)
    a, b = int(np.ravel_multi_index((1, 0, 0), GRID)), int(np.ravel_multi_index((0, 1, 0), GRID))
    rng = np.random.default_rng(2)
    samples, cells = rng.integers(0, 10, 2000), rng.choice([a, b, 0, 5, 9], 2000)
    failed = np.where(samples % 2 == 0, cells == a, cells == b)
    state = _fit(walker, samples, cells, failed)
    sample = jnp.arange(4, dtype=jnp.int32)
    move = walker.act(state, jnp.zeros((4, 1)), jax.random.PRNGKey(0), sample=sample, cell=jnp.zeros((4, 3), jnp.int32),
                      steps=jnp.zeros(4, jnp.int32))
    np.testing.assert_array_equal(np.asarray(move), [1, 3, 1, 3])  # axis 0 up for the even samples, axis 1 up for the odd
    # the identify walks' posterior mean tells the two kinds of sample apart too
    mean = np.asarray(walker._mean_logits(state, jnp.arange(2, dtype=jnp.int32)))
    assert mean[0, a] > mean[0, b] + 1.0 and mean[1, b] > mean[1, a] + 1.0


@pytest.mark.parametrize("side_weight, routes_around", [(0.5, True), (1.0, False)])
def test_identify_walks_route_around_likely_failures_to_reach_their_cell(side_weight, routes_around):
    # the identify cell (2,0,0) lies behind (1,0,0), where every sample fails: the straight
    # way ends there, a detour over the safe cells (axis 1 or 2 up first) reaches the cell.
    # Valuing a failure on the way as much as the cell itself (weight 1) takes the straight way
    walker = _walker(num_envs=2000, identify_fraction=1.0, fresh_pairs=False, posterior_scale=1e-3, max_steps=4, capacity=2000,
                     identify_side_weight=side_weight)
    blocker, target = int(np.ravel_multi_index((1, 0, 0), GRID)), int(np.ravel_multi_index((2, 0, 0), GRID))
    rng = np.random.default_rng(3)
    samples, cells = rng.integers(0, 10, 2000), rng.choice([blocker, 0, 1, 3, 4, 10, 12, 13], 2000)
    state = _fit(walker, samples, cells, cells == blocker)
    walker._identify_cells = lambda state, count: jnp.full(count, target, jnp.int32)
    move = walker.act(state, jnp.zeros((4, 1)), jax.random.PRNGKey(0), sample=jnp.arange(4, dtype=jnp.int32),
                      cell=jnp.zeros((4, 3), jnp.int32), steps=jnp.zeros(4, jnp.int32))
    detour = np.isin(np.asarray(move), [3, 5])  # axis 1 or axis 2 up
    assert detour.all() if routes_around else not detour.any()


def test_episode_draws_change_when_an_episode_ends():
    walker = _walker(num_envs=2)
    state = walker.init(jax.random.PRNGKey(0))
    draws = jax.jit(walker._episode_draws)
    before = draws(state, jnp.asarray([0, 0]))
    obs = jnp.zeros((2, 1))
    done = jnp.asarray([True, False])
    t = Transition(obs, jnp.zeros(2, jnp.int32), jnp.zeros(2), obs, done, jnp.zeros(2, jnp.int32), done, cell=jnp.zeros(2, jnp.int32), done=done)
    state, _ = jax.jit(walker.update)(state, t, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(np.asarray(state.episode), [1, 0])
    after = draws(state, jnp.asarray([0, 0]))
    assert not np.allclose(after[0], before[0])


def _synthetic_recording(grid=(5, 5, 5), num_samples=60, seed=0):
    """Failures only far from the origin: the sum of value indices >= 8, more often for hard samples."""
    rng = np.random.default_rng(seed)
    cells = np.stack(np.unravel_index(np.arange(np.prod(grid)), grid), axis=-1)
    depth = cells.sum(axis=-1)
    hard = rng.uniform(0.3, 1.0, num_samples)
    failed = (depth[None, :] >= 8) & (rng.random((num_samples, len(cells))) < hard[:, None])
    meta = {"sizes": list(grid), "task": "image", "info": {}}
    return Recording(failed=failed, reward=np.where(failed, 1.0, -1.0).astype(np.float32),
                     observations=rng.normal(size=(num_samples, 4)).astype(np.float32), meta=meta)


def _micro_discovery(searcher, recording, iterations, num_envs):
    """The loop of a micro run on ``recording`` (a 5 x 5 x 5 grid from its corner, 10 moves)."""
    axes = [{"name": name, "values": [0.0, 0.1, 0.2, 0.3, 0.4]} for name in ("rotation", "darkness", "blur")]  # only the grid matters
    config = parse_config({"mode": "micro", "space": {"axes": axes},
                           "micro": {"start": [0, 0, 0], "max_steps": 10}, "searcher": searcher,
                           "run": {"iterations": iterations, "num_envs": num_envs}})
    return build_discovery(config, RecordedTask(recording, config.concept_space()))


def _micro_outcomes(searcher, recording, iterations=80, num_envs=16) -> dict[str, np.ndarray]:
    """Every query's ``sample, cell, step, failed, reused, done`` of a micro run, ``(iterations, num_envs)`` each."""
    discovery = _micro_discovery(searcher, recording, iterations, num_envs)
    state, rows = discovery.init(0), []
    for _ in range(iterations):
        state, outcome, _ = discovery.step(state)
        rows.append({k: np.asarray(outcome[k]) for k in ("sample", "cell", "step", "failed", "reused", "done")})
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def _micro_run(searcher, recording, iterations=30):
    """Every query's failure of a micro run of 64 environments, ``(iterations, 64)``."""
    return _micro_outcomes(searcher, recording, iterations, num_envs=64)["failed"]


def test_walks_cross_pairs_they_know_without_a_query():
    recording = _synthetic_recording()
    crossing = _micro_outcomes({"kind": "posterior_walk"}, recording)
    stepping = _micro_outcomes({"kind": "posterior_walk", "skip_known_moves": False}, recording)
    # every move is a query when crossing is off: an episode's steps go 1, 2, 3, ... query by query
    after = np.where(stepping["done"][:-1], 0, stepping["step"][:-1])  # moves made before each environment's next query
    np.testing.assert_array_equal(stepping["step"][1:], after + 1)
    # crossing: moves made without a query in between (or an episode ended without one and the
    # next begun, which may take fewer moves)
    after = np.where(crossing["done"][:-1], 0, crossing["step"][:-1])
    assert np.any(crossing["step"][1:] > after + 1)
    # no query re-asks: environments walk distinct samples (60 samples, 16 environments), so no
    # two land on one new pair, and the known ones are crossed
    assert not crossing["reused"].any()
    assert stepping["reused"].mean() > 0.02  # the check above can fail: stepping every move re-asks (4.8% here)
    # and the walks find at least as many distinct failures with the queries they no longer re-ask
    distinct = [len({(s, c) for s, c, f in zip(r["sample"].ravel(), r["cell"].ravel(), r["failed"].ravel()) if f}) for r in (crossing, stepping)]
    assert distinct[0] >= distinct[1]


def test_a_fused_run_of_crossing_walks_makes_the_stepped_loops_queries():
    from fadejax.engine.fused import run_fused

    discovery = _micro_discovery({"kind": "posterior_walk"}, _synthetic_recording(), iterations=12, num_envs=16)
    assert discovery.skip_known and discovery.searcher.crossing
    fused = run_fused(discovery, [0, 1], 12, keep_queries=True)  # the walks' while-loops under vmap
    for seed in (0, 1):
        state, samples, cells = discovery.init(seed), [], []
        for _ in range(12):
            state, outcome, _ = discovery.step(state)
            samples.append(np.asarray(outcome["sample"]))
            cells.append(np.asarray(outcome["cell"]))
        fused_samples, fused_cells, _ = fused.queries(seed)
        np.testing.assert_array_equal(fused_samples, np.concatenate(samples))
        np.testing.assert_array_equal(fused_cells, np.concatenate(cells))


def test_a_walk_that_would_end_on_a_known_answer_ends_without_a_query():
    discovery = _micro_discovery({"kind": "posterior_walk"}, _synthetic_recording(num_samples=8), iterations=4, num_envs=4)
    state = discovery.init(0)
    # samples 0-3 answered everywhere, failing on the start cell and every cell one move from it:
    # any walk on them ends at its first move on a known failure; samples 4-7 never asked
    cells = np.stack(np.unravel_index(np.arange(125), (5, 5, 5)), axis=-1)
    known = np.zeros((8, 125), bool)
    known[:4] = True
    failed = known & (cells.sum(axis=-1) <= 1)[None, :]
    state = state.replace(sample=jnp.arange(4, dtype=jnp.int32),
                          answers=state.answers.replace(known=jnp.asarray(known), failed=jnp.asarray(failed)))
    _, pending = discovery.propose(state)
    sample = np.asarray(pending["sample"])
    # every episode ended without a query and began again on an unasked sample, one per environment
    assert set(sample.tolist()) == {4, 5, 6, 7}
    assert not np.asarray(pending["known"]).any()
    np.testing.assert_array_equal(np.asarray(pending["steps"]), 1)


def _random_walk_failure_rate(failed: np.ndarray, grid, start, max_steps: int, episodes: int = 4000, seed: int = 0) -> float:
    """Failures per query of uniformly random moves (episodes end at a failure or ``max_steps``)."""
    rng, table = np.random.default_rng(seed), neighbour_table(grid)
    queries = failures = 0
    for _ in range(episodes):
        sample, cell = rng.integers(failed.shape[0]), int(np.ravel_multi_index(start, grid))
        for _ in range(max_steps):
            cell = table[cell, rng.integers(table.shape[1])]
            queries += 1
            if failed[sample, cell]:
                failures += 1
                break
    return failures / queries


def test_walks_reach_a_distant_failing_region_that_random_moves_rarely_reach():
    recording = _synthetic_recording()
    walked = _micro_run({"kind": "posterior_walk"}, recording, iterations=20)
    wandered = _random_walk_failure_rate(recording.failed, (5, 5, 5), (0, 0, 0), 10)
    # the failing region starts 8 moves out: at most 1 failure per 8 queries, and random walks rarely get there
    assert walked[-5:].mean() > 0.08
    assert walked[-5:].mean() > 3 * wandered


def test_first_failure_moves_matches_every_walk_enumerated():
    grid, start, max_steps = (3, 3), (1, 0), 4
    rng = np.random.default_rng(3)
    failed = rng.random((5, 9)) < 0.3
    table = neighbour_table(grid)
    expected = np.full((5, 9), -1)
    for i in range(5):
        for path in itertools.product(range(4), repeat=max_steps):
            c = int(np.ravel_multi_index(start, grid))
            for k, move in enumerate(path, start=1):
                c = table[c, move]
                if failed[i, c]:
                    if expected[i, c] < 0 or k < expected[i, c]:
                        expected[i, c] = k
                    break
    np.testing.assert_array_equal(first_failure_moves(failed, grid, start, max_steps), expected)


def test_the_distinct_failure_bound_takes_the_cheapest_pairs_first():
    moves = np.array([[1, 3, -1], [2, -1, 10]])
    assert distinct_failure_bound(moves, 0) == 0
    assert distinct_failure_bound(moves, 3) == 2  # 1 + 2
    assert distinct_failure_bound(moves, 5) == 2
    assert distinct_failure_bound(moves, 6) == 3  # 1 + 2 + 3
    assert distinct_failure_bound(moves, 1000) == 4


def test_the_crossing_bound_charges_each_failure_once_and_each_sample_its_way_in():
    # sample 0: failures 1 and 3 moves out (no way in to pay: the first is next to the start);
    # sample 1: failures 2 and 10 moves out (one non-failing cell on the way to the nearer)
    moves = np.array([[1, 3, -1], [2, -1, 10]])
    assert crossing_failure_bound(moves, 0) == 0
    assert crossing_failure_bound(moves, 1) == 1
    assert crossing_failure_bound(moves, 2) == 2  # sample 0 whole, the cheaper per failure
    assert crossing_failure_bound(moves, 4) == 3  # 2 + 2 * (2 / 3) = 3.33, rounded down
    assert crossing_failure_bound(moves, 5) == 4
    assert crossing_failure_bound(moves, 1000) == 4
    assert crossing_failure_bound(np.full((2, 3), -1), 10) == 0
    assert all(crossing_failure_bound(moves, b) >= distinct_failure_bound(moves, b) for b in range(20))


def test_it_is_the_micro_default_and_refuses_macro_mode():
    config = parse_config({"mode": "micro", "micro": {"start": [2, 0, 0]}})
    assert config.searcher["kind"] == "posterior_walk"
    with pytest.raises(ValueError, match="plans microscopic walks only; for mode 'macro' use one of"):
        parse_config({"searcher": {"kind": "posterior_walk"}})
