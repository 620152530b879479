"""Failure landscapes as RL environments: the recordings as gymnax environments (macro and
micro), the same names as gymnasium environments of the live audits, and the suite's scoring."""

import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from fadejax.engine.checkpoints import build_discovery
from fadejax.engine.build import build_task
from fadejax.engine.config import load_config, parse_config, read_config_data
from fadejax.engine.recording import RecordingError, load_recording
from fadejax.envs import NAMED, make, make_from
from fadejax.envs.agents import SNAPSHOTS, rejax_agent
from fadejax.envs.catalogue import UnknownEnvironment
from fadejax.envs.names import ROOT
from fadejax.envs.scoring import score_ledger, score_queries

def _vstep(env):
    return jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))


def _vreset(env):
    return jax.jit(jax.vmap(env.reset, in_axes=(0, None)))


def test_every_named_environment_opens_with_its_recordings_answers_and_a_bounded_observation():
    for name, named in NAMED.items():
        env, params = make(name)
        recording = load_recording(ROOT / named.recording)
        np.testing.assert_array_equal(np.asarray(params.failed), recording.failed)
        obs, state = env.reset(jax.random.PRNGKey(0), params)
        space = env.observation_space(params)
        assert obs.shape == space.shape and bool(space.contains(obs)) and env.name == name
        assert env.action_space(params).n == env.num_actions and bool(env.state_space(params).contains(state))


def test_a_macro_step_is_pure_jittable_vmappable_and_answers_from_the_recording():
    env, params = make("fadejax/digits-macro-v0")
    keys = jax.random.split(jax.random.PRNGKey(1), 64)
    obs, state = _vreset(env)(keys, params)
    actions = jax.random.randint(jax.random.PRNGKey(2), (64,), 0, env.num_actions)
    step_keys = jax.random.split(jax.random.PRNGKey(3), 64)
    first = _vstep(env)(step_keys, state, actions, params)
    again = _vstep(env)(step_keys, state, actions, params)
    jax.tree.map(np.testing.assert_array_equal, first, again)  # pure: the same inputs, the same outputs
    next_obs, next_state, reward, done, info = first
    samples, cells = np.asarray(state.sample), np.asarray(actions)
    np.testing.assert_array_equal(np.asarray(reward), np.asarray(params.reward)[samples, cells])  # eq. 4 as recorded
    np.testing.assert_array_equal(np.asarray(info["failed"]), np.asarray(params.failed)[samples, cells])
    assert bool(done.all()) and np.asarray(next_state.time).max() == 0  # one query per episode, then a fresh sample
    np.testing.assert_array_equal(np.asarray(next_obs), np.asarray(params.observations)[np.asarray(next_state.sample)])
    for e in (0, 17):  # the vmapped step is the single one, row by row
        one = env.step(step_keys[e], jax.tree.map(lambda x: x[e], state), actions[e], params)
        np.testing.assert_array_equal(np.asarray(one[2]), np.asarray(reward[e]))


