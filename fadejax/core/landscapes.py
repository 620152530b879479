"""Failure landscapes over the concept grid (the paper's eq. 10 and Fig. 2).

* the **policy landscape**: ``P(a | s) = softmax_a Q(s, a)`` over a set of evaluation
  states, aggregated per cell into mean, standard deviation and confidence = 1 / std;
* the **empirical landscape**: observed failure rate and visit count per cell, from records;
* views: any per-cell array shaped onto the grid, then sliced (fix an axis at a value
  index) and marginalised (reduce the axes not kept) so a space with more than three
  axes can be shown in 3-D.

Per-cell arrays are ``(num_actions,)`` in the space's row-major cell order.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np


class PolicyLandscape(NamedTuple):
    """Eq. 10 aggregated over evaluation states, each ``(num_actions,)``."""

    mean: jax.Array  # mean P(a|s)
    std: jax.Array  # standard deviation of P(a|s) over states
    confidence: jax.Array  # 1 / std (std floored at ``eps``)


def policy_landscape(q_values: jax.Array, eps: float = 1e-6) -> PolicyLandscape:
    """Eq. 10 for ``q_values`` ``(S, num_actions)`` (one row per evaluation state)."""
    probs = jax.nn.softmax(q_values.astype(jnp.float32), axis=-1)
    std = jnp.std(probs, axis=0)
    return PolicyLandscape(jnp.mean(probs, axis=0), std, 1.0 / jnp.maximum(std, eps))


def empirical_landscape(visits: np.ndarray, failures: np.ndarray) -> np.ndarray:
    """Observed failure rate per cell; ``nan`` where a cell was never visited."""
    visits = np.asarray(visits, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(visits > 0, np.asarray(failures, np.float64) / visits, np.nan)


def on_grid(values: jax.Array | np.ndarray, sizes: Sequence[int]):
    """A per-cell array ``(num_actions, ...)`` as ``(*sizes, ...)`` on the concept grid."""
    return values.reshape(tuple(sizes) + tuple(values.shape[1:]))


def view(
    grid: jax.Array,
    keep: Sequence[int],
    fixed: dict[int, int] | None = None,
    reduce: Literal["mean", "max", "sum"] = "mean",
) -> jax.Array:
    """Slice and marginalise a grid ``(*sizes)`` down to the axes in ``keep`` (in that order).

    Args:
      grid: per-cell values on the grid.
      keep: the axes to keep (e.g. three for a 3-D plot).
      fixed: ``{axis: value index}`` to slice at before reducing.
      reduce: how the remaining axes are marginalised (``nan`` cells are ignored).
    """
    fixed = dict(fixed or {})
    if set(keep) & set(fixed):
        raise ValueError(f"an axis cannot be both kept and fixed: {sorted(set(keep) & set(fixed))}")
    if len(set(keep)) != len(keep) or any(not 0 <= a < grid.ndim for a in list(keep) + list(fixed)):
        raise ValueError(f"axes must be distinct and in 0..{grid.ndim - 1}; got keep={list(keep)} fixed={sorted(fixed)}")
    index = tuple(fixed.get(axis, slice(None)) for axis in range(grid.ndim))
    sliced = grid[index]
    remaining = [axis for axis in range(grid.ndim) if axis not in fixed]  # axes of `sliced`, in order
    others = tuple(remaining.index(axis) for axis in remaining if axis not in keep)
    reducer = {"mean": jnp.nanmean, "max": jnp.nanmax, "sum": jnp.nansum}[reduce]
    reduced = reducer(sliced, axis=others) if others else sliced
    order = [a for a in remaining if a in keep]  # axis order after reduction
    return jnp.transpose(reduced, [order.index(a) for a in keep])


# -- views that never build the product space ------------------------------------------------
# A concept space with 10^6 cells cannot be shown (or allocated per state) cell by cell. The
# functions below reduce it to a view: the kept axes (at most three, for the 3-D plot), the
# fixed axes sliced at one value each, every other axis marginalised.


def view_shape(sizes: Sequence[int], keep: Sequence[int]) -> tuple[int, ...]:
    """Shape of a view keeping ``keep`` (in that order): ``(sizes[k] for k in keep)``."""
    return tuple(int(sizes[k]) for k in keep)


def pooled_cells(sizes: Sequence[int], keep: Sequence[int], fixed: dict[int, int] | None = None) -> int:
    """How many cells each point of a view pools: the product of the marginalised axes' sizes."""
    fixed = fixed or {}
    return int(np.prod([n for a, n in enumerate(sizes) if a not in keep and a not in fixed], dtype=np.int64))


