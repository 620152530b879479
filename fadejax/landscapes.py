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
