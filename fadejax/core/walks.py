"""What microscopic walks can reach, computed from an exhaustive failure table.

A microscopic episode starts at the start cell, makes one move per query (one axis one
notch, clipped at the grid's edge, so a clipped move re-asks the cell it is on) and ends
at its first failure or after ``max_steps`` moves. So a failing (sample, cell) pair costs
a walk at least as many queries as the fewest moves that reach the cell through cells
where that sample does *not* fail, and one episode finds one failure at most. From the
exhaustive table this gives:

* :func:`first_failure_moves` — for every pair, those fewest moves (or ``-1`` when no walk
  of ``max_steps`` moves reaches it);
* :func:`distinct_failure_bound` — the most distinct failing pairs any walker, even one
  that knew the table, can find with a budget of queries: the cheapest pairs first, one
  episode each. It is what bounds a microscopic searcher's ``distinct`` column, as the
  worst cell bounds a macroscopic searcher's failure count, where every move is a query.
* :func:`crossing_failure_bound` — the same for walkers that cross pairs the run already
  answered without a query (``posterior_walk``'s ``skip_known_moves``): a failing pair then
  costs one query, plus, once per sample, the cells on the way to its nearest failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse


def neighbour_table(grid: Sequence[int]) -> np.ndarray:
    """``(cells, 2 * axes)`` int32: the cell each move leads to (move ``2j`` lowers axis ``j``
    one notch, ``2j + 1`` raises it; clipped at the grid's edge, as :class:`fadejax.core.spaces.MicroSpace`)."""
    grid = tuple(int(g) for g in grid)
    cells = np.stack(np.unravel_index(np.arange(int(np.prod(grid))), grid), axis=-1)  # (C, axes)
    table = []
    for j, size in enumerate(grid):
        for step in (-1, 1):
            moved = cells.copy()
            moved[:, j] = np.clip(moved[:, j] + step, 0, size - 1)
            table.append(np.ravel_multi_index(tuple(moved.T), grid))
    return np.stack(table, axis=-1).astype(np.int32)


def move_adjacency(grid: Sequence[int]) -> scipy.sparse.csr_matrix:
    """``(cells, cells)`` bool: ``[c, d]`` when one move (clipped) takes cell ``c`` to ``d``."""
    import scipy.sparse  # here: scipy.sparse is 0.3 s of every command's start, and few use it

    table = neighbour_table(grid)
    rows = np.repeat(np.arange(table.shape[0]), table.shape[1])
    return scipy.sparse.csr_matrix((np.ones(rows.size, bool), (rows, table.ravel())), shape=(table.shape[0],) * 2)


def first_failure_moves(failed: np.ndarray, grid: Sequence[int], start: Sequence[int], max_steps: int) -> np.ndarray:
    """Fewest moves of a walk from ``start`` whose query of cell ``c`` is its first failure
    on sample ``i``, ``(N, cells)`` int32; ``-1`` where the pair does not fail or no walk of
    at most ``max_steps`` moves reaches it (cell index = row-major over ``grid``).

    ``failed`` ``(N, cells)`` bool: the exhaustive table (e.g. a recording's)."""
    failed = np.asarray(failed, bool)
    n, num_cells = failed.shape
    if num_cells != int(np.prod(grid)):
        raise ValueError(f"the table has {num_cells} cells; the grid {tuple(grid)} has {int(np.prod(grid))}")
    import scipy.sparse

    adjacency = move_adjacency(grid).astype(np.int32)
    moves = np.full((n, num_cells), -1, np.int32)
    at = np.zeros((n, num_cells), bool)  # where a walk can stand after k moves without having failed
    at[:, int(np.ravel_multi_index(tuple(int(s) for s in start), tuple(grid)))] = True
    for k in range(1, max_steps + 1):
        asked = (scipy.sparse.csr_matrix(at.astype(np.int32)) @ adjacency).toarray() > 0  # cells queried at move k
        first = asked & failed & (moves < 0)
        moves[first] = k
        at = asked & ~failed
        if not at.any():
            break
    return moves


def distinct_failure_bound(moves: np.ndarray, budget: int) -> int:
    """Most distinct failing pairs ``budget`` queries of walks can find: one episode per
    pair, cheapest first (``moves`` from :func:`first_failure_moves`)."""
    costs = np.sort(moves[moves > 0].ravel())
    return int(np.searchsorted(np.cumsum(costs), budget, side="right"))


def crossing_failure_bound(moves: np.ndarray, budget: int) -> int:
    """Most distinct failing pairs ``budget`` queries can find when a walk crosses pairs
    answered earlier in the run without a query (``moves`` ``(N, cells)`` from
    :func:`first_failure_moves`).

    Every cell a walk passes through was asked once in the run, so on sample ``i`` the first
    failure found costs at least ``e_i = min_c moves[i, c] - 1`` queries of non-failing cells
    before it, and every failing pair found costs its own query: finding ``n_i`` of sample
    ``i``'s ``F_i`` reachable failures costs at least ``e_i + n_i``. The most failures within
    the budget is at most the optimum of that knapsack with samples taken fractionally
    (greedily by ``F_i / (e_i + F_i)``), which this returns, rounded down."""
    reach = moves > 0
    count = reach.sum(axis=1)
    used = count > 0
    entry = np.where(reach, moves, np.iinfo(moves.dtype).max).min(axis=1)[used] - 1
    count = count[used]
    order = np.argsort(-count / (entry + count), kind="stable")
    cost, gain = (entry + count)[order].astype(np.float64), count[order].astype(np.float64)
    spent = np.cumsum(cost)
    whole = int(np.searchsorted(spent, budget, side="right"))  # samples taken whole
    found = gain[:whole].sum()
    if whole < gain.size:  # the next sample, in part
        found += gain[whole] * (budget - (spent[whole - 1] if whole else 0.0)) / cost[whole]
    return int(np.floor(found + 1e-9))