def test_micro_episodes_walk_from_the_start_cell_and_end_at_a_failure_or_the_step_limit():
    env, params = make("fadejax/digits-micro-v0")
    config = load_config(ROOT / "configs/digits_micro.yaml")
    start, limit, alpha = tuple(config.micro.start), config.micro.max_steps, config.micro_alpha
    space = config.concept_space()
    failed, base = np.asarray(params.failed), np.asarray(params.micro_base)
    ends = {"failure": 0, "limit": 0}
    for sample in range(0, 540, 7):
        _, state = env.reset(jax.random.PRNGKey(sample), params)
        state = state.replace(sample=jnp.int32(sample))
        cell = np.asarray(start)
        for t in range(1, limit + 1):
            move = (3 if t % 2 else 5)  # darkness +1, blur +1, ...: clipped at the grid's edge
            cell = cell.copy()
            cell[move // 2] = min(cell[move // 2] + 1, 4)
            flat = int(np.ravel_multi_index(tuple(cell), space.sizes))
            obs, state, reward, done, info = env.step(jax.random.PRNGKey(t), state, move, params)
            assert float(reward) == pytest.approx(base[sample, flat] - alpha * t)  # eq. 5 on the recorded answer
            assert bool(info["failed"]) == failed[sample, flat] and int(info["cell"]) == flat
            if failed[sample, flat] or t == limit:
                assert bool(done)
                np.testing.assert_array_equal(np.asarray(state.cell), start)  # reset to the start cell
                ends["failure" if failed[sample, flat] else "limit"] += 1
                break
            assert not bool(done) and int(state.time) == t
            np.testing.assert_array_equal(np.asarray(state.cell), cell)
    assert ends["failure"] > 0 and ends["limit"] > 0


def test_gymnax_own_log_wrapper_reads_the_micro_episodes_as_purejaxrl_loops_do():
    from gymnax.wrappers.purerl import LogWrapper

    env, params = make("fadejax/lenet-micro-v0")
    logged = LogWrapper(env)
    obs, state = jax.vmap(logged.reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(0), 32), params)
    step = jax.jit(jax.vmap(logged.step, in_axes=(0, 0, 0, None)))
    lengths = []
    for t in range(25):
        obs, state, reward, done, info = step(jax.random.split(jax.random.PRNGKey(t + 1), 32), state, jnp.full((32,), 3), params)
        lengths += np.asarray(info["returned_episode_lengths"])[np.asarray(info["returned_episode"])].tolist()
    assert lengths and max(lengths) <= 10 and set(lengths) != {10}  # cut at the step limit, or ended earlier by a failure


@pytest.mark.parametrize("config_name,name,searcher", [("digits.yaml", "fadejax/digits-macro-v0", "random"),
                                                        ("digits_micro.yaml", "fadejax/digits-micro-v0", "posterior_walk")])
def test_the_engine_and_the_environment_answer_the_same_actions_alike_step_by_step(config_name, name, searcher):
    """The recorded audit in fadejax's own loop, and the JAX environment fed the loop's actions."""
    data = read_config_data(ROOT / "configs" / config_name, [f"recording={ROOT / 'recordings/digits.npz'}", "run.num_envs=16"])
    # one query per move, as the environment steps (the walker's crossing of known pairs off)
    config = parse_config({**data, "searcher": {"kind": searcher, **({"skip_known_moves": False} if searcher == "posterior_walk" else {})}})

    discovery = build_discovery(config, build_task(config, progress=False))
    state = discovery.init(0)
    env, params = make(name)
    env_state = {}
    for _ in range(6):
        state, outcome, _ = discovery.step(state)
        out = {k: np.asarray(v) for k, v in outcome.items()}
        for e in range(16):
            if e not in env_state or int(env_state[e].time) == 0:  # a new episode: the loop's sample for it
                _, fresh = env.reset(jax.random.PRNGKey(e), params)
                env_state[e] = fresh.replace(sample=jnp.int32(out["sample"][e]))
            assert int(env_state[e].sample) == out["sample"][e]
            _, env_state[e], reward, done, info = env.step(jax.random.PRNGKey(e), env_state[e], int(out["action"][e]), params)
            assert int(info["cell"]) == out["cell"][e] and bool(info["failed"]) == out["failed"][e]
            assert float(reward) == pytest.approx(float(out["reward"][e])) and bool(done) == out["done"][e]


def test_the_ledger_counts_what_an_agent_asked_and_an_informative_environment_pays_nothing_for_a_reask():
    env, params = make("fadejax/digits-macro-v0", ledger=True, informative=True)
    params = params.replace(reask_reward=-0.5)
    _, state = env.reset(jax.random.PRNGKey(0), params)
    state = state.replace(sample=jnp.int32(3))
    worst = int(np.argmax(np.asarray(params.failed)[3]))  # a cell where sample 3 fails, if any
    _, state, first, _, _ = env.step(jax.random.PRNGKey(1), state, worst, params)
    state = state.replace(sample=jnp.int32(3))
    _, state, second, _, _ = env.step(jax.random.PRNGKey(2), state, worst, params)
    assert float(first) == float(params.reward[3, worst]) and float(second) == -0.5
    assert int(state.queries) == 2 and int(np.asarray(state.asked).sum()) == 1
    assert int(state.failing) == 2 * int(params.failed[3, worst])
    truth = np.asarray(params.failed)
    scored = score_ledger(np.asarray(state.asked), 2, int(state.failing), truth, (5, 5, 5))
    assert scored["re-asked"] == 0.5 and scored["distinct"] == float(truth[3, worst]) and scored["queries"] == 2
    with pytest.raises(ValueError, match="needs ledger=True"):
        make("fadejax/digits-macro-v0", informative=True)


