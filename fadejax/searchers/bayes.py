"""Bayesian optimisation over the concept grid: scikit-optimize's GP with the gp_hedge acquisition.

Why scikit-optimize: it implements gp_hedge (a portfolio of EI, LCB and PI, Hoffman et
al. 2011) directly, works with the pinned NumPy 2 / scikit-learn 1.9, and needs no torch
(BoTorch would pull torch into the JAX engine's process, which fadejax keeps out of
``fadejax/``).

Batching: each iteration the optimiser proposes one cell and the whole batch of ``B``
queries evaluates it on ``B`` samples drawn uniformly; the cell's observed failure rate
over the batch is the (noisy) objective it is told. One GP fit per iteration, not one
per query, is what keeps it from being absurdly slow (skopt's constant-liar batch
``ask(n_points=k)`` refits k times and took ~2 s per iteration here).

The optimiser lives on the host and is driven from the jitted loop through ordered
``io_callback``s. Its internal state (GP, hedge gains) is not part of the checkpointed
pytree, so a resumed BO run restarts the optimiser from scratch.
"""

from __future__ import annotations

import warnings
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import pydantic
from jax.experimental import io_callback

from fadejax.searchers.base import Searcher, SearcherConfig, Transition
from fadejax.searchers.counting import CellCounts


class BayesConfig(SearcherConfig):
    kind: Literal["bayes"] = "bayes"
    n_initial_points: pydantic.PositiveInt = 10


class BayesOpt(Searcher):
    supports_micro = False
    traceable_init = False  # seeds the host-side skopt optimiser from the key's value
    config: BayesConfig

    def __init__(self, config: BayesConfig, **kwargs):
        super().__init__(config, **kwargs)
        self._optimizer = None
        self._proposal: list[float] = []

    def _new_optimizer(self, seed: int):
        from skopt import Optimizer
        from skopt.space import Real

        # Each axis as a continuous interval around its value indices, rounded to a cell:
        # skopt swaps a re-proposed *identical* point for a random one (right for
        # deterministic objectives, wrong for our noisy one, where revisiting the worst
        # cell is the point), and continuous proposals are never identical.
        return Optimizer(
            [Real(-0.5, n - 0.5) for n in self.sizes], base_estimator="GP", acq_func="gp_hedge",
            acq_optimizer="sampling", n_initial_points=self.config.n_initial_points,
            random_state=seed, acq_optimizer_kwargs={"n_points": 1000},
        )

    def _ask(self) -> np.ndarray:
        self._proposal = self._optimizer.ask()
        cell = tuple(int(np.clip(np.rint(x), 0, n - 1)) for x, n in zip(self._proposal, self.sizes))
        return np.asarray(np.ravel_multi_index(cell, self.sizes), np.int32)

    def _tell(self, action: np.ndarray, failure_rate: np.ndarray) -> None:
        with warnings.catch_warnings():  # GP fitting may warn about converging length scales
            warnings.simplefilter("ignore")
            self._optimizer.tell(self._proposal, -float(failure_rate))  # skopt minimises

    def init(self, key: jax.Array) -> CellCounts:
        """A fresh optimiser seeded from ``key`` (init runs on the host, outside jit)."""
        self._optimizer = self._new_optimizer(int(jax.random.randint(key, (), 0, 2**31 - 1)))
        return CellCounts.zeros(self.num_actions)

    def act(self, state: CellCounts, obs: jax.Array, key: jax.Array) -> jax.Array:
        cell = io_callback(self._ask, jax.ShapeDtypeStruct((), jnp.int32), ordered=True)
        return jnp.full(obs.shape[:1], cell, jnp.int32)

    def action_scores(self, state: CellCounts, obs: jax.Array) -> jax.Array:
        return state.scores(obs.shape[0])

    def update(self, state: CellCounts, transition: Transition, key: jax.Array):
        rate = jnp.mean(transition.failed.astype(jnp.float32))
        io_callback(self._tell, None, transition.action[0], rate, ordered=True)
        return state.add(transition.action, transition.failed), {}
