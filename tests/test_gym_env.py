"""The public gymnasium environment makes the same queries as the engine, one at a time."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from fadejax.audits.image.gym_env import AuditEnv
from fadejax.engine.config import parse_config


@pytest.fixture(scope="module")
def config():
    return parse_config({})


def test_the_environment_passes_gymnasiums_checker(digits_task, config):
    check_env(AuditEnv(digits_task, config.reward), skip_render_check=True)


def test_a_macroscopic_step_is_one_scored_query_of_the_chosen_cell(digits_task, config, ground_truth):
    env = AuditEnv(digits_task, config.reward)
    worst, best = int(np.argmax(ground_truth)), int(np.argmin(ground_truth))
    failures = {worst: 0, best: 0}
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape
    for i in range(200):
        for cell in (worst, best):
            env.reset(seed=i)
            _, reward, terminated, truncated, info = env.step(cell)
            assert terminated and not truncated and info["cell"] == cell
            assert info["failed"] == (info["predicted"] != info["label"])
            assert (reward > -1.0) == info["failed"]  # eq. 4, abs form: a failure scores >= 0
            failures[cell] += info["failed"]
    # 200 draws each: the truly worst cell fails far more often than the best one.
    assert failures[worst] / 200 > ground_truth[worst] - 0.15 and failures[best] / 200 < ground_truth[best] + 0.1


def test_microscopic_episodes_end_at_failure_or_the_step_limit(digits_task):
    config = parse_config({"mode": "micro", "micro": {"start": [2, 0, 0], "max_steps": 3}})
    env = AuditEnv(digits_task, config.reward, micro=config.micro_space(), max_steps=3, alpha=5.0)
    env.reset(seed=1)
    for step in range(1, 4):
        obs, reward, terminated, truncated, info = env.step(3)  # darkness up one notch
        assert obs[-4:-1][1] == pytest.approx(step / 4)  # the normalised cell rides in the observation
        assert obs[-1] == pytest.approx(step / 3)  # and the elapsed share of the step limit, as the engine's
        if terminated or truncated:
            break
    assert terminated == info["failed"] and (truncated == (not info["failed"] and step == 3))
