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
``io_callback``s. What determines it is in the checkpointed state: its seed and every
objective value it was told, in order. skopt is deterministic given its seed and the
sequence of ask/tell calls, so a resumed run (a fresh process) rebuilds the optimiser by
replaying that sequence (one GP fit per past iteration, as the run itself did) and goes
on with exactly the proposals the uninterrupted run makes.
"""

from __future__ import annotations

import warnings
from typing import Literal

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pydantic
from jax.experimental import io_callback

from fadejax.searchers.base import Searcher, SearcherConfig, Transition
from fadejax.searchers.baselines.counting import COVERAGE, CellCounts


class BayesConfig(SearcherConfig):
    kind: Literal["bayes"] = "bayes"
    n_initial_points: pydantic.PositiveInt = 10


@flax.struct.dataclass
class BayesState:
    """The counts every baseline keeps, plus what rebuilds the host optimiser exactly.

    Attributes:
      counts: per-cell visits and failures.
      seed: ``()`` int32, the optimiser's ``random_state``.
      told: ``(T,)`` float32, the objective told at each iteration (negated failure rate).
      num_told: ``()`` int32, how many of ``told`` are filled.
    """

    counts: CellCounts
    seed: jax.Array
    told: jax.Array
    num_told: jax.Array


class BayesOpt(Searcher):
    supports_micro = False
    samples_drawn = True  # uniform samples; the cell is chosen without looking at them
    config: BayesConfig
    reports = {**COVERAGE, "best_rate": "the highest failure rate of one proposal's batch so far"}

    def __init__(self, config: BayesConfig, **kwargs):
        super().__init__(config, **kwargs)
        self._optimizer = None
        self._seed: int | None = None
        self._num_told = 0
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

    def _sync(self, seed: int, told: np.ndarray, num_told: int) -> None:
        """Make the host optimiser the one the state describes: after a resume (or a state
        from another run), a fresh optimiser replays the state's ask/tell sequence."""
        if self._optimizer is not None and self._seed == seed and self._num_told == num_told:
            return
        self._optimizer, self._seed, self._num_told = self._new_optimizer(seed), seed, 0
        for value in told[:num_told]:
            self._proposal = self._optimizer.ask()
            self._tell(value)

    def _ask(self, seed: np.ndarray, told: np.ndarray, num_told: np.ndarray) -> np.ndarray:
        self._sync(int(seed), np.asarray(told), int(num_told))
        self._proposal = self._optimizer.ask()
        cell = tuple(int(np.clip(np.rint(x), 0, n - 1)) for x, n in zip(self._proposal, self.sizes))
        return np.asarray(np.ravel_multi_index(cell, self.sizes), np.int32)

    def _tell(self, value: np.ndarray | float) -> None:
        with warnings.catch_warnings():  # GP fitting may warn about converging length scales
            warnings.simplefilter("ignore")
            self._optimizer.tell(self._proposal, float(value))
        self._num_told += 1

    def init(self, key: jax.Array) -> BayesState:
        """Counts at zero and an optimiser seed drawn from ``key`` (the optimiser itself is
        built on the first proposal)."""
        seed = jnp.asarray(jax.random.randint(key, (), 0, 2**31 - 1), jnp.int32)
        return BayesState(CellCounts.zeros(self.num_actions), seed, jnp.zeros(self.total_iterations, jnp.float32), jnp.int32(0))

    def act(self, state: BayesState, obs: jax.Array, key: jax.Array) -> jax.Array:
        cell = io_callback(self._ask, jax.ShapeDtypeStruct((), jnp.int32), state.seed, state.told, state.num_told, ordered=True)
        return jnp.full(obs.shape[:1], cell, jnp.int32)

    def action_scores(self, state: BayesState, obs: jax.Array) -> jax.Array:
        return state.counts.scores(obs.shape[0])

    def update(self, state: BayesState, transition: Transition, key: jax.Array):
        value = -jnp.mean(transition.failed.astype(jnp.float32))  # skopt minimises
        io_callback(self._tell, None, value, ordered=True)
        told = state.told.at[state.num_told].set(value)
        counts = state.counts.add(transition.action, transition.failed)
        new = state.replace(counts=counts, told=told, num_told=state.num_told + 1)
        return new, {"coverage": counts.coverage(), "best_rate": -jnp.min(jnp.where(jnp.arange(told.shape[0]) <= state.num_told, told, 0.0))}
