import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fadejax.core.rewards import classification_reward, micro_reward


def _logits_for(probs):
    return jnp.log(jnp.asarray(probs, jnp.float32))


def test_eq4_values_computed_by_hand():
    # Sample 0: wrong with score 0.9; sample 1: wrong with score 0.2 (five-way tie broken at 0); sample 2: right.
    logits = _logits_for([[0.9, 0.05, 0.05, 0.0 + 1e-9, 0.0 + 1e-9], [0.2] * 5, [0.1, 0.1, 0.8, 1e-9, 1e-9]])
    labels = jnp.array([1, 3, 2])
    const = 1e-3
    paper = classification_reward(logits, labels, scale=2.0, const=const, form="paper")
    absolute = classification_reward(logits, labels, scale=2.0, const=const, form="abs")
    expected_0 = 2.0 * np.log(0.9 / (0.1 + const))
    expected_1 = 2.0 * np.log(0.2 / (0.8 + const))
    np.testing.assert_allclose(paper.reward, [expected_0, expected_1, -1.0], rtol=1e-5)
    np.testing.assert_allclose(absolute.reward, [expected_0, -expected_1, -1.0], rtol=1e-5)
    np.testing.assert_array_equal(paper.failed, [True, True, False])
    np.testing.assert_array_equal(paper.predicted, [0, 0, 2])
    np.testing.assert_allclose(paper.score, [0.9, 0.2, 0.8], rtol=1e-5)


def test_default_form_ranks_every_failure_above_every_success():
    logits = jax.random.normal(jax.random.PRNGKey(0), (5000, 10)) * 3.0
    labels = jax.random.randint(jax.random.PRNGKey(1), (5000,), 0, 10)
    out = classification_reward(logits, labels)
    assert bool(out.failed.any()) and bool((~out.failed).any())
    assert float(out.reward[out.failed].min()) > float(out.reward[~out.failed].max())


def test_paper_form_can_rank_a_hesitant_failure_below_a_success():
    out = classification_reward(_logits_for([[0.2] * 5]), jnp.array([4]), form="paper")
    assert bool(out.failed[0]) and float(out.reward[0]) < -1.0


def test_unknown_form_is_rejected():
    with pytest.raises(ValueError, match="'abs', 'paper'"):
        classification_reward(jnp.zeros((1, 3)), jnp.zeros(1, jnp.int32), form="log")


def test_eq5_subtracts_alpha_per_step():
    np.testing.assert_allclose(micro_reward(jnp.array([3.0, -1.0]), jnp.array([1, 4]), alpha=5.0), [-2.0, -21.0])
