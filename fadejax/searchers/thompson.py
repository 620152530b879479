"""Bayesian bandits over the concept grid: Thompson sampling and Bayes-UCB.

Both treat every macroscopic cell ``a`` as an arm with an unknown failure probability
``theta_a`` and keep an independent conjugate posterior on it::

    theta_a ~ Beta(prior_alpha, prior_beta)
    theta_a | data ~ Beta(prior_alpha + failures_a, prior_beta + successes_a)

``update`` adds a batch's failures and successes per cell exactly (a cell queried ``k``
times in one batch gets all ``k`` outcomes). The observation is ignored: these are
context-free bandits over cells, and samples are drawn uniformly (the default
``select_samples``). ``action_scores`` is the posterior mean
``alpha / (alpha + beta)`` of each cell, the same for every observation.

**Thompson sampling** (``kind: thompson``): each of the ``B`` environments of a batch
draws its *own* sample ``theta ~ posterior`` ``(A,)`` and queries its argmax, so a batch
of ``B`` is ``B`` independent Thompson draws from the same posterior (the posterior is
updated once per batch, after all ``B`` outcomes). ``act`` draws a ``(B, A)`` array of
posterior samples, like the flat DQN's ``(B, A)`` Q-values.

**Bayes-UCB** (``kind: ucb``, Kaufmann, Cappé & Garivier, 2012): the bound of a cell is
the quantile of its posterior at level ``1 - 1/(t + 1)``, where ``t`` is the number of
queries recorded before the batch. A batch shares one state, so with ``pending: true``
(the default) its environments choose one after another and each counts the earlier
choices of the same batch as pending pulls whose outcome is the posterior mean (a
"believer" update, as in GP-BUCB, Desautels et al. 2014): a pending pull leaves the
mean unchanged and narrows the posterior, so the batch spreads over the cells with the
highest bounds instead of spending all ``B`` queries on one cell. With
``pending: false`` every environment uses the same bounds. Either way, exact ties
(e.g. among unvisited cells) are broken uniformly at random with the key, so the first
batch does not collapse onto cell 0. Quantiles are found by bisection on
``jax.scipy.special.betainc`` (``_QUANTILE_STEPS`` halvings, below float32 resolution).
"""

from __future__ import annotations

from typing import Literal

import flax.struct
import jax
import jax.numpy as jnp
import pydantic

from fadejax.searchers.base import Searcher, SearcherConfig, Transition

_QUANTILE_STEPS = 30  # bisection halvings of [0, 1]: 2**-30 < float32's spacing near 1


class ThompsonConfig(SearcherConfig):
    """Thompson sampling over cells with an independent Beta prior per cell."""

    kind: Literal["thompson"] = "thompson"
    #: Beta prior's alpha: pseudo-failures every cell starts with.
    prior_alpha: pydantic.PositiveFloat = 1.0
    #: Beta prior's beta: pseudo-successes every cell starts with.
    prior_beta: pydantic.PositiveFloat = 1.0


class UCBConfig(SearcherConfig):
    """Bayes-UCB over cells: the posterior's ``1 - 1/(t+1)`` quantile as the bound."""

    kind: Literal["ucb"] = "ucb"
    #: Beta prior's alpha: pseudo-failures every cell starts with.
    prior_alpha: pydantic.PositiveFloat = 1.0
    #: Beta prior's beta: pseudo-successes every cell starts with.
    prior_beta: pydantic.PositiveFloat = 1.0
    #: Count a batch's earlier choices as pending pulls at the posterior mean, so one
    #: batch spreads over the highest bounds (False: every environment sees the same bounds).
    pending: bool = True


@flax.struct.dataclass
class BetaCells:
    """The posterior of every cell, and how many queries it has seen."""

    alpha: jax.Array  # (A,) float32, prior_alpha + failures per cell
    beta: jax.Array  # (A,) float32, prior_beta + successes per cell
    queries: jax.Array  # () int32, queries recorded so far (t of Bayes-UCB)

    def mean(self) -> jax.Array:
        """Posterior mean failure probability per cell, ``(A,)``."""
        return self.alpha / (self.alpha + self.beta)


