"""Summaries of a landscape region with optimal transport (POT): the paper's eq. 11 and Tables 2-3.

Grid coordinates are value indices per axis; the ground cost between two cells is their
Euclidean distance on that grid.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from fadejax.analysis.pot import pot


def grid_coordinates(sizes: Sequence[int]) -> np.ndarray:
    """Coordinates of every cell, ``(num_actions, num_axes)`` float64, row-major like the space."""
    return np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), tuple(sizes)), axis=1).astype(np.float64)


def ball(sizes: Sequence[int], center: int, radius: float) -> np.ndarray:
    """Cells within Euclidean grid distance ``radius`` of cell ``center``, ``(n,)`` int."""
    coords = grid_coordinates(sizes)
    return np.flatnonzero(np.linalg.norm(coords - coords[center], axis=1) <= radius + 1e-9)


def barycenter(mass: np.ndarray, sizes: Sequence[int], center: int, radius: float) -> np.ndarray:
    """Eq. 11: the Wasserstein-2 barycenter of the Dirac measures at the cells within
    ``radius`` of ``center``, weighted by their landscape ``mass`` (e.g. mean P(a|s)).

    Returns the barycenter's grid coordinates ``(num_axes,)`` (fractional; drawn as the
    paper's diamond). Computed by POT's free-support barycenter.
    """
    cells = ball(sizes, center, radius)
    weights = np.asarray(mass, np.float64)[cells]
    if weights.sum() <= 0:
        raise ValueError(f"the landscape has no mass within radius {radius} of cell {center}")
    coords = grid_coordinates(sizes)[cells]
    locations = [c[None, :] for c in coords]
    unit = [np.ones(1) for _ in cells]
    start = coords[np.argmax(weights)][None, :]
    result = pot().lp.free_support_barycenter(locations, unit, start, weights=weights / weights.sum())
    return np.asarray(result[0])


def distance_in_ball(p: np.ndarray, q: np.ndarray, sizes: Sequence[int], center: int, radius: float) -> float:
    """Wasserstein-1 distance between two landscapes restricted to the ball (each renormalised),
    ground cost = grid distance (the paper's Table 2, one radius)."""
    cells = ball(sizes, center, radius)
    a, b = np.asarray(p, np.float64)[cells], np.asarray(q, np.float64)[cells]
    if a.sum() <= 0 or b.sum() <= 0:
        return float("nan")
    coords = grid_coordinates(sizes)[cells]
    return float(pot().emd2(a / a.sum(), b / b.sum(), pot().dist(coords, coords, metric="euclidean")))


def distances_by_radius(p: np.ndarray, q: np.ndarray, sizes: Sequence[int], center: int, max_radius: int) -> list[float]:
    """:func:`distance_in_ball` for radius 1, 2, ..., ``max_radius`` (Table 2's row)."""
    return [distance_in_ball(p, q, sizes, center, r) for r in range(1, max_radius + 1)]


def unordered_distance(p: np.ndarray, q: np.ndarray) -> float:
    """1-D Wasserstein distance between two distributions over actions with no order
    (Table 3): actions placed at positions 0..A-1, as the paper does for text edits."""
    a, b = np.asarray(p, np.float64), np.asarray(q, np.float64)
    positions = np.arange(a.size, dtype=np.float64)
    return float(pot().wasserstein_1d(positions, positions, a / a.sum(), b / b.sum(), p=1))
