"""Each row under its own function, each function computed only on its rows
(fadejax.core.grouped, the corruption shorthand's stage)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fadejax.core.grouped import apply_grouped, chunk_size

CALLS = []


def _scaled(factor):
    def fn(rows, strengths, key):
        CALLS.append(rows.shape[0])  # traced once per branch: the chunk's static size
        return rows * factor + strengths[:, None]
    return fn


def _noisy(rows, strengths, key):
    return rows + jax.random.normal(key, rows.shape)


@pytest.mark.parametrize("batch,chunk", [(1, None), (7, 2), (50, 4), (50, None), (64, 16)])
def test_every_row_gets_its_groups_function_and_rows_outside_every_group_stay_as_they_were(batch, chunk):
    rng = np.random.default_rng(batch)
    rows = rng.normal(size=(batch, 3)).astype(np.float32)
    strengths = rng.random(batch).astype(np.float32)
    group = rng.integers(-1, 4, batch)  # 3 functions; -1 and 3 mean "unchanged"
    factors = [2.0, -1.0, 10.0]
    out = np.asarray(jax.jit(lambda r, s, g, k: apply_grouped([_scaled(f) for f in factors], g, r, s, k, chunk))(
        rows, strengths, group, jax.random.PRNGKey(0)))
    for b in range(batch):
        expected = rows[b] * factors[group[b]] + strengths[b] if 0 <= group[b] < 3 else rows[b]
        np.testing.assert_allclose(out[b], expected, rtol=1e-6)


def test_each_function_runs_on_chunks_not_on_the_whole_batch():
    CALLS.clear()
    apply_grouped([_scaled(1.0), _scaled(2.0)], jnp.zeros(256, jnp.int32), jnp.ones((256, 2)), jnp.zeros(256), jax.random.PRNGKey(0))
    assert CALLS and set(CALLS) == {chunk_size(256, 2)} and chunk_size(256, 2) < 256


def test_a_random_function_is_reproducible_from_the_key_and_draws_anew_per_row_and_per_key():
    rows, group = jnp.zeros((40, 5)), jnp.asarray([0, 1] * 20)
    draw = jax.jit(lambda k: apply_grouped([_noisy, _noisy], group, rows, jnp.zeros(40), k, 8))
    a, b, c = (np.asarray(draw(jax.random.PRNGKey(s))) for s in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and len({r.tobytes() for r in a}) == 40