def test_the_suites_score_counts_distinct_failing_pairs_reasks_and_the_reports_recall():
    truth = np.zeros((20, 12), bool)
    truth[:, :3] = True  # cells 0-2 always fail
    truth[:10, 3] = True
    samples = np.array([0, 0, 1, 2, 5, 5, 7])
    cells = np.array([0, 0, 1, 4, 3, 3, 11])
    scored = score_queries(samples, cells, truth, (3, 4))
    assert scored["queries"] == 7 and scored["distinct"] == 3 and scored["count"] == 5
    assert scored["re-asked"] == pytest.approx(2 / 7)
    everything = score_queries(np.repeat(np.arange(20), 12), np.tile(np.arange(12), 20), truth, (3, 4))
    assert everything["recall@10"] == 1.0 and everything["distinct"] == truth.sum() and everything["re-asked"] == 0.0


def test_a_rejax_agent_trains_on_a_named_environment_and_its_ledger_scores_what_it_asked():
    env, params = make("fadejax/lenet-macro-v0", ledger=True)
    agent = rejax_agent("PPO", num_envs=8, num_steps=16, num_epochs=2, num_minibatches=4)
    states = agent(env, params, 1024, jax.random.split(jax.random.PRNGKey(0), 2))
    asked, queries, failing = np.asarray(states.asked), np.asarray(states.queries).sum(-1), np.asarray(states.failing).sum(-1)
    assert asked.shape == (2, SNAPSHOTS, 8, 540, 125)  # seed, eighth of the budget, environment
    np.testing.assert_array_equal(queries, np.tile(np.arange(1, SNAPSHOTS + 1) * 128, (2, 1)))  # every step one query
    for seed in range(2):
        scored = score_ledger(asked[seed, -1], int(queries[seed, -1]), int(failing[seed, -1]), np.asarray(params.failed), (5, 5, 5))
        assert 0 < scored["distinct"] <= scored["count"] <= 1024 and 0.0 <= scored["re-asked"] < 1.0
    with pytest.raises(ValueError, match="must divide an eighth of the budget"):
        rejax_agent("PPO", num_envs=8, num_steps=15)(env, params, 1024, jax.random.split(jax.random.PRNGKey(0), 1))


def test_bad_names_and_recordings_are_refused_in_one_line(tmp_path):
    with pytest.raises(UnknownEnvironment) as refused:
        make("fadejax/digits-v9")
    assert "fadejax/digits-macro-v0" in str(refused.value) and "\n" not in str(refused.value)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a recording")
    for recording in (garbage, ROOT / "recordings/digits_lenet.npz", tmp_path / "missing.npz"):
        with pytest.raises(RecordingError) as refused:
            make_from(ROOT / "configs/digits.yaml", recording)
        assert "\n" not in str(refused.value)


def test_the_live_audits_are_registered_gymnasium_environments_that_pass_its_checker():
    import fadejax.envs.gym as live

    ids = live.register()
    assert set(ids) == {n for n in NAMED if "summarize" not in n} | {live.GENERIC}
    for name in ids[:-1]:
        env = gymnasium.make(name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped, skip_render_check=True)
        assert env.spec.id == name and not [str(w.message) for w in caught]
        micro = "micro" in name
        assert env.observation_space.shape == (64 + (4 if micro else 0),) and np.isfinite(env.observation_space.high).all()
    generic = gymnasium.make(live.GENERIC, config=str(ROOT / "configs/digits.yaml"))
    assert generic.action_space.n == 125
    with pytest.raises(ValueError, match="only image audits"):
        gymnasium.make(live.GENERIC, config=str(ROOT / "configs/summarize.yaml"))
