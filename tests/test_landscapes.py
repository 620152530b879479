"""Landscapes (eq. 10), views, and the POT summaries (eq. 11, Tables 2-3) on cases solved by hand."""

import jax.numpy as jnp
import numpy as np
import pytest

from fadejax.analysis import barycenters as B
from fadejax.core.landscapes import empirical_landscape, on_grid, policy_landscape, view


def test_eq10_mean_std_and_confidence_by_hand():
    # Two states over two actions: P = softmax rows = [0.5, 0.5] and [e/(1+e), 1/(1+e)].
    q = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    p1 = np.e / (1 + np.e)
    land = policy_landscape(q)
    np.testing.assert_allclose(land.mean, [(0.5 + p1) / 2, (0.5 + 1 - p1) / 2], rtol=1e-6)
    np.testing.assert_allclose(land.std, [abs(p1 - 0.5) / 2] * 2, rtol=1e-5)
    np.testing.assert_allclose(land.confidence, 1 / np.asarray(land.std), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(land.mean).sum(), 1.0, rtol=1e-6)


def test_empirical_landscape_marks_unvisited_cells():
    rates = empirical_landscape(np.array([4, 0, 2]), np.array([1, 0, 2]))
    np.testing.assert_array_equal(rates[[0, 2]], [0.25, 1.0])
    assert np.isnan(rates[1])


def test_views_slice_and_marginalise_any_axes():
    grid = on_grid(jnp.arange(2 * 3 * 4 * 5, dtype=jnp.float32), (2, 3, 4, 5))
    full = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
    np.testing.assert_allclose(view(grid, keep=(3, 1, 2), fixed={0: 1}), full[1].transpose(2, 0, 1))
    np.testing.assert_allclose(view(grid, keep=(0, 2, 3)), full.mean(axis=1))
    np.testing.assert_allclose(view(grid, keep=(2,), reduce="max"), full.max(axis=(0, 1, 3)))
    with pytest.raises(ValueError, match="both kept and fixed"):
        view(grid, keep=(0, 1, 2), fixed={0: 0})


def test_nan_cells_are_ignored_when_marginalising():
    grid = jnp.array([[1.0, jnp.nan], [3.0, 5.0]])
    np.testing.assert_allclose(view(grid, keep=(0,)), [1.0, 4.0])


def test_ball_on_a_grid_by_hand():
    # 3x3 grid, centre cell 4 = (1, 1): radius 1 -> the plus shape; radius 1.5 -> all nine.
    assert sorted(B.ball((3, 3), 4, 1.0)) == [1, 3, 4, 5, 7]
    assert len(B.ball((3, 3), 4, 1.5)) == 9


def test_barycenter_of_diracs_is_their_weighted_mean():
    mass = np.zeros(9)
    mass[[3, 5]] = [1.0, 3.0]  # cells (1, 0) and (1, 2)
    np.testing.assert_allclose(B.barycenter(mass, (3, 3), center=4, radius=1.0), [1.0, 1.5], atol=1e-6)
    with pytest.raises(ValueError, match="no mass"):
        B.barycenter(np.zeros(9), (3, 3), center=0, radius=1.0)


def test_distance_in_ball_by_hand():
    # 1-D grid of 5; p all on cell 2, q half on 1 and half on 3: every unit moves distance 1.
    p = np.array([0, 0, 1.0, 0, 0])
    q = np.array([0, 0.5, 0, 0.5, 0])
    assert B.distance_in_ball(p, q, (5,), center=2, radius=1) == pytest.approx(1.0)
    # Radius 2 adds q mass far away: q moves 0.5 to cell 0 -> p stays, q = [0.5, 0, 0, 0.5, 0]: cost 0.5*2 + 0.5*1.
    q2 = np.array([0.5, 0, 0, 0.5, 0])
    assert B.distances_by_radius(p, q2, (5,), center=2, max_radius=2) == pytest.approx([1.0, 1.5])


def test_unordered_distance_by_hand():
    assert B.unordered_distance(np.array([1.0, 0, 0]), np.array([0, 0, 1.0])) == pytest.approx(2.0)
    assert B.unordered_distance(np.array([0.5, 0.5, 0]), np.array([0.5, 0, 0.5])) == pytest.approx(0.5)  # 0.5 moves by 1