class _BetaBandit(Searcher):
    """Shared state and update of the two Beta-Bernoulli bandits."""

    supports_micro = False
    samples_drawn = True  # uniform samples; the cell is chosen without looking at them
    config: ThompsonConfig | UCBConfig
    reports = {
        "posterior_std": "standard deviation of each cell's Beta posterior, averaged over cells: the uncertainty left",
        "best_mean": "the highest posterior mean failure probability of any cell",
    }

    def init(self, key: jax.Array) -> BetaCells:
        c = self.config
        return BetaCells(
            alpha=jnp.full(self.num_actions, c.prior_alpha, jnp.float32),
            beta=jnp.full(self.num_actions, c.prior_beta, jnp.float32),
            queries=jnp.int32(0),
        )

    def action_scores(self, state: BetaCells, obs: jax.Array) -> jax.Array:
        """Posterior mean failure probability of every cell, ``(B, A)`` (rows identical)."""
        return jnp.broadcast_to(state.mean(), (obs.shape[0], self.num_actions))

    def update(self, state: BetaCells, transition: Transition, key: jax.Array) -> tuple[BetaCells, dict[str, jax.Array]]:
        """Add the batch's outcomes: ``action`` ``(B,)`` cells, ``failed`` ``(B,)`` bool."""
        failed = transition.failed.astype(jnp.float32)
        zeros = jnp.zeros(self.num_actions, jnp.float32)
        new = BetaCells(
            alpha=state.alpha + zeros.at[transition.action].add(failed),
            beta=state.beta + zeros.at[transition.action].add(1.0 - failed),
            queries=state.queries + transition.action.shape[0],
        )
        a, b = new.alpha, new.beta
        std = jnp.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
        return new, {"posterior_std": jnp.mean(std), "best_mean": jnp.max(new.mean())}


class ThompsonSampling(_BetaBandit):
    """Thompson sampling: one independent posterior draw per environment, then its argmax."""

    config: ThompsonConfig

    def act(self, state: BetaCells, obs: jax.Array, key: jax.Array) -> jax.Array:
        """``(B,)`` int32: environment ``i`` queries ``argmax_a theta_i[a]``, ``theta_i ~ posterior`` ``(A,)``."""
        theta = jax.random.beta(key, state.alpha, state.beta, shape=(obs.shape[0], self.num_actions))
        return jnp.argmax(theta, axis=-1).astype(jnp.int32)


def beta_quantile(level: jax.Array, alpha: jax.Array, beta: jax.Array) -> jax.Array:
    """The ``level`` quantile of ``Beta(alpha, beta)`` elementwise (shapes broadcast), by
    bisection on the regularised incomplete beta function."""
    level, alpha, beta = jnp.broadcast_arrays(jnp.asarray(level, jnp.float32), alpha, beta)

    def halve(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        below = jax.scipy.special.betainc(alpha, beta, mid) < level
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _QUANTILE_STEPS, halve, (jnp.zeros_like(alpha), jnp.ones_like(alpha)))
    return 0.5 * (lo + hi)


def _argmax_random_ties(values: jax.Array, key: jax.Array) -> jax.Array:
    """Index of the maximum of ``values`` ``(A,)``, uniform among exact ties; () int32."""
    best = values == jnp.max(values)
    return jax.random.categorical(key, jnp.where(best, 0.0, -jnp.inf)).astype(jnp.int32)


class BayesUCB(_BetaBandit):
    """Bayes-UCB with optional pending pulls inside a batch (see the module docstring)."""

    config: UCBConfig

    def bounds(self, state: BetaCells) -> jax.Array:
        """Each cell's upper bound: its posterior quantile at ``1 - 1/(t + 1)``, ``(A,)``."""
        level = 1.0 - 1.0 / (state.queries.astype(jnp.float32) + 1.0)
        return beta_quantile(level, state.alpha, state.beta)

    def act(self, state: BetaCells, obs: jax.Array, key: jax.Array) -> jax.Array:
        """``(B,)`` int32 cells, each the highest bound (random among ties) given the
        batch's earlier choices as pending pulls (or the same bounds, ``pending: false``)."""
        batch = obs.shape[0]
        keys = jax.random.split(key, batch)
        bounds = self.bounds(state)
        if not self.config.pending:
            return jax.vmap(_argmax_random_ties, in_axes=(None, 0))(bounds, keys)
        level = 1.0 - 1.0 / (state.queries.astype(jnp.float32) + 1.0)
        mean = state.mean()

        def choose(carry, k):
            alpha, beta, bounds = carry
            a = _argmax_random_ties(bounds, k)
            alpha = alpha.at[a].add(mean[a])  # a pending pull at the posterior mean
            beta = beta.at[a].add(1.0 - mean[a])
            bounds = bounds.at[a].set(beta_quantile(level, alpha[a], beta[a]))
            return (alpha, beta, bounds), a

        _, actions = jax.lax.scan(choose, (state.alpha, state.beta, bounds), keys)
        return actions
