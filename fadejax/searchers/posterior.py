"""Posterior sampling over samples and cells: a Bayesian logistic model of "this query fails".

The searcher models every query it has paid for with an additive logistic model (a
Rasch / item-response model extended to a concept grid)::

    logit P(fail | sample i, cell a) = b + u_i + sum_j w_j[a_j] + v_a

``u_i`` is how hard sample ``i`` is, ``w_j[x]`` what value ``x`` of concept axis ``j``
does to every sample, and ``v_a`` what cell ``a`` does beyond its axes' sum (its
interactions). Gaussian priors (``sample_prior_std``, ``axis_prior_std``,
``cell_prior_std``) shrink each effect towards zero, so a rarely visited cell borrows
strength from its axes and its samples' measured difficulty. After each batch
``sweeps`` block-coordinate Newton sweeps (default one: each starts from the last batch's
fit, which a batch moves little) refit the maximum a posteriori estimate on every query
kept (a ring buffer of ``capacity`` queries, default the whole planned run), and the
diagonal of the Hessian gives a Laplace posterior. The likelihood depends on a query only
through its (sample, cell) pair, so where the ``(N, A)`` grid of pairs is tracked and no
larger than eight times the history, the fit reads per-pair counts of queries and
failures (kept up to date query by query) instead of the history: the same sums, as
dense reductions rather than gathers and scatters over every query (1.6-5x faster on a
CPU from 8 down to 1.3 pairs per kept query, see ``benchmarks/RESULTS.md``).

Each batch of ``B`` environments splits in two (environments keep their role by index):

* **find** (``1 - identify_fraction`` of them): Thompson sampling — each environment
  draws its own posterior sample, picks the likeliest-to-fail of ``sample_candidates``
  uniformly drawn samples under it, and the cell that draw rates worst. Exploration comes
  from the posterior's uncertainty, not from an epsilon. With ``fresh_pairs`` a find
  environment skips cells already asked on its sample (where the pairs are tracked).
* **identify** (``identify_fraction``): top-``k`` identification for the report — the
  environments are spread over the cells whose membership of the ``k`` worst is least
  settled (distance from the top-``k`` boundary in units of what is still unknown about the
  cell, see :meth:`PosteriorSampling._identify_cells`), each on a sample not yet asked under
  its cell. Without re-asks half of them *complete* the current top ``k`` on uniformly drawn
  samples (the draws the report's intervals are checked on), and half *settle* the
  boundary on the samples whose answer the model is least sure of (``settle_samples``).
  The held-out set is finite, so a cell asked on every sample is known exactly
  (:mod:`fadejax.analysis.estimates` uses that); the (sample, cell) pairs asked so far are
  kept as an ``(N, A)`` bitmap while ``N * A <= max_pairs_tracked``.

``action_scores`` is the posterior-mean log-odds that a query on a typical sample fails
(``b + mean(u) + sum_j w_j + v``), so eq. 10's landscape and the ranked modes follow the
posterior. Above ``max_cell_effects`` actions the cell residuals ``v`` are dropped and the
model is separable over axes: selection, eq. 10's marginals and top modes then never build
the product space (as the factored DQN head). Macroscopic only.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pydantic

from fadejax.core.fusion import materialize
from fadejax.core.landscapes import marginal_view, top_k_separable
from fadejax.searchers.base import Choice, Searcher, SearcherConfig, Transition


class PosteriorConfig(SearcherConfig):
    """Settings of :class:`PosteriorSampling` (defaults chosen by the Table 1 sweep, see RESULTS.md)."""

    kind: Literal["posterior"] = "posterior"
    sample_prior_std: pydantic.PositiveFloat = 1.5
    axis_prior_std: pydantic.PositiveFloat = 1.5
    cell_prior_std: pydantic.PositiveFloat = 1.0
    bias_prior_std: pydantic.PositiveFloat = 3.0
    #: prior std of the sample x axis-value interactions ``z_i[j, x]`` (this digit breaks under
    #: rotation, that one under darkness); 0 leaves them out (the additive model)
    interaction_prior_std: float = pydantic.Field(1.0, ge=0.0)
    #: Newton sweeps per batch, warm-started: one finds as many failures as two on every recorded
    #: and held-out audit and halves the update's time (benchmarks/RESULTS.md)
    sweeps: pydantic.PositiveInt = 1
    identify_fraction: float = pydantic.Field(0.25, ge=0.0, le=1.0)
    top_k: pydantic.PositiveInt = 10
    sample_candidates: pydantic.PositiveInt = 8
    posterior_scale: pydantic.PositiveFloat = 0.5
    capacity: pydantic.PositiveInt | None = None
    max_cell_effects: pydantic.PositiveInt = 65_536
    max_pairs_tracked: pydantic.PositiveInt = 1 << 22  # (N, A) bools kept in the state and its checkpoints
    #: never re-ask an answered (sample, cell) pair: ``auto`` where the audit is deterministic
    fresh_pairs: bool | Literal["auto"] = "auto"
    #: the fresh samples the identify environments settling the top-k boundary take (where pairs
    #: are fresh and tracked): ``uncertain``, those whose answer the model is least sure of (the
    #: completing half always draws uniformly, for the report's design-based check); ``uniform``,
    #: uniform draws as the completing half. Macroscopic only (``posterior_walk`` ignores it)
    settle_samples: Literal["uniform", "uncertain"] = "uncertain"


@flax.struct.dataclass
class PosteriorState:
    bias: jax.Array  # () float32
    u: jax.Array  # (N,) sample effects
    w: jax.Array  # (sum(sizes),) axis-value effects, axis 0's values first
    v: jax.Array  # (A,) cell residuals, or (1,) when dropped
    prec_u: jax.Array  # (N,) posterior precisions (Laplace, diagonal)
    prec_w: jax.Array  # (sum(sizes),)
    prec_v: jax.Array  # (A,) or (1,)
    z: jax.Array  # (N, sum(sizes)) sample x axis-value interactions, or (1, 1) when left out
    prec_z: jax.Array  # (N, sum(sizes)) or (1, 1)
    hist_sample: jax.Array  # (C,) int32
    hist_action: jax.Array  # (C,) int32
    hist_failed: jax.Array  # (C,) float32 in {0, 1}
    asked: jax.Array  # (N, A) bool, pairs asked so far ((1, 1) when too large to keep)
    seen: jax.Array  # () int32 queries kept so far (saturates at no bound; index = seen % C)
    pair_queries: jax.Array  # (A, N) float32, kept queries per (cell, sample) pair ((1, 1) when the fit reads the history)
    pair_failures: jax.Array  # (A, N) float32, kept failed queries per pair ((1, 1) likewise)


def _sigmoid(x: jax.Array) -> jax.Array:
    # The logistic function through tanh: the same values to float32 rounding, and on a CPU
    # XLA's tanh is about a third cheaper than its logistic (the fit's passes are sigmoids).
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


def _nth_true(mask: jax.Array, rank: jax.Array) -> jax.Array:
    """For each row of ``mask`` ``(R, N)`` bool, the column of its ``rank``-th ``True`` entry
    (``rank`` ``(R,)`` int32, from 0); ``-1`` for a row with ``rank`` or fewer. ``(R,)`` int32.

    Found in two steps over blocks of about ``sqrt(N)`` columns (which block, then where in
    it): a cumulative sum over every entry is several times slower on a CPU, and a sort of
    each row (``top_k``) slower still.
    """
    rows, n = mask.shape
    width = max(1, math.isqrt(n - 1) + 1)
    blocks = -(-n // width)
    grid = jnp.pad(mask, ((0, 0), (0, blocks * width - n))).reshape(rows, blocks, width).astype(jnp.int32)
    per_block = jnp.sum(grid, axis=-1)  # (R, blocks)
    through = jnp.cumsum(per_block, axis=-1)
    count = through[:, -1]
    found = count > rank
    rank = jnp.minimum(rank, jnp.maximum(count - 1, 0))  # (a row without one still searches in range)
    block = jnp.argmax(through > rank[:, None], axis=-1)
    before = jnp.take_along_axis(through - per_block, block[:, None], axis=-1)[:, 0]
    inside = jnp.take_along_axis(grid, block[:, None, None], axis=1)[:, 0]  # (R, width)
    column = jnp.argmax(jnp.cumsum(inside, axis=-1) > (rank - before)[:, None], axis=-1)
    return jnp.where(found, block * width + column, -1).astype(jnp.int32)


def _uniform_true(key: jax.Array, mask: jax.Array) -> jax.Array:
    """For each row of ``mask`` ``(R, N)`` bool, the column of one of its ``True`` entries,
    uniformly chosen; ``-1`` for a row with none. ``(R,)`` int32.

    One uniform draw per row picks the chosen entry's rank among the row's ``True`` ones
    (:func:`_nth_true` finds it)."""
    count = jnp.sum(mask, axis=-1)
    rank = jnp.floor(jax.random.uniform(key, (mask.shape[0],)) * count).astype(jnp.int32)
    return _nth_true(mask, jnp.minimum(rank, jnp.maximum(count - 1, 0)))


def _run_positions(cells: jax.Array) -> jax.Array:
    """For ``cells`` ``(I,)`` with equal cells next to each other, each entry's position in its
    run of equal cells: 0, 1, ... ``(I,)`` int32."""
    position = jnp.arange(cells.shape[0])
    starts = jnp.concatenate([jnp.ones(1, bool), cells[1:] != cells[:-1]])
    return (position - jax.lax.cummax(jnp.where(starts, position, 0))).astype(jnp.int32)


def _next_fresh(asked: jax.Array, cells: jax.Array, ordered: jax.Array, skip: int = 0) -> jax.Array:
    """Environments asking ``cells`` ``(I,)`` (equal cells next to each other), each cell's
    samples in the order it takes them ``ordered`` ``(I, N)`` (the same order on rows of one
    cell): the ``skip``-th environment of a run of equal cells takes its cell's first sample
    not yet ``asked`` ``(N, A)``, the next the second, and so on; ``-1`` past the last and for
    the run's first ``skip``. ``(I,)`` int32."""
    rank = _run_positions(cells) - skip
    pick = _nth_true(~asked[ordered, cells[:, None]], jnp.maximum(rank, 0))
    pick = jnp.where(rank >= 0, pick, -1)
    return jnp.where(pick >= 0, jnp.take_along_axis(ordered, jnp.maximum(pick, 0)[:, None], axis=1)[:, 0], -1).astype(jnp.int32)


