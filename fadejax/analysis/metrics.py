"""How good a search was: counts, concentration, and agreement with the true landscape.

All functions are pure, take NumPy arrays over the macroscopic action space
(``num_actions`` cells) and return Python floats.
"""

from __future__ import annotations

import numpy as np
from fadejax.analysis.pot import pot

from fadejax.analysis.barycenters import grid_coordinates


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (``nan`` half-width for one value)."""
    from scipy import stats

    x = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float("nan")
    return float(x.mean()), float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))


def failures_found(failed: np.ndarray) -> int:
    """Number of queries on which the audited model failed (higher is better)."""
    return int(np.sum(failed))


def failure_distribution(failed_cells: np.ndarray, num_actions: int) -> np.ndarray:
    """Share of the failures that fell in each cell, ``(num_actions,)``; zeros if there were none."""
    counts = np.bincount(np.asarray(failed_cells, np.int64), minlength=num_actions).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def failure_entropy(failed_cells: np.ndarray, num_actions: int) -> float:
    """Shannon entropy (nats) of the failures' distribution over cells (lower = more concentrated).

    ``0`` when every failure is in one cell; ``ln(num_actions)`` when spread evenly.
    """
    _, counts = np.unique(np.asarray(failed_cells, np.int64), return_counts=True)  # sparse: any space size
    if counts.size == 0:
        return 0.0
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def true_top_cells(truth: np.ndarray, k: int) -> np.ndarray:
    """Cells at least as bad as the ``k``-th worst true cell (ties included, so possibly more than k)."""
    kth = np.sort(truth)[::-1][k - 1]
    return np.flatnonzero(truth >= kth)


def recall_at_k(estimate: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Share of the searcher's top-``k`` cells (by ``estimate``) that are truly top-``k``.

    Any cell whose true rate equals the ``k``-th worst counts as top-``k``. Ties in the
    estimate are broken by cell index, so the result is deterministic.
    """
    if not 1 <= k <= truth.size:
        raise ValueError(f"k={k} must be in 1..{truth.size}")
    order = np.lexsort((np.arange(estimate.size), -np.asarray(estimate, np.float64)))
    chosen = order[:k]
    return float(np.isin(chosen, true_top_cells(truth, k)).sum() / k)