def check_view(sizes: Sequence[int], keep: Sequence[int], fixed: dict[int, int] | None = None) -> None:
    """Raise ``ValueError`` unless ``keep`` and ``fixed`` name distinct axes and valid value indices."""
    fixed = fixed or {}
    n = len(sizes)
    if len(set(keep)) != len(keep) or any(not 0 <= a < n for a in list(keep) + list(fixed)) or set(keep) & set(fixed):
        raise ValueError(f"view axes must be distinct and in 0..{n - 1}; got keep={list(keep)} fixed={sorted(fixed)}")
    for axis, index in fixed.items():
        if not 0 <= index < sizes[axis]:
            raise ValueError(f"fixed value index {index} of axis {axis} is outside 0..{sizes[axis] - 1}")


def grouped_sum(cells: np.ndarray, values: np.ndarray, sizes: Sequence[int], keep: Sequence[int], fixed: dict[int, int] | None = None) -> np.ndarray:
    """Sum per-cell ``values`` ``(V,)`` of the cells ``(V,)`` (row-major indices, e.g. the
    visited ones) onto a view ``view_shape(sizes, keep)``; cells off a fixed slice are dropped."""
    fixed = fixed or {}
    check_view(sizes, keep, fixed)
    out = np.zeros(view_shape(sizes, keep), np.float64)
    if len(cells) == 0:
        return out
    coords = np.unravel_index(np.asarray(cells, np.int64), tuple(sizes))
    on_slice = np.ones(len(cells), bool)
    for axis, index in fixed.items():
        on_slice &= coords[axis] == index
    np.add.at(out, tuple(coords[k][on_slice] for k in keep), np.asarray(values, np.float64)[on_slice])
    return out


def dense_view_mean(values: np.ndarray, sizes: Sequence[int], keep: Sequence[int], fixed: dict[int, int] | None = None) -> np.ndarray:
    """A dense per-cell array ``(num_actions,)`` (e.g. the exhaustive truth) averaged onto a view."""
    check_view(sizes, keep, fixed)
    return np.asarray(view(jnp.asarray(on_grid(np.asarray(values, np.float32), sizes)), keep, fixed, "mean"), np.float64)


def marginal_view(marginals: Sequence[jax.Array], keep: Sequence[int], fixed: dict[int, int] | None = None) -> jax.Array:
    """``P(kept axes, fixed axes | s)`` ``(B, *kept sizes)`` from per-axis marginals ``[(B, sizes[i])]``
    of a policy that is a product over axes (the factored head's eq. 10). Marginalised axes sum to 1."""
    fixed = fixed or {}
    batch = marginals[0].shape[0]
    weight = jnp.ones((batch,), jnp.float32)
    for axis, index in fixed.items():
        weight = weight * marginals[axis][:, index]
    out = weight.reshape((batch,) + (1,) * len(keep))
    for position, axis in enumerate(keep):
        shape = [batch] + [1] * len(keep)
        shape[1 + position] = marginals[axis].shape[1]
        out = out * marginals[axis].reshape(shape)
    return out


def dense_policy_view(probs: jax.Array, sizes: Sequence[int], keep: Sequence[int], fixed: dict[int, int] | None = None) -> jax.Array:
    """``P(kept axes, fixed axes | s)`` ``(B, *kept sizes)`` from full probabilities ``(B, num_actions)``."""
    fixed = fixed or {}
    grid = probs.reshape((probs.shape[0],) + tuple(sizes))
    index = (slice(None),) + tuple(fixed.get(a, slice(None)) for a in range(len(sizes)))
    sliced = grid[index]
    remaining = [a for a in range(len(sizes)) if a not in fixed]
    others = tuple(1 + remaining.index(a) for a in remaining if a not in keep)
    reduced = jnp.sum(sliced, axis=others) if others else sliced
    order = [a for a in remaining if a in keep]
    return jnp.transpose(reduced, [0] + [1 + order.index(a) for a in keep])


def top_k_separable(terms: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best cells of a score that is a sum over axes, ``score(c) = sum_i terms[i][c_i]``,
    without enumerating the product: keep the best ``k`` partial sums axis by axis (exact,
    since a top-``k`` cell's prefix is a top-``k`` prefix). Returns ``(cells (k, num_axes), scores (k,))``,
    best first; ties broken deterministically."""
    best_cells = np.zeros((1, 0), np.int64)
    best_scores = np.zeros(1, np.float64)
    for term in terms:
        term = np.asarray(term, np.float64)
        scores = (best_scores[:, None] + term[None, :]).ravel()
        cells = np.concatenate([np.repeat(best_cells, term.size, axis=0), np.tile(np.arange(term.size), len(best_cells))[:, None]], axis=1)
        order = np.lexsort((np.arange(scores.size), -scores))[:k]
        best_cells, best_scores = cells[order], scores[order]
    return best_cells, best_scores