def _spread_over_ambiguous(order: jax.Array, ambiguous: jax.Array, count: int) -> jax.Array:
    """``count`` environments over the ``ambiguous`` first cells of ``order`` (most ambiguous
    first): environment j takes the cell at rank ``floor((j / count)^2 * ambiguous)``, so the
    top of the list gets the most. ``(count,)`` int32."""
    ranks = jnp.floor(jnp.square(jnp.arange(count) / max(count, 1)) * ambiguous).astype(jnp.int32)
    return order[ranks].astype(jnp.int32)


def _newton_step(grad: jax.Array, hess: jax.Array) -> jax.Array:
    # A clipped Newton step: the logistic likelihood is concave, but a full step from a
    # far-off start can overshoot on the first sweep.
    return jnp.clip(grad / hess, -2.0, 2.0)


class PosteriorSampling(Searcher):
    """Thompson sampling with a Laplace posterior over sample, axis and cell effects."""

    supports_micro = False
    acts_on_samples = True
    config: PosteriorConfig
    reports = {
        "mean_axis_std": "posterior standard deviation of the axis-value effects w, averaged: the uncertainty left about the concepts",
        "bias": "the fitted intercept b (logit of a typical query's failure probability)",
        "kept": "queries in the fit (the most recent `capacity`)",
    }

    def __init__(self, config: PosteriorConfig, **kwargs):
        super().__init__(config, **kwargs)
        #: the concept grid the model is over: the actions here, the walked cells in micro mode
        self.grid = self.walk.grid if self.walk is not None else self.sizes
        self.num_cells = math.prod(self.grid)
        self.dense = self.num_cells <= config.max_cell_effects  # (B, cells) arrays are affordable
        self.cell_effects = self.dense and len(self.grid) > 1  # one axis: v_a would repeat w
        self.track_pairs = self.dense and self.num_samples * self.num_cells <= config.max_pairs_tracked
        #: asked pairs are never asked again (a deterministic audit answers them as before)
        self.fresh_pairs = self.deterministic if config.fresh_pairs == "auto" else bool(config.fresh_pairs)
        self.capacity = config.capacity or max(self.total_iterations * self.num_envs, self.num_envs)
        pairs = self.num_samples * self.num_cells
        #: the fit reads per-pair counts (dense reductions) rather than the history (gathers and
        #: scatters over every query): where the grid of pairs is at most eight times the
        #: history (a dense pass costs about a tenth per element of a gathered one here), and
        #: where a batch never overwrites its own slots of the ring (the counts forget what it drops)
        self.fit_on_pairs = self.track_pairs and pairs <= 8 * self.capacity and self.capacity >= self.num_envs
        #: sample x axis-value interactions are fitted on the per-pair counts only
        self.interactions = self.fit_on_pairs and config.interaction_prior_std > 0
        self._offsets = np.concatenate([[0], np.cumsum(self.grid)]).astype(np.int32)
        self._strides = jnp.asarray([math.prod(self.grid[i + 1 :]) for i in range(len(self.grid))], jnp.int32)
        self._sizes = jnp.asarray(self.grid, jnp.int32)

    # -- state ----------------------------------------------------------------------------
    def init(self, key: jax.Array) -> PosteriorState:
        c = self.config
        n_v = self.num_cells if self.cell_effects else 1
        n_w = int(self._offsets[-1])
        counts = (self.num_cells, self.num_samples) if self.fit_on_pairs else (1, 1)  # cell-major: the sums run along rows
        return PosteriorState(
            bias=jnp.float32(0.0),
            u=jnp.zeros(self.num_samples, jnp.float32), w=jnp.zeros(n_w, jnp.float32), v=jnp.zeros(n_v, jnp.float32),
            prec_u=jnp.full(self.num_samples, c.sample_prior_std**-2, jnp.float32),
            prec_w=jnp.full(n_w, c.axis_prior_std**-2, jnp.float32),
            prec_v=jnp.full(n_v, c.cell_prior_std**-2, jnp.float32),
            z=jnp.zeros((self.num_samples, n_w) if self.interactions else (1, 1), jnp.float32),
            prec_z=jnp.full((self.num_samples, n_w) if self.interactions else (1, 1), (c.interaction_prior_std or 1.0) ** -2, jnp.float32),
            hist_sample=jnp.zeros(self.capacity, jnp.int32), hist_action=jnp.zeros(self.capacity, jnp.int32),
            hist_failed=jnp.zeros(self.capacity, jnp.float32), seen=jnp.int32(0),
            asked=jnp.zeros((self.num_samples, self.num_cells) if self.track_pairs else (1, 1), bool),
            pair_queries=jnp.zeros(counts, jnp.float32), pair_failures=jnp.zeros(counts, jnp.float32),
        )

    # -- the model ------------------------------------------------------------------------
    def _axis_columns(self, action: jax.Array) -> jax.Array:
        """Columns of ``w`` each action uses, ``(..., num_axes)``."""
        cells = (action[..., None] // self._strides) % self._sizes
        return cells + jnp.asarray(self._offsets[:-1], jnp.int32)

    def _cell_scores(self, w: jax.Array, v: jax.Array) -> jax.Array:
        """``sum_j w_j[a_j] + v_a`` for every cell, ``(..., cells)``; ``w`` ``(..., sum(grid))``."""
        total = jnp.zeros(w.shape[:-1] + (1,) * len(self.grid), w.dtype)
        for j, size in enumerate(self.grid):
            part = w[..., self._offsets[j] : self._offsets[j + 1]]
            shape = list(w.shape[:-1]) + [1] * len(self.grid)
            shape[len(w.shape) - 1 + j] = size
            total = total + part.reshape(shape)
        total = total.reshape(w.shape[:-1] + (self.num_cells,))
        return total + v if self.cell_effects else total

    def _fit(self, s: PosteriorState) -> PosteriorState:
        """``sweeps`` block-coordinate Newton sweeps of the MAP estimate on the kept queries
        (from the per-pair counts where they are kept, else from the history)."""
        return self._fit_pairs(s) if self.fit_on_pairs else self._fit_history(s)

    def _fit_pairs(self, s: PosteriorState) -> PosteriorState:
        """:meth:`_fit_history`'s sweeps on the ``(A, N)`` per-pair counts: each block's
        gradient and curvature are sums of ``failures - queries * p`` and ``queries * p (1 - p)``
        over the pairs, so every pass is a dense sigmoid and reductions, no gather or scatter."""
        c = self.config
        n, k = s.pair_queries, s.pair_failures  # (A, N)
        inter = self.interactions

        def residuals(bias, u, w, v, z):
            eta = bias + self._cell_scores(w, v)[:, None] + u[None, :]
            if inter:
                eta = eta + self._sample_cell_terms(z).T
            p = _sigmoid(eta)
            return k - n * p, n * p * (1.0 - p)

        def sweep(carry, _):
            bias, u, w, v, z, _, _, prec_v, prec_z = carry
            resid, curv = residuals(bias, u, w, v, z)
            h = jnp.sum(curv) + c.bias_prior_std**-2
            bias = bias + _newton_step(jnp.sum(resid) - bias / c.bias_prior_std**2, h)
            resid, curv = residuals(bias, u, w, v, z)
            prec_u = jnp.sum(curv, axis=0) + c.sample_prior_std**-2
            u = u + _newton_step(jnp.sum(resid, axis=0) - u / c.sample_prior_std**2, prec_u)
            precs = []
            for j in range(len(self.grid)):  # one axis at a time, as in the history's fit
                resid, curv = residuals(bias, u, w, v, z)
                others = tuple(a for a in range(len(self.grid)) if a != j)
                lo, hi = int(self._offsets[j]), int(self._offsets[j + 1])
                # over the samples first, then over the other axes of the (A,) cell sums
                hess = jnp.sum(jnp.sum(curv, axis=1).reshape(self.grid), axis=others) + c.axis_prior_std**-2
                grad = jnp.sum(jnp.sum(resid, axis=1).reshape(self.grid), axis=others) - w[lo:hi] / c.axis_prior_std**2
                part = w[lo:hi] + _newton_step(grad, hess)
                w = jnp.concatenate([w[:lo], part, w[hi:]])
                precs.append(hess)
            prec_w = jnp.concatenate(precs)
            if self.cell_effects:
                resid, curv = residuals(bias, u, w, v, z)
                prec_v = jnp.sum(curv, axis=1) + c.cell_prior_std**-2
                v = v + _newton_step(jnp.sum(resid, axis=1) - v / c.cell_prior_std**2, prec_v)
            if inter:  # each sample's own effect of each axis value, one axis at a time
                zprecs = []
                for j in range(len(self.grid)):
                    resid, curv = residuals(bias, u, w, v, z)
                    others = tuple(a for a in range(len(self.grid)) if a != j)
                    lo, hi = int(self._offsets[j]), int(self._offsets[j + 1])
                    shape = self.grid + (self.num_samples,)
                    hess = jnp.sum(curv.reshape(shape), axis=others).T + c.interaction_prior_std**-2  # (N, size_j)
                    grad = jnp.sum(resid.reshape(shape), axis=others).T - z[:, lo:hi] / c.interaction_prior_std**2
                    z = jnp.concatenate([z[:, :lo], z[:, lo:hi] + _newton_step(grad, hess), z[:, hi:]], axis=1)
                    zprecs.append(hess)
                prec_z = jnp.concatenate(zprecs, axis=1)
            return (bias, u, w, v, z, prec_u, prec_w, prec_v, prec_z), None

        init = (s.bias, s.u, s.w, s.v, s.z, s.prec_u, s.prec_w, s.prec_v, s.prec_z)
        (bias, u, w, v, z, prec_u, prec_w, prec_v, prec_z), _ = jax.lax.scan(sweep, init, None, length=c.sweeps)
        return s.replace(bias=bias, u=u, w=w, v=v, z=z, prec_u=prec_u, prec_w=prec_w, prec_v=prec_v, prec_z=prec_z)

    def _sample_cell_terms(self, z: jax.Array) -> jax.Array:
        """``sum_j z_i[j, a_j]`` for every sample and cell, ``(N, A)``, from ``z`` ``(N, sum(grid))``."""
        total = jnp.zeros((z.shape[0],) + (1,) * len(self.grid), z.dtype)
        for j, size in enumerate(self.grid):
            shape = [z.shape[0]] + [1] * len(self.grid)
            shape[1 + j] = size
            total = total + z[:, self._offsets[j] : self._offsets[j + 1]].reshape(shape)
        return total.reshape(z.shape[0], self.num_cells)

    def _fit_history(self, s: PosteriorState) -> PosteriorState:
        """``sweeps`` block-coordinate Newton sweeps of the MAP estimate on the kept queries'
        history: per query, gathers of its effects and scatters of its gradient."""
        c = self.config
        valid = (jnp.arange(self.capacity) < s.seen).astype(jnp.float32)
        sample, action, y = s.hist_sample, s.hist_action, s.hist_failed  # action: the queried cell
        cols = self._axis_columns(action)  # (C, axes)
        n_w = int(self._offsets[-1])

        def logits(bias, u, w, v):
            eta = bias + u[sample] + jnp.sum(w[cols], axis=-1)
            return eta + v[action] if self.cell_effects else eta

        def block(param, index, size, prior_var, eta_fn):
            p = _sigmoid(eta_fn())
            resid, curv = valid * (y - p), valid * p * (1.0 - p)
            grad = jax.ops.segment_sum(resid, index, size) - param / prior_var
            hess = jax.ops.segment_sum(curv, index, size) + 1.0 / prior_var
            return param + _newton_step(grad, hess), hess

        def sweep(carry, _):
            bias, u, w, v, _, _, _ = carry
            p = _sigmoid(logits(bias, u, w, v))
            g = jnp.sum(valid * (y - p)) - bias / c.bias_prior_std**2
            h = jnp.sum(valid * p * (1 - p)) + c.bias_prior_std**-2
            bias = bias + _newton_step(g, h)
            u, prec_u = block(u, sample, self.num_samples, c.sample_prior_std**2, lambda: logits(bias, u, w, v))
            prec_w = jnp.zeros_like(w)
            for j in range(len(self.grid)):  # one axis at a time: its values share every query's other terms
                p = _sigmoid(logits(bias, u, w, v))
                resid, curv = valid * (y - p), valid * p * (1.0 - p)
                grad = jax.ops.segment_sum(resid, cols[:, j], n_w) - w / c.axis_prior_std**2
                hess = jax.ops.segment_sum(curv, cols[:, j], n_w) + c.axis_prior_std**-2
                lo, hi = int(self._offsets[j]), int(self._offsets[j + 1])
                mask = (jnp.arange(n_w) >= lo) & (jnp.arange(n_w) < hi)
                w = jnp.where(mask, w + _newton_step(grad, hess), w)
                prec_w = jnp.where(mask, hess, prec_w)
            if self.cell_effects:
                v, prec_v = block(v, action, self.num_cells, c.cell_prior_std**2, lambda: logits(bias, u, w, v))
            else:
                prec_v = carry[6]
            return (bias, u, w, v, prec_u, prec_w, prec_v), None

        init = (s.bias, s.u, s.w, s.v, s.prec_u, s.prec_w, s.prec_v)
        (bias, u, w, v, prec_u, prec_w, prec_v), _ = jax.lax.scan(sweep, init, None, length=c.sweeps)
        return s.replace(bias=bias, u=u, w=w, v=v, prec_u=prec_u, prec_w=prec_w, prec_v=prec_v)

    def keep(self, state: PosteriorState, sample: jax.Array, cell: jax.Array, failed: jax.Array) -> PosteriorState:
        """``state`` with ``Q`` more queries kept (``sample``, ``cell`` ``(Q,)`` int32, ``failed``
        ``(Q,)`` bool): written to the history's ring (over the oldest once it is full) and,
        where the fit reads them, to the per-pair counts (the overwritten queries taken out)."""
        q = sample.shape[0]
        order = state.seen + jnp.arange(q)
        slots = order % self.capacity
        failed = failed.astype(jnp.float32)
        if self.fit_on_pairs:
            dropped = (order >= self.capacity).astype(jnp.float32)  # the slot held a query kept earlier
            old = (state.hist_action[slots], state.hist_sample[slots])
            state = state.replace(
                pair_queries=state.pair_queries.at[old].add(-dropped).at[cell, sample].add(1.0),
                pair_failures=state.pair_failures.at[old].add(-dropped * state.hist_failed[slots]).at[cell, sample].add(failed),
            )
        state = state.replace(
            hist_sample=state.hist_sample.at[slots].set(sample),
            hist_action=state.hist_action.at[slots].set(cell),
            hist_failed=state.hist_failed.at[slots].set(failed),
            seen=jnp.minimum(state.seen + q, jnp.int32(2**30)),
        )
        if self.track_pairs:
            state = state.replace(asked=state.asked.at[sample, cell].set(True))
        return state

    def mark_pending(self, state: PosteriorState, sample: jax.Array, cell: jax.Array) -> PosteriorState:
        """The pairs being asked count as asked, so the next proposal does not ask them again."""
        return state.replace(asked=state.asked.at[sample, cell].set(True)) if self.track_pairs else state

    def update(self, state: PosteriorState, transition: Transition, key: jax.Array) -> tuple[PosteriorState, dict[str, jax.Array]]:
        cell = transition.action if transition.cell is None else transition.cell
        state = self._fit(self.keep(state, transition.sample, cell, transition.failed))
        scale = jnp.sqrt(1.0 / state.prec_w)
        return state, {"mean_axis_std": jnp.mean(scale), "bias": state.bias, "kept": jnp.minimum(state.seen, self.capacity)}

    # -- acting ---------------------------------------------------------------------------
    def _num_identify(self, batch: int) -> int:
        return int(round(self.config.identify_fraction * batch)) if self.dense else 0

    def _candidate_draws(self, state: PosteriorState, k_cand: jax.Array, k_noise: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
        """``sample_candidates`` uniformly drawn samples per environment and a posterior draw of
        each one's ``u`` (scaled by ``posterior_scale``): ``(candidates, draws)``, ``(batch, K)`` each."""
        c = self.config
        cand = materialize(jax.random.randint(k_cand, (batch, c.sample_candidates), 0, self.num_samples, dtype=jnp.int32))
        noise = materialize(jax.random.normal(k_noise, cand.shape))  # (materialize: see act)
        return cand, state.u[cand] + c.posterior_scale * noise / jnp.sqrt(state.prec_u[cand])

    def select_samples(self, state: PosteriorState, key: jax.Array, batch: int) -> jax.Array:
        """Find environments: the likeliest-to-fail of ``sample_candidates`` uniform draws under
        each environment's own posterior sample of ``u``. Identify environments: a sample not
        yet asked under the environment's identify cell (uniform among those)."""
        k_cand, k_noise, k_fresh = jax.random.split(key, 3)
        cand, draw = self._candidate_draws(state, k_cand, k_noise, batch)
        chosen = jnp.take_along_axis(cand, jnp.argmax(draw, axis=-1)[:, None], axis=-1)[:, 0]
        n_id = self._num_identify(batch)
        if n_id == 0:
            return chosen
        uniform = cand[:n_id, 0]
        if self.track_pairs:
            fresh = ~state.asked[:, self._identify_cells(state, n_id)].T  # (n_id, N): samples not yet asked under each cell
            pick = _uniform_true(k_fresh, fresh)
            uniform = jnp.where(pick >= 0, pick, uniform)
        return jnp.concatenate([uniform, chosen[n_id:]])

    @property
    def marks_drawn(self) -> bool:
        return self.dense and self.config.identify_fraction > 0

    def choose(self, state: PosteriorState, k_select: jax.Array, k_act: jax.Array, batch: int, observe) -> Choice:
        """With fresh pairs (and the pairs tracked), the batch's ``B`` (sample, cell) pairs are
        chosen jointly, all distinct and none asked before (while any is left):

        * identify environments: their cells as :meth:`_identify_cells` ranks them, each on a
          sample not yet asked under its cell (environments sharing a cell get different
          samples): a uniform draw, except that with ``settle_samples: uncertain`` the half
          settling the top-``k`` boundary takes the samples the model is least sure of
          (:meth:`_uncertain_samples`), after the completing half has drawn;
        * find environments: one posterior draw of ``u_i + s_a`` over the whole ``(N, A)`` grid
          (Thompson sampling for a batch), and the ``B - n_id`` pairs it rates likeliest to fail
          among those not yet asked: the model's best guesses at failures not yet found; an
          identify environment whose cell has no fresh sample left takes the next of these.

        Otherwise samples first, then cells (:meth:`Searcher.choose`), and every identify
        environment's sample is a uniform draw. ``drawn`` marks the identify environments
        whose sample is a uniform draw; the find environments' never are."""
        n_id = self._num_identify(batch)
        if not (self.fresh_pairs and self.track_pairs):
            chosen = super().choose(state, k_select, k_act, batch, observe)
            return chosen._replace(drawn=jnp.arange(batch) < n_id)
        k_id, k_u, k_w, k_v = jax.random.split(k_select, 4)
        n, cells_n = self.num_samples, self.num_cells
        asked = state.asked
        uniform = jnp.ones(n_id, bool)  # identify environments whose sample is a uniform draw
        if n_id and self.config.settle_samples == "uncertain":
            # the completing environments draw uniformly first; the settling ones then take the
            # fresh samples the model is least sure of (never a pair a completing one took). An
            # odd environment completes: a lone identify environment is then still a uniform draw.
            settle_cells, top_cells = self._identify_halves(state, n_id, settle=n_id // 2)
            k_top, k_settle = jax.random.split(k_id)
            top_samples = self._fresh_samples(state.asked, k_top, top_cells)
            asked = asked.at[jnp.where(top_samples >= 0, top_samples, n), top_cells].set(True, mode="drop")
            id_cells = jnp.concatenate([settle_cells, top_cells])
            id_samples = jnp.concatenate([self._uncertain_samples(state, asked, k_settle, settle_cells), top_samples])
            uniform = jnp.arange(n_id) >= settle_cells.shape[0]
        elif n_id:
            id_cells = self._identify_cells(state, n_id)
            id_samples = self._fresh_samples(state.asked, k_id, id_cells)
        if n_id:
            placed = id_samples >= 0
            asked = asked.at[jnp.where(placed, id_samples, n), id_cells].set(True, mode="drop")
        scale = self.config.posterior_scale
        # the draws get buffers of their own (see act): fused into the (N, A) grid, each would be drawn A times
        u = materialize(state.u + scale * jax.random.normal(k_u, state.u.shape) / jnp.sqrt(state.prec_u))
        w = materialize(state.w + scale * jax.random.normal(k_w, state.w.shape) / jnp.sqrt(state.prec_w))
        v = materialize(state.v + scale * jax.random.normal(k_v, state.v.shape) / jnp.sqrt(state.prec_v))
        drawn = u[:, None] + self._cell_scores(w, v)[None, :]  # (N, A)
        if self.interactions:
            k_z = jax.random.fold_in(k_w, 1)
            drawn = drawn + self._sample_cell_terms(materialize(state.z + scale * jax.random.normal(k_z, state.z.shape) / jnp.sqrt(state.prec_z)))
        # pairs already asked sink below every fresh one (and keep their order among themselves)
        drawn = jnp.where(asked, drawn - 1e6, drawn).reshape(-1)
        _, best = jax.lax.top_k(drawn, min(batch, n * cells_n))  # distinct pairs, likeliest first
        best = jnp.pad(best, (0, batch - best.shape[0]), mode="wrap")
        find_sample, find_cell = (best // cells_n).astype(jnp.int32), (best % cells_n).astype(jnp.int32)
        if n_id == 0:
            return Choice(find_sample, find_cell, observe(find_sample), jnp.zeros(batch, bool))
        # an identify environment whose cell has no fresh sample left takes the next find pair
        # (counted over the unplaced ones only: by position, a late one could reach past the
        # fresh pairs while fresh ones were left)
        spare = batch - n_id + jnp.cumsum(~placed) - 1
        sample = jnp.concatenate([jnp.where(placed, id_samples, find_sample[spare]), find_sample[: batch - n_id]])
        action = jnp.concatenate([jnp.where(placed, id_cells, find_cell[spare]), find_cell[: batch - n_id]])
        return Choice(sample, action, observe(sample), jnp.concatenate([placed & uniform, jnp.zeros(batch - n_id, bool)]))

    def _fresh_samples(self, asked: jax.Array, key: jax.Array, cells: jax.Array, skip: int = 0) -> jax.Array:
        """For identify cells ``(I,)`` (equal cells next to each other, as :meth:`_identify_cells`
        returns them), a uniformly drawn sample not yet ``asked`` ``(N, A)`` under each, distinct
        among the environments sharing a cell; ``-1`` where the cell has too few fresh samples,
        and for the first ``skip`` environments of each cell. ``(I,)`` int32."""
        # One uniformly random order of the samples per cell, shared by the environments of
        # the cell, each of which takes the next fresh sample in it. The orders come from one
        # uniform score per sample, shifted (mod 1) by one uniform per cell: under each cell the
        # shifted scores are independent uniforms, so its order is uniformly random, and it is
        # the samples by descending score, a rotation of one order (N + I draws and one sort of
        # N, where a vector of draws and a sort per cell cost I times as much).
        base, shift = self._cell_uniforms(key, cells)
        by_base = jnp.argsort(-base)  # samples, highest score first
        # under cell c the samples with base >= 1 - shift_c wrap round to the lowest scores: its
        # order starts at the first sample below them
        wrapped = jnp.sum(base[None, :] >= 1.0 - shift[:, None], axis=1)  # (I,)
        rotation = (wrapped[:, None] + jnp.arange(self.num_samples)[None, :]) % self.num_samples  # (I, N) positions in by_base
        return _next_fresh(asked, cells, by_base[rotation], skip)

    def _cell_uniforms(self, key: jax.Array, cells: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One uniform per sample ``(N,)`` and one per cell of ``cells`` ``(I,)`` (the same for
        equal cells): ``(base + shift) mod 1`` are independent uniforms under each cell."""
        k_base, k_shift = jax.random.split(key)
        base = jax.random.uniform(k_base, (self.num_samples,))
        return base, jax.vmap(lambda c: jax.random.uniform(jax.random.fold_in(k_shift, c), ()))(cells)

    #: a cell's settling environments beyond this many take uniformly drawn fresh samples (a
    #: sort of every row's samples costs a CPU several times a top-k of its first few)
    _most_uncertain = 16

    def _uncertain_samples(self, state: PosteriorState, asked: jax.Array, key: jax.Array, cells: jax.Array) -> jax.Array:
        """For identify cells ``(I,)`` (equal cells next to each other), the samples not yet
        ``asked`` ``(N, A)`` whose answer under the cell the model is least sure of, largest
        ``p (1 - p)`` first, ``p`` at the fitted (posterior-mean) logit (ties broken at random),
        distinct among the environments sharing a cell; ``-1`` where none is left. ``(I,)``
        int32. A cell's environments past the first :attr:`_most_uncertain` take uniformly
        drawn fresh samples among the rest.

        The cell's unknown failure count is the sum of its unasked samples' answers; under the
        model each contributes ``p (1 - p)`` to its variance, so these are the answers that
        move the cell's place against the top-``k`` boundary most."""
        eta = state.bias + state.u[None, :] + self._cell_scores(state.w, state.v)[cells][:, None]  # (I, N)
        if self.interactions:
            eta = eta + jnp.sum(state.z[:, self._axis_columns(cells)], axis=-1).T
        p = _sigmoid(eta)
        k_tie, k_rest = jax.random.split(key)
        base, shift = self._cell_uniforms(k_tie, cells)  # a tie-break shared by a cell's environments
        fresh = ~asked[:, cells].T  # (I, N)
        score = jnp.where(fresh, p * (1.0 - p) + 1e-4 * ((base[None, :] + shift[:, None]) % 1.0), -1.0)
        most = min(self._most_uncertain, self.num_samples)
        best, order = jax.lax.top_k(score, most)  # (I, most): each row's least certain fresh samples
        rank = _run_positions(cells)
        at = jnp.minimum(rank, most - 1)[:, None]
        pick = jnp.where(jnp.take_along_axis(best, at, axis=1)[:, 0] >= 0.0, jnp.take_along_axis(order, at, axis=1)[:, 0], -1)
        # the cell's first `most` are taken (by its first environments) or none is fresh: the rest draw among the others
        taken = asked.at[jnp.where(best >= 0.0, order, self.num_samples), cells[:, None]].set(True, mode="drop")
        # no crowded cell: no second pass (under a vmap over seeds, as the fused loop runs, the
        # cond becomes a select and the pass runs every batch)
        rest = jax.lax.cond(jnp.any(rank >= most), lambda: self._fresh_samples(taken, k_rest, cells, skip=most),
                            lambda: jnp.full(cells.shape, -1, jnp.int32))
        return jnp.where(rank < most, pick, rest).astype(jnp.int32)

    def _draw_w(self, state: PosteriorState, key: jax.Array, batch: int) -> jax.Array:
        noise = jax.random.normal(key, (batch,) + state.w.shape)
        return state.w + self.config.posterior_scale * noise / jnp.sqrt(state.prec_w)

    def act(self, state: PosteriorState, obs: jax.Array, key: jax.Array, sample: jax.Array | None = None) -> jax.Array:
        batch = obs.shape[0]
        k_w, k_v, _ = jax.random.split(key, 3)  # the third key is unused
        if not self.dense:  # separable: the draw's worst cell is each axis' worst value
            w_draw = self._draw_w(state, k_w, batch)
            cells = [jnp.argmax(w_draw[:, self._offsets[j] : self._offsets[j + 1]], axis=-1) for j in range(len(self.grid))]
            return jnp.sum(jnp.stack(cells, -1) * self._strides, axis=-1).astype(jnp.int32)
        n_id = self._num_identify(batch)
        finders = batch - n_id  # only the find environments draw (the identify ones ask fixed cells)
        # The draws get buffers of their own: fused into the cell scores, XLA would
        # recompute every random number at each of its reads (2x the cost of act on a CPU).
        w_draw = materialize(self._draw_w(state, k_w, finders))
        v_draw = materialize(state.v + self.config.posterior_scale * jax.random.normal(k_v, (finders,) + state.v.shape) / jnp.sqrt(state.prec_v))
        drawn = self._cell_scores(w_draw, v_draw)  # (B - n_id, A); v is (1,) and broadcasts when dropped
        if self.track_pairs and sample is not None and self.fresh_pairs:
            # a pair already asked teaches nothing new (and, where perturbations are
            # deterministic, answers as before): ask this sample about its worst fresh cell
            drawn = jnp.where(state.asked[sample[n_id:]], drawn - 1e4, drawn)
        find = jnp.argmax(drawn, axis=-1).astype(jnp.int32)
        if n_id == 0:
            return find
        return jnp.concatenate([self._identify_cells(state, n_id), find])

    def _identify_cells(self, state: PosteriorState, count: int, eligible: jax.Array | None = None) -> jax.Array:
        """The cells the ``count`` identify environments ask, ``(count,)``: a deterministic
        function of the state, so ``select_samples`` and ``act`` agree on them.

        Each cell's distance from the top-``k`` boundary (midway between the posterior means
        of the ``k``-th and ``k+1``-th worst cells) in units of what is still unknown about it:
        its posterior standard deviation times the share of the held-out set not yet asked
        under it (the set is finite: a cell asked on every sample is settled). The
        ``count`` environments are spread over the most ambiguous cells, the most ambiguous
        getting the most. Only ``eligible`` cells ``(cells,) bool`` are ranked and asked, if given.

        Without re-asks (fresh pairs), half of them complete the current top ``k`` instead
        (:meth:`_identify_halves`); sorted, so environments sharing a cell sit together."""
        if not (self.fresh_pairs and self.track_pairs):
            order, ambiguous, _, _ = self._boundary_order(state, eligible)
            return _spread_over_ambiguous(order, ambiguous, count)
        settle, top = self._identify_halves(state, count, eligible)
        return jnp.sort(jnp.concatenate([settle, top])).astype(jnp.int32)

    def _boundary_order(self, state: PosteriorState, eligible: jax.Array | None) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """The cells, most ambiguous about their top-``k`` membership first (see
        :meth:`_identify_cells`), ``(A,)``; how many are ambiguous (within two units), ``()``;
        the posterior-mean cell scores ``(A,)`` and each cell's share of samples asked ``(A,)``."""
        k = min(self.config.top_k, self.num_cells - 1)
        mean = self._cell_scores(state.w, state.v)  # (A,)
        if eligible is not None:
            mean = jnp.where(eligible, mean, -1e9)
        best = jax.lax.top_k(mean, k + 1)[0]
        boundary = 0.5 * (best[k - 1] + best[k])
        coverage = jnp.mean(state.asked, axis=0) if self.track_pairs else jnp.zeros(self.num_cells)
        unknown = jnp.sqrt(self._cell_variance(state)) * (1.0 - coverage) + 1e-6
        z = jnp.abs(mean - boundary) / unknown
        if eligible is not None:
            z = jnp.where(eligible, z, jnp.inf)
        return jnp.argsort(z), jnp.clip(jnp.sum(z < 2.0), 1, self.num_cells), mean, coverage

    def _identify_halves(self, state: PosteriorState, count: int, eligible: jax.Array | None = None,
                         settle: int | None = None) -> tuple[jax.Array, jax.Array]:
        """With fresh pairs, the identify environments' cells in two sorted halves: those that
        *settle* the top-``k`` boundary (``settle`` of them, default ``count - count // 2``,
        spread over the most ambiguous cells as :meth:`_identify_cells` says) and those that
        *complete* the current top ``k`` (the rest, the least covered first). Why both: without
        re-asks, a cell asked on every sample is known exactly, and the report's interval of a
        cell holds its true rate only as far as the model predicts the samples never asked
        there (which the find environments skip: the easy ones). ``((settle,), (count -
        settle,))`` int32."""
        k = min(self.config.top_k, self.num_cells - 1)
        order, ambiguous, mean, coverage = self._boundary_order(state, eligible)
        settle = count - count // 2 if settle is None else settle
        complete = count - settle
        top = jax.lax.top_k(mean, k)[1]
        left = 1.0 - coverage[top]
        top = top[jnp.argsort(-left)]  # least covered first
        open_cells = jnp.clip(jnp.sum(left > 0), 1, k)
        spread = jnp.floor(jnp.arange(complete) / max(complete, 1) * open_cells).astype(jnp.int32)
        return jnp.sort(_spread_over_ambiguous(order, ambiguous, settle)), jnp.sort(top[spread]).astype(jnp.int32)

    def _cell_variance(self, state: PosteriorState) -> jax.Array:
        """Diagonal-Laplace variance of each cell's score ``sum_j w_j + v``, ``(A,)``."""
        var = self._cell_scores(1.0 / state.prec_w, jnp.zeros_like(state.v))
        return var + 1.0 / state.prec_v if self.cell_effects else var

    # -- what the searcher believes ----------------------------------------------------------
    def _base(self, state: PosteriorState) -> jax.Array:
        return state.bias + jnp.mean(state.u)

    def action_scores(self, state: PosteriorState, obs: jax.Array) -> jax.Array:
        """Posterior-mean log-odds of failure on a typical sample, ``(B, A)`` (same row for every ``B``)."""
        scores = self._base(state) + self._cell_scores(state.w, state.v)
        return jnp.broadcast_to(scores, (obs.shape[0], self.num_actions))

    def action_std(self, state: PosteriorState) -> jax.Array:
        """Posterior standard deviation of each cell's log-odds, ``(A,)``."""
        return jnp.sqrt(self._cell_variance(state))

    def _axis_parts(self, state: PosteriorState) -> list[jax.Array]:
        return [state.w[self._offsets[j] : self._offsets[j + 1]] for j in range(len(self.grid))]

    def policy_marginals(self, state: PosteriorState, obs: jax.Array) -> list[jax.Array]:
        if self.dense:
            return super().policy_marginals(state, obs)
        # separable scores: softmax over the product is the product of per-axis softmaxes
        return [jnp.broadcast_to(jax.nn.softmax(p), (obs.shape[0], p.shape[0])) for p in self._axis_parts(state)]

    def policy_view(self, state: PosteriorState, obs: jax.Array, keep: Sequence[int], fixed: dict[int, int] | None = None) -> jax.Array:
        if self.dense:
            return super().policy_view(state, obs, keep, fixed)
        return marginal_view(self.policy_marginals(state, obs), keep, fixed)

    def top_actions(self, state: PosteriorState, obs: jax.Array, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.dense:
            return super().top_actions(state, obs, k)
        cells, scores = top_k_separable([np.asarray(p) for p in self._axis_parts(state)], k)
        actions = np.asarray(cells, np.int64) @ np.asarray(self._strides, np.int64)
        return actions, scores + float(self._base(state))

    def greedy(self, state: PosteriorState, obs: jax.Array) -> jax.Array:
        if self.dense:
            return super().greedy(state, obs)
        cells = [jnp.argmax(p) for p in self._axis_parts(state)]
        action = jnp.sum(jnp.stack(cells) * self._strides).astype(jnp.int32)
        return jnp.broadcast_to(action, obs.shape[:1])
