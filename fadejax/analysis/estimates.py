"""How likely each cell is to fail, estimated from a run's records with honest uncertainty.

A searcher that concentrates its queries leaves most cells with a few visits, and one that
picks hard samples inflates the raw rates of the cells it tried on them. Raw observed
rates then rank the worst cells badly. :func:`cell_estimates` fits the logistic model of
:mod:`fadejax.searchers.posterior` to every recorded query::

    logit P(fail | sample i, cell a) = b + u_i + sum_j w_j[a_j] + v_a

(Gaussian priors shrink each effect, so a cell with few visits borrows strength from its
axes and from how hard its samples were), and reports for each cell the failure rate on
the *whole* held-out set: the recorded answer for every (sample, cell) pair that was asked
and the model's ``sigmoid(b + u_i + s_a)`` (``s_a = sum_j w_j + v_a``) for every pair that
was not, with a 95% interval from the diagonal Laplace posterior of ``s_a`` (it narrows to
the exact rate as a cell's coverage of the held-out set grows). Every searcher's records
are ranked the same way, so Table 1's recall@10 measures the report's modes.

The model's predictions for unasked pairs are only as good as the model. A searcher that
asks a cell mostly on hard samples teaches it little about the easy ones, and a model that
is wrong about them puts the cell's interval where the truth is not. Queries whose sample
was a uniform draw (``drawn``: :attr:`fadejax.searchers.base.Choice.drawn`) are a
design-based check: their residuals ``answer - prediction`` estimate how far the model is
off on the samples of that cell not yet asked (the *difference estimator* of survey
sampling). The residuals are pooled by random-effects fits (between-group variance
``tau^2`` by the method of moments), first over the cells sharing each axis value (a model
that misjudges a rotation misjudges every cell with it) and then per cell, each level
shrunk towards the one before; the unasked part of the cell's rate moves by
``unasked * bias`` and its interval widens by the bias's uncertainty, which is the levels'
``tau`` for a cell with no draws of its own. Without draws
(a searcher that marks none) the estimate is model-based, and :attr:`CellEstimates.checked`
says so.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from fadejax.searchers.posterior import PosteriorConfig, PosteriorSampling

#: z of a two-sided 95% normal interval.
Z95 = 1.959964


@dataclass
class CellEstimates:
    """Estimates for ``cells`` ``(K,)`` (visited cells, ascending): ``rate``, ``lower``, ``upper`` ``(K,)`` in [0, 1]."""

    cells: np.ndarray
    rate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    #: ``(K,)`` int: distinct uniformly drawn samples asked under each cell (zeros without ``drawn``)
    drawn: np.ndarray | None = None
    #: the unasked parts were checked against uniformly drawn queries (see the module docstring)
    checked: bool = False

    def ranked(self, k: int) -> np.ndarray:
        """Positions (into ``cells``) of the ``k`` highest estimated rates, best first (ties: lower cell)."""
        return np.lexsort((self.cells, -self.rate))[:k]

    def rank_ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """The ranks (1 = worst) each cell could hold given the 95% intervals, ``(lowest, highest)``
        ``(K,)`` int each: above a cell certainly are the cells whose lower bound exceeds its upper
        bound, and possibly also those whose upper bound reaches its lower bound. A range wider
        than one rank says the queries have not settled the cell's place in the ranking (each
        interval on its own; not a simultaneous statement)."""
        k = self.cells.size
        lower = np.nan_to_num(self.lower, nan=0.0)  # an undefined bound allows any rate
        upper = np.nan_to_num(self.upper, nan=1.0)
        certainly_above = k - np.searchsorted(np.sort(lower), upper, side="right")
        possibly_at_or_above = k - np.searchsorted(np.sort(upper), lower, side="left")  # itself included
        return (1 + certainly_above).astype(np.int64), np.maximum(possibly_at_or_above, 1 + certainly_above).astype(np.int64)

    def dense(self, num_actions: int) -> np.ndarray:
        """The estimated rate of every action, ``(num_actions,)``; unvisited cells get ``-inf``."""
        out = np.full(num_actions, -np.inf)
        out[self.cells] = self.rate
        return out


#: Fewest distinct drawn pairs (outside complete cells) for the design-based check.
MIN_DRAWN = 20


def cell_estimates(samples: np.ndarray, actions: np.ndarray, failed: np.ndarray, num_samples: int, sizes: tuple[int, ...],
                   config: PosteriorConfig | None = None, sweeps: int = 30, drawn: np.ndarray | None = None) -> CellEstimates:
    """Fit the model to ``Q`` recorded queries (``samples``, ``actions`` ``(Q,)`` int, ``failed`` ``(Q,)`` bool)
    and estimate every visited cell's failure rate over all ``num_samples`` samples;
    ``drawn`` ``(Q,)`` bool marks the queries whose sample was a uniform draw (see the module docstring)."""
    samples = np.asarray(samples, np.int32)
    actions = np.asarray(actions, np.int32)
    failed = np.asarray(failed, bool)
    if samples.size == 0:
        empty = np.zeros(0)
        return CellEstimates(np.zeros(0, np.int64), empty, empty, empty)
    capacity = 1 << max(int(samples.size) - 1, 1).bit_length()  # a power of two: one compiled fit serves many calls
    model, fit = _fitter((config or PosteriorConfig()).model_copy(update={"sweeps": sweeps, "capacity": capacity}),
                         tuple(int(n) for n in sizes), int(num_samples))
    pad = capacity - samples.size
    state = model.init(jax.random.PRNGKey(0))
    state = state.replace(hist_sample=jnp.asarray(np.pad(samples, (0, pad))), hist_action=jnp.asarray(np.pad(actions, (0, pad))),
                          hist_failed=jnp.asarray(np.pad(failed, (0, pad)), jnp.float32), seen=jnp.int32(samples.size))
    if model.fit_on_pairs:  # the fit reads per-pair counts (PosteriorSampling.keep's, built here at once)
        queries = np.zeros((model.num_cells, int(num_samples)), np.float32)
        failures = np.zeros_like(queries)
        np.add.at(queries, (actions, samples), 1.0)
        np.add.at(failures, (actions, samples), failed.astype(np.float32))
        state = state.replace(pair_queries=jnp.asarray(queries), pair_failures=jnp.asarray(failures))
    state = fit(state)
    cells = np.unique(actions).astype(np.int64)
    score, var = _scores_of(model, state, cells)
    u = np.asarray(state.u, np.float64)
    base = float(state.bias) + u[:, None]  # (N, 1)
    # the sample x axis-value interactions of each visited cell, (N, K) (zero without them)
    inter = np.asarray(model._sample_cell_terms(state.z), np.float64)[:, cells] if model.interactions else np.zeros((1, cells.size))

    # The held-out set is finite: a (sample, cell) pair that was asked contributes what the
    # model answered (its mean, if it was asked more than once), and only the pairs never
    # asked are predicted. A cell asked on every sample is then known exactly.
    pair = actions.astype(np.int64) * num_samples + samples
    pairs, first_query, inverse = np.unique(pair, return_index=True, return_inverse=True)
    pair_mean = np.bincount(inverse, failed.astype(np.float64)) / np.bincount(inverse)
    pair_cell = np.searchsorted(cells, pairs // num_samples)
    observed_sum = np.bincount(pair_cell, pair_mean, cells.size)
    complete = np.bincount(pair_cell, minlength=cells.size) >= num_samples  # (K,) asked on every sample
    pair_base = base[pairs % num_samples, 0] + inter[pairs % num_samples if model.interactions else 0, pair_cell]

    def rate(s: np.ndarray) -> np.ndarray:
        predicted_all = np.zeros(s.size)
        for lo in range(0, s.size, 4096):  # bounded (N, chunk) memory
            predicted_all[lo : lo + 4096] = _sigmoid(base + inter[:, lo : lo + 4096] + s[None, lo : lo + 4096]).sum(axis=0)
        predicted_asked = np.bincount(pair_cell, _sigmoid(pair_base + s[pair_cell]), cells.size)
        # what the pairs never asked add; exactly 0 for a cell asked on every sample (the
        # difference of the two sums would leave float rounding, enough to put a known
        # rate outside its own zero-width interval)
        unasked = np.where(complete, 0.0, np.maximum(predicted_all - predicted_asked, 0.0))
        return (observed_sum + unasked) / num_samples

    # The interval: the posterior of s_a, widened by the predictive spread of the answers
    # not yet asked (each a Bernoulli draw even if s_a were known exactly).
    # Each unasked answer is a Bernoulli draw even if its probability were known, and its
    # probability is uncertain through its sample's effect u_i too (delta method: the slope
    # p (1 - p) times u_i's posterior variance), which matters for samples asked little.
    var_u = 1.0 / np.asarray(state.prec_u, np.float64)[:, None]  # (N, 1)
    p_all = np.zeros(cells.size)
    for lo in range(0, cells.size, 4096):
        q = _sigmoid(base + inter[:, lo : lo + 4096] + score[None, lo : lo + 4096])
        p_all[lo : lo + 4096] = (q * (1 - q) + (q * (1 - q)) ** 2 * var_u).sum(axis=0)
    q_asked = _sigmoid(pair_base + score[pair_cell])
    asked_var = q_asked * (1 - q_asked) + (q_asked * (1 - q_asked)) ** 2 * var_u[pairs % num_samples, 0]
    spread = Z95 * np.sqrt(np.where(complete, 0.0, np.maximum(p_all - np.bincount(pair_cell, asked_var, cells.size), 0.0))) / num_samples
    half = Z95 * np.sqrt(var)
    drawn_pairs = np.zeros(pairs.size, bool) if drawn is None else np.asarray(drawn, bool)[first_query]
    drawn_count = np.bincount(pair_cell, drawn_pairs, cells.size).astype(np.int64)
    check = drawn_pairs & ~complete[pair_cell]
    if check.sum() < MIN_DRAWN:
        lower = np.clip(rate(score - half) - spread, 0.0, 1.0)
        upper = np.clip(rate(score + half) + spread, 0.0, 1.0)
        return CellEstimates(cells, rate(score), lower, upper, drawn_count, False)
    # the design-based check: residuals of the drawn pairs, pooled by axis value, then per cell (module docstring)
    residual = pair_mean[check] - _sigmoid(pair_base[check] + score[pair_cell[check]])
    bias, bias_var = _structured_bias(residual, pair_cell[check], cells, sizes)
    unasked = np.where(complete, 0, num_samples - np.bincount(pair_cell, minlength=cells.size))
    shift = unasked * bias / num_samples
    spread = np.sqrt(spread**2 + (Z95 * unasked * np.sqrt(bias_var) / num_samples) ** 2)
    known = observed_sum / num_samples  # the rate if every unasked pair passed; + unasked share if all failed
    ceiling = known + unasked / num_samples
    estimate = np.clip(rate(score) + shift, known, ceiling)
    lower = np.clip(rate(score - half) + shift - spread, known, ceiling)
    upper = np.clip(rate(score + half) + shift + spread, known, ceiling)
    return CellEstimates(cells, estimate, np.minimum(lower, estimate), np.maximum(upper, estimate), drawn_count, True)


def _structured_bias(residual: np.ndarray, position: np.ndarray, cells: np.ndarray, sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each visited cell's model bias on its unasked samples and the bias's variance, ``(K,)``
    each, for ``cells`` ``(K,)`` (flat actions of the grid ``sizes``), from ``residual`` ``(R,)``
    of drawn pairs in ``cells[position]``: ``residual = mu + sum_j beta_j[a_j] + theta_a + noise``,
    one random-effects level per axis and one per cell, fitted level by level (each
    :func:`_shrunk_bias` on what the levels before it left). A model that misjudges an axis
    value (a rotation it has seen only on samples that fail anyway) is then corrected on
    every cell with that value from the draws they share, where a cell's own few draws
    would be shrunk away; the per-cell level keeps what is particular to a cell."""
    strides = [math.prod(sizes[j + 1 :]) for j in range(len(sizes))]
    left = np.asarray(residual, np.float64)
    bias, var = np.zeros(cells.size), np.zeros(cells.size)
    # one axis: its values are the cells, and a second level over the same groups would count
    # their bias's variance twice
    for stride, size in zip(strides, sizes) if len(sizes) > 1 else ():
        value = (cells // stride) % size  # (K,) each visited cell's value on this axis
        level, level_var = _shrunk_bias(left, value[position], size)
        left = left - level[value[position]]
        bias, var = bias + level[value], var + level_var[value]
    level, level_var = _shrunk_bias(left, position, cells.size)
    return bias + level, var + level_var


def _shrunk_bias(residual: np.ndarray, cell: np.ndarray, num_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's model bias on its unasked samples and the bias's variance, ``(num_cells,)``
    each, from ``residual`` ``(R,)`` (answer minus prediction of drawn pairs) in cells ``cell``
    ``(R,)``: a random-effects fit, ``residual = mu + theta_cell + noise``, ``theta ~ N(0, tau^2)``,
    with ``tau^2`` and the noise variance by the method of moments (one-way ANOVA, unbalanced)."""
    n = np.bincount(cell, minlength=num_cells).astype(np.float64)
    total = n.sum()
    cell_mean = np.bincount(cell, residual, num_cells) / np.maximum(n, 1.0)
    groups = int((n > 0).sum())
    within = float(((residual - cell_mean[cell]) ** 2).sum() / max(total - groups, 1.0))
    within = max(within, 1e-4)  # every residual equal (e.g. all exact): a floor, not a zero variance
    mu = float(residual.mean())
    between = float((n * (cell_mean - mu) ** 2).sum())
    tau2 = max(0.0, (between - (groups - 1) * within) / max(total - (n**2).sum() / total, 1e-9)) if groups > 1 else 0.0
    mu_var = within / total + (tau2 / groups if groups else 0.0)
    if tau2 == 0.0:
        return np.full(num_cells, mu), np.full(num_cells, mu_var)
    weight = tau2 / (tau2 + within / np.maximum(n, 1e-12))  # 0 for a cell without draws
    weight = np.where(n > 0, weight, 0.0)
    bias = mu + weight * (cell_mean - mu)
    theta_var = np.where(n > 0, 1.0 / (1.0 / tau2 + n / within), tau2)
    return bias, theta_var + (1.0 - weight) ** 2 * mu_var


def top_estimated_cells(samples: np.ndarray, actions: np.ndarray, failed: np.ndarray, num_samples: int, sizes: tuple[int, ...],
                        k: int, drawn: np.ndarray | None = None) -> list[dict]:
    """The ``k`` cells with the highest estimated failure rate over all ``num_samples`` held-out
    samples (:func:`cell_estimates` of ``Q`` queries), worst first: ``[{"cell", "estimate",
    "interval", "ranks", "samples_asked", "samples_failed", "samples_drawn", "checked"}]``
    (``ranks``: the lowest and highest rank its interval allows, :meth:`CellEstimates.rank_ranges`), the
    sample counts over *distinct* samples (a re-asked pair counts once; it failed if it failed
    when last asked); ``samples_drawn`` of them uniform draws, ``checked`` whether the
    estimate was checked on such draws (``drawn`` ``(Q,)``; see the module docstring)."""
    est = cell_estimates(samples, actions, failed, num_samples, sizes, drawn=drawn)
    pair = np.asarray(actions, np.int64) * num_samples + np.asarray(samples, np.int64)
    pairs, last = np.unique(pair[::-1], return_index=True)  # the last answer of each pair
    last_failed = np.asarray(failed, bool)[::-1][last]
    asked = np.bincount(np.searchsorted(est.cells, pairs // num_samples), minlength=est.cells.size)
    failing = np.bincount(np.searchsorted(est.cells, pairs // num_samples), last_failed.astype(np.int64), est.cells.size).astype(np.int64)
    lowest, highest = est.rank_ranges()
    return [{"cell": int(est.cells[i]), "estimate": float(est.rate[i]), "interval": [float(est.lower[i]), float(est.upper[i])],
             "ranks": [int(lowest[i]), int(highest[i])], "samples_asked": int(asked[i]), "samples_failed": int(failing[i]), "samples_drawn": int(est.drawn[i]),
             "checked": est.checked} for i in est.ranked(k)]


def report_recall(samples: np.ndarray, actions: np.ndarray, failed: np.ndarray, truth: np.ndarray, sizes: tuple[int, ...],
                  num_samples: int, k: int = 10, drawn: np.ndarray | None = None, config: PosteriorConfig | None = None) -> tuple[float, float]:
    """How well the report would rank the worst cells after these ``Q`` queries (``samples``,
    ``actions`` ``(Q,)`` int, ``failed`` ``(Q,)`` bool), against the true per-cell failure
    rates ``truth`` ``(num_actions,)``: ``(recall@k, Spearman over the visited cells)``.

    Recall@k is the share of the report's ``k`` top cells (by :func:`cell_estimates`) that
    are truly top-``k`` (ties with the ``k``-th worst count); Spearman is ``nan`` with fewer
    than three visited cells or a constant ranking. ``config``: the model's settings (default
    the report's own, :class:`PosteriorConfig`'s defaults)."""
    return ranking_quality(cell_estimates(samples, actions, failed, num_samples, sizes, drawn=drawn, config=config), truth, k)


def ranking_quality(est: CellEstimates, truth: np.ndarray, k: int = 10) -> tuple[float, float]:
    """:func:`report_recall`'s ``(recall@k, Spearman over the visited cells)`` of estimates
    already made, against the true rates ``truth`` ``(num_actions,)``."""
    from fadejax.analysis import metrics  # scipy and POT: only for those who score

    recall = metrics.recall_at_k(est.dense(truth.size), truth, min(k, truth.size))
    rho = metrics.spearman(est.rate, truth[est.cells]) if est.cells.size > 2 else float("nan")
    return recall, rho


@functools.lru_cache(maxsize=16)
def _fitter(config: PosteriorConfig, sizes: tuple[int, ...], num_samples: int):
    """The model and its jitted fit for one shape, built once (compiling costs ~1 s)."""
    model = PosteriorSampling(config, num_actions=int(np.prod(sizes)), obs_dim=1, num_samples=num_samples,
                              total_iterations=1, num_envs=1, sizes=sizes)
    return model, jax.jit(model._fit)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _scores_of(model: PosteriorSampling, state, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and variance of ``s_a`` for the given cells, ``(K,)`` each, without the product space."""
    cols = np.asarray(model._axis_columns(jnp.asarray(cells, jnp.int32)))  # (K, axes)
    w = np.asarray(state.w, np.float64)
    var_w = 1.0 / np.asarray(state.prec_w, np.float64)
    score = w[cols].sum(axis=1)
    var = var_w[cols].sum(axis=1)
    if model.cell_effects:
        score = score + np.asarray(state.v, np.float64)[cells]
        var = var + 1.0 / np.asarray(state.prec_v, np.float64)[cells]
    return score, var
