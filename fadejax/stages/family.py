"""Collective debugging: how the models of a family fail alike and apart.

A family run asks every model the very same queries, so each record holds every model's
answer (``NAME.failed``). :func:`family_summary` turns them into what the report shows:

* each model's landscape over the report's view (exhaustive truth when ``fadejax
  landscape`` has computed it, else the records' per-model observed rates);
* each model's top modes: by its exhaustive rate, else by the shrinkage estimate of its
  own recorded answers (:mod:`fadejax.analysis.estimates`);
* the modes the whole family shares (every model fails at least ``threshold`` of the
  held-out samples there) and those specific to one model (it fails at least
  ``threshold``, every other model less), judged by each model's rate on every held-out
  sample (exhaustive, or re-evaluated) on the candidates: each model's top ``k`` cells,
  the ``k`` cells where the least-failing model fails most, for each model the ``k``
  cells where it fails most above the others, and the run's own (aggregate) modes;
* an agreement table: per pair of models, the share of their top-``k`` modes they have in
  common, and the Pearson correlation of their landscapes (over every cell with the truth;
  over the visited cells' estimates without).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Callable

import numpy as np

from fadejax.analysis.estimates import cell_estimates
from fadejax.core.landscapes import dense_view_mean, grouped_sum
from fadejax.engine.store.records import sparse_counts
from fadejax.core.spaces import format_value


@dataclass
class FamilySummary:
    """What the report's family section shows (JSON-able through :meth:`as_dict`).

    Attributes:
      models: the model names, in the config's order.
      source: ``"exhaustive"`` (every rate from ``ground_truth.json``) or ``"records"``.
      threshold: the failure rate at which a model counts as failing in a mode.
      clean_accuracy: model -> accuracy on the clean held-out samples (``None`` unknown).
      views: model -> its landscape over the view's first two axes (list of lists,
        ``(size_0, size_1)``; ``None`` where never visited without the truth).
      view_axes: the two (or one) axis names of ``views``.
      view_values: each of those axes' values, as labels.
      top: model -> its top modes, best first: ``{cell, concepts, rate}``.
      shared: modes every model fails, ``{cell, concepts, rates {model: rate}}``, worst
        least-failing model first.
      specific: modes one model fails and the others do not, ``{model, cell, concepts,
        rates, gap}`` (``gap``: its rate minus the highest other), largest gap first.
      agreement: per pair ``{a, b, top_overlap, correlation}``.
      rates: ``(cells (K,), rates (M, K))``: each model's rate over the cells it is judged on
        (the figures above come from them; not part of :meth:`as_dict`).
    """

    models: list[str]
    source: str
    threshold: float
    clean_accuracy: dict[str, float | None]
    views: dict[str, list]
    view_axes: list[str]
    view_values: list[list[str]]
    top: dict[str, list[dict[str, Any]]]
    shared: list[dict[str, Any]]
    specific: list[dict[str, Any]]
    agreement: list[dict[str, Any]]
    rates: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "rates"}


def family_summary(
    models: list[str],
    space,
    queried: tuple[np.ndarray, np.ndarray],
    failed_by_model: dict[str, np.ndarray],
    num_samples: int,
    *,
    truths: dict[str, np.ndarray] | None,
    rates_of: Callable[[np.ndarray], dict[str, np.ndarray]] | None,
    aggregate_modes: list[int],
    keep: list[int],
    fixed: dict[int, int],
    clean_accuracy: dict[str, float | None],
    top: int = 10,
    threshold: float = 0.5,
) -> FamilySummary:
    """The family section of a summary; see the module docstring.

    Args:
      models: model names.
      space: the run's :class:`fadejax.core.spaces.ConceptSpace`.
      queried: every recorded query's ``(samples (Q,), cells (Q,))``.
      failed_by_model: model -> ``(Q,)`` bool, its answer to each recorded query.
      num_samples: held-out samples ``N``.
      truths: model -> exhaustive rates ``(A,)``, or ``None``.
      rates_of: ``cells (K,) -> {model: rates (K,)}`` on every held-out sample (a
        re-evaluation), or ``None`` when the audit does not re-evaluate modes.
      aggregate_modes: the run's own (aggregate) top modes, as cells.
      keep: the report's kept axes (its first two are shown per model).
      fixed: the report's sliced axes, axis -> value index.
    """
    samples, cells = queried
    sizes = tuple(space.sizes)
    shown = list(keep[:2])
    # Each model's rate over the cells it can be judged on, one row per model: every cell
    # with the truth; without it the visited cells' estimates (the same cells for every
    # model: each query was asked of each).
    if truths is not None:
        universe, matrix, source = np.arange(space.num_actions), np.stack([truths[m] for m in models]), "exhaustive"
        views = {m: dense_view_mean(truths[m], sizes, shown, fixed).tolist() for m in models}
    else:
        estimates = [cell_estimates(samples, cells, failed_by_model[m], num_samples, sizes) for m in models]
        universe, matrix, source = estimates[0].cells, np.stack([e.rate for e in estimates]), "records"
        views = {m: _observed_view(cells, failed_by_model[m], sizes, shown, fixed) for m in models}
    best = [_best(row, universe, top) for row in matrix]
    ranked = {m: {int(c) for c in universe[best[i]]} for i, m in enumerate(models)}
    top_modes = {m: [_mode(space, int(universe[j]), float(matrix[i, j])) for j in best[i]] for i, m in enumerate(models)}

    # Candidates: each model's worst cells, the cells most specific to each model (its rate
    # minus the highest other), the cells worst for the least-failing model, and the run's
    # own modes; each then judged on its rates over every held-out sample.
    picked = set().union(*ranked.values()) | {int(c) for c in aggregate_modes}
    picked |= {int(c) for c in universe[_best(matrix.min(axis=0), universe, top)]}
    for i in range(len(models)):
        others = np.delete(matrix, i, axis=0).max(axis=0)
        picked |= {int(c) for c in universe[_best(matrix[i] - others, universe, top)]}
    candidates = np.asarray(sorted(picked), np.int64)
    if truths is None and rates_of is not None and candidates.size:
        rates = rates_of(candidates)  # re-evaluated on every held-out sample
    else:  # exhaustive; or the estimates, for an audit that does not re-evaluate modes
        rates = {m: matrix[i, np.searchsorted(universe, candidates)] for i, m in enumerate(models)}
    shared, specific = [], []
    for j, cell in enumerate(candidates.tolist()):
        per = {m: float(rates[m][j]) for m in models}
        if min(per.values()) >= threshold:
            shared.append({**_mode(space, cell, None), "rates": per})
        failing = [m for m in models if per[m] >= threshold]
        if len(failing) == 1:
            m = failing[0]
            gap = per[m] - max(r for other, r in per.items() if other != m)
            specific.append({"model": m, **_mode(space, cell, None), "rates": per, "gap": gap})
    shared.sort(key=lambda row: (-min(row["rates"].values()), row["cell"]))
    specific.sort(key=lambda row: (-row["gap"], row["cell"]))

    agreement = []
    for (i, a), (j, b) in combinations(enumerate(models), 2):
        overlap = len(ranked[a] & ranked[b]) / max(1, min(len(ranked[a]), len(ranked[b])))
        agreement.append({"a": a, "b": b, "top_overlap": overlap, "correlation": _correlation(matrix[i], matrix[j])})
    return FamilySummary(models=list(models), source=source, threshold=threshold, clean_accuracy=clean_accuracy, views=views,
                         view_axes=[space.names[a] for a in shown],
                         view_values=[[format_value(v) for v in space.axes[a].values] for a in shown], top=top_modes, shared=shared, specific=specific, agreement=agreement,
                         rates=(universe, matrix))


def _observed_view(cells: np.ndarray, failed: np.ndarray, sizes: tuple[int, ...], shown: list[int], fixed: dict[int, int]) -> list:
    """One model's observed failure rate over the view (nested lists; ``None`` where never visited)."""
    visited, visits, failures = sparse_counts(cells, failed)
    v = grouped_sum(visited, visits, sizes, shown, fixed)
    f = grouped_sum(visited, failures, sizes, shown, fixed)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(v > 0, f / np.maximum(v, 1), np.nan).astype(object)
    rate[v == 0] = None  # JSON null
    return rate.tolist()


def _best(score: np.ndarray, cells: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest ``score`` values (ties: lower cell)."""
    return np.lexsort((cells, -score))[:k]


def _mode(space, cell: int, rate: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"cell": cell, "concepts": space.describe(cell)}
    if rate is not None:
        row["rate"] = rate
    return row


def _correlation(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation; ``None`` when either landscape is constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])
