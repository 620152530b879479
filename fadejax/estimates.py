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
"""

from __future__ import annotations

import functools
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

    def ranked(self, k: int) -> np.ndarray:
        """Positions (into ``cells``) of the ``k`` highest estimated rates, best first (ties: lower cell)."""
        return np.lexsort((self.cells, -self.rate))[:k]

    def dense(self, num_actions: int) -> np.ndarray:
        """The estimated rate of every action, ``(num_actions,)``; unvisited cells get ``-inf``."""
        out = np.full(num_actions, -np.inf)
        out[self.cells] = self.rate
        return out


def cell_estimates(samples: np.ndarray, actions: np.ndarray, failed: np.ndarray, num_samples: int, sizes: tuple[int, ...],
                   config: PosteriorConfig | None = None, sweeps: int = 30) -> CellEstimates:
    """Fit the model to ``Q`` recorded queries (``samples``, ``actions`` ``(Q,)`` int, ``failed`` ``(Q,)`` bool)
    and estimate every visited cell's failure rate over all ``num_samples`` samples."""
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
    pairs, inverse = np.unique(pair, return_inverse=True)
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
    lower = np.clip(rate(score - half) - spread, 0.0, 1.0)
    upper = np.clip(rate(score + half) + spread, 0.0, 1.0)
    return CellEstimates(cells, rate(score), lower, upper)


def top_estimated_cells(samples: np.ndarray, actions: np.ndarray, failed: np.ndarray, num_samples: int, sizes: tuple[int, ...],
                        k: int) -> list[dict]:
    """The ``k`` cells with the highest estimated failure rate over all ``num_samples`` held-out
    samples (:func:`cell_estimates` of ``Q`` queries), worst first: ``[{"cell", "estimate",
    "interval", "samples_asked", "samples_failed"}]``, the last two over *distinct* samples
    (a re-asked pair counts once; it failed if it failed when last asked)."""
    est = cell_estimates(samples, actions, failed, num_samples, sizes)
    pair = np.asarray(actions, np.int64) * num_samples + np.asarray(samples, np.int64)
    pairs, last = np.unique(pair[::-1], return_index=True)  # the last answer of each pair
    last_failed = np.asarray(failed, bool)[::-1][last]
    asked = np.bincount(np.searchsorted(est.cells, pairs // num_samples), minlength=est.cells.size)
    failing = np.bincount(np.searchsorted(est.cells, pairs // num_samples), last_failed.astype(np.int64), est.cells.size).astype(np.int64)
    return [{"cell": int(est.cells[i]), "estimate": float(est.rate[i]), "interval": [float(est.lower[i]), float(est.upper[i])],
             "samples_asked": int(asked[i]), "samples_failed": int(failing[i])} for i in est.ranked(k)]


def report_recall(samples: np.ndarray, actions: np.ndarray, failed: np.ndarray, truth: np.ndarray, sizes: tuple[int, ...],
                  num_samples: int, k: int = 10) -> tuple[float, float]:
    """How well the report would rank the worst cells after these ``Q`` queries (``samples``,
    ``actions`` ``(Q,)`` int, ``failed`` ``(Q,)`` bool), against the true per-cell failure
    rates ``truth`` ``(num_actions,)``: ``(recall@k, Spearman over the visited cells)``.

    Recall@k is the share of the report's ``k`` top cells (by :func:`cell_estimates`) that
    are truly top-``k`` (ties with the ``k``-th worst count); Spearman is ``nan`` with fewer
    than three visited cells or a constant ranking."""
    from fadejax import metrics  # scipy and POT: only for those who score

    est = cell_estimates(samples, actions, failed, num_samples, sizes)
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