def spearman(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Spearman rank correlation of estimated and true per-cell failure rates (``nan`` if either is constant)."""
    if np.ptp(estimate) == 0 or np.ptp(truth) == 0:
        return float("nan")
    from scipy.stats import spearmanr  # here: scipy.stats is 1.2 s of the start of every command that draws a figure

    return float(spearmanr(estimate, truth).statistic)


def grid_cost(sizes: tuple[int, ...]) -> np.ndarray:
    """Euclidean distance between cells on the concept grid (value indices), ``(A, A)``."""
    coords = grid_coordinates(sizes)
    return pot().dist(coords, coords, metric="euclidean")


def wasserstein_to_truth(failed_cells: np.ndarray, truth: np.ndarray, sizes: tuple[int, ...]) -> float:
    """Earth mover's distance (POT, exact) between the searcher's failure distribution and the
    true one (true rates normalised), with the grid distance as ground cost. Lower is closer."""
    p = failure_distribution(failed_cells, truth.size)
    q = truth / truth.sum()
    if p.sum() == 0:
        return float("nan")
    return float(pot().emd2(p, q, grid_cost(sizes)))


# -- what each query taught: distinct pairs, re-asks, intervals, queries to the worst modes -----


def distinct_failing_pairs(samples: np.ndarray, cells: np.ndarray, failed: np.ndarray, num_actions: int) -> int:
    """Distinct (sample, cell) pairs among the failing queries (a re-asked failing pair counts once)."""
    failed = np.asarray(failed, bool)
    pairs = np.asarray(samples, np.int64)[failed] * num_actions + np.asarray(cells, np.int64)[failed]
    return int(np.unique(pairs).size)


def reasked_share(samples: np.ndarray, cells: np.ndarray, num_actions: int) -> float:
    """Share of the ``Q`` queries that asked a (sample, cell) pair asked before; 0 for no queries."""
    pairs = np.asarray(samples, np.int64) * num_actions + np.asarray(cells, np.int64)
    return float(1.0 - np.unique(pairs).size / pairs.size) if pairs.size else 0.0


def interval_coverage(lower: np.ndarray, upper: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Share of the true top-``k`` cells (ties included) whose true rate lies inside the reported
    interval ``[lower, upper]`` (``(num_actions,)`` each; ``nan`` for a cell with no estimate,
    which counts as not covered)."""
    top = true_top_cells(truth, k)
    lo, hi = np.asarray(lower, np.float64)[top], np.asarray(upper, np.float64)[top]
    return float(np.mean((lo <= truth[top]) & (truth[top] <= hi)))


def queries_to_level(curve: list[tuple[int, float]], level: float = 0.9) -> float:
    """The queries after which a curve ``[(queries, value), ...]`` (ascending queries) first reaches
    ``level`` and stays there to its end; ``inf`` if its last point is below ``level`` (more
    than the budget: so medians over seeds rank a searcher that never gets there last)."""
    reached = float("inf")
    for queries, value in curve:
        if value >= level:
            reached = min(reached, float(queries))
        else:
            reached = float("inf")
    return reached


def top_k_margin(truth: np.ndarray, num_samples: int, k: int = 10, near: float = 0.02) -> dict:
    """How finely a ranking must resolve the true rates ``truth`` ``(num_actions,)`` (each a
    share of ``num_samples`` held-out samples) to score recall@``k`` = 1: ``{"k": k, "kth": the
    k-th worst rate, "next": the highest rate below it (ties with the k-th count as top-k, so
    they do not), "gap": kth - next, "gap_samples": the gap in failing samples, "near": how
    many cells' rates lie within ``near`` of the k-th (the k-th and its ties included)}``.
    A cell's rate is known to one sample only once the cell is asked on (nearly) every sample,
    so a gap of a few samples needs the cells near the boundary asked almost exhaustively,
    whatever the searcher."""
    truth = np.asarray(truth, np.float64)
    kth = float(np.sort(truth)[::-1][k - 1])
    below = truth[truth < kth]
    nxt = float(below.max()) if below.size else float("nan")
    gap = kth - nxt
    return {"k": k, "kth": kth, "next": nxt, "gap": gap, "gap_samples": int(round(gap * num_samples)) if below.size else 0,
            "near": int(np.sum(np.abs(truth - kth) < near))}


def reach_difference(first: np.ndarray, second: np.ndarray) -> float:
    """Two-sided p of the Mann-Whitney U test that per-seed queries-to-level ``first`` and
    ``second`` (``(seeds,)`` each; ``inf`` for a seed that never got there, ranked last) come from
    the same distribution; ``nan`` with fewer than two seeds on a side or all values equal. The
    seeds of two searchers are independent runs, so the test is unpaired."""
    from scipy import stats

    a, b = np.asarray(first, np.float64), np.asarray(second, np.float64)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size < 2 or b.size < 2 or np.unique(np.concatenate([a, b])).size < 2:
        return float("nan")
    both = np.concatenate([a, b])
    # a seed that never reached the level ranks after every one that did, and ties with the others that did not
    last = both[np.isfinite(both)].max() + 1.0 if np.isfinite(both).any() else 0.0
    a, b = np.where(np.isfinite(a), a, last), np.where(np.isfinite(b), b, last)
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def additive_logits(table: np.ndarray, ridge: float = 1e-2, sweeps: int = 200) -> np.ndarray:
    """The best *additive* logistic model of a truth table ``(N, A)`` bool: ``b + u_i + c_a``
    fitted by Newton sweeps on every answer (a small ridge keeps all-fail or never-fail rows
    finite). ``(N, A)`` logits."""
    y = np.asarray(table, np.float64)
    u, c = np.zeros(y.shape[0]), np.zeros(y.shape[1])
    for _ in range(sweeps):
        for axis in (1, 0):  # samples, then cells
            p = 1.0 / (1.0 + np.exp(-(u[:, None] + c[None, :])))
            resid, curv = (y - p).sum(axis=axis), (p * (1 - p)).sum(axis=axis)
            if axis == 1:
                u += np.clip((resid - ridge * u) / (curv + ridge), -2, 2)
            else:
                c += np.clip((resid - ridge * c) / (curv + ridge), -2, 2)
    return u[:, None] + c[None, :]


def additive_known_order(table: np.ndarray) -> np.ndarray:
    """Every (sample, cell) pair as a flat index ``sample * A + cell``, likeliest to fail first
    under :func:`additive_logits`: the order of a searcher that knew the best additive model of
    the truth and never re-asked. ``(N * A,)`` int64."""
    return np.argsort(-additive_logits(table).ravel(), kind="stable").astype(np.int64)


def oracle_order(table: np.ndarray, seed: int = 0) -> np.ndarray:
    """Every pair as a flat index, the failing ones first (each group in a random order): a
    searcher that knew every answer. ``(N * A,)`` int64."""
    flat = np.asarray(table, bool).ravel()
    order = np.random.default_rng(seed).permutation(flat.size)
    return order[np.argsort(~flat[order], kind="stable")].astype(np.int64)
