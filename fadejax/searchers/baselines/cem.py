"""Cross-entropy method over the concept grid, as falsification toolkits (VerifAI) ship it.

The sampling distribution is a product of independent categoricals, one per concept
axis (``sizes[i]`` values on axis ``i``), starting uniform. Each iteration:

1. every one of the ``B`` environments draws a cell, one value per axis; the action is
   the cell's row-major index (last axis fastest, as ``ConceptSpace.action_of``);
2. after the batch, the ``n = max(1, round(elite_fraction * B))`` queries with the
   highest reward are the elites (ties in reward broken uniformly at random by the key);
3. each axis is refitted to the elites' value frequencies ``f_i`` ``(sizes[i],)``,
   smoothed, then mixed with a floor so no value's probability dies::

       p_i <- (1 - smoothing) * p_i + smoothing * f_i
       p_i <- (1 - sizes[i] * m_i) * p_i + m_i          # so p_i >= m_i, sum stays 1

   with ``m_i = min_prob`` if set, else ``0.01 / sizes[i]`` (1% of the mass spread uniformly).

The observation is ignored and samples are drawn uniformly (the default
``select_samples``). ``action_scores`` is **not** the sampling distribution: it is the
observed failure rate of each cell (failures / visits, 0 where never visited, from
:class:`~fadejax.searchers.baselines.counting.CellCounts`), the same for every observation —
the searcher's estimate of each cell's failure probability, as for the other baselines.
"""

from __future__ import annotations

import math
from typing import Literal

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pydantic

from fadejax.searchers.base import Searcher, SearcherConfig, Transition
from fadejax.searchers.baselines.counting import COVERAGE, CellCounts


class CEMConfig(SearcherConfig):
    """Cross-entropy method with one categorical per concept axis."""

    kind: Literal["cem"] = "cem"
    #: Fraction of each batch's queries, by reward, the distribution is refitted to.
    elite_fraction: float = pydantic.Field(0.2, gt=0.0, le=1.0)
    #: Weight of the elites' frequencies in the refit (1 = forget the old distribution).
    smoothing: float = pydantic.Field(0.7, ge=0.0, le=1.0)
    #: Floor on every value's probability, the same on every axis; None = 0.01 / sizes[i]
    #: per axis. Must satisfy min_prob * sizes[i] < 1.
    min_prob: pydantic.NonNegativeFloat | None = None


@flax.struct.dataclass
class CEMState:
    counts: CellCounts  # per-cell visits and failures (the action scores)
    probs: jax.Array  # (num_axes, max(sizes)) float32, row i = axis i's categorical, 0 past sizes[i]


class CrossEntropy(Searcher):
    supports_micro = False
    samples_drawn = True  # uniform samples; the cell is chosen without looking at them
    config: CEMConfig
    reports = {
        **COVERAGE,
        "elite_threshold": "the lowest reward among the batch's elites",
        "entropy": "entropy (nats) of the sampling distribution over cells: falls as it concentrates",
    }

    def __init__(self, config: CEMConfig, **kwargs):
        super().__init__(config, **kwargs)
        if math.prod(self.sizes) != self.num_actions:
            raise ValueError(f"cem needs a product action space; sizes {self.sizes} do not multiply to {self.num_actions} actions")
        sizes = np.asarray(self.sizes, np.int64)
        floors = np.full(sizes.shape, config.min_prob) if config.min_prob is not None else 0.01 / sizes
        if np.any(floors * sizes >= 1.0):
            raise ValueError(f"cem min_prob {config.min_prob} leaves no mass on an axis of size {int(sizes.max())}: need min_prob * size < 1")
        self._width = int(sizes.max())
        self._valid = jnp.asarray(np.arange(self._width)[None, :] < sizes[:, None])  # (axes, width) bool
        self._floor = jnp.asarray(floors, jnp.float32)[:, None]  # (axes, 1)
        self._sizes = jnp.asarray(sizes, jnp.float32)[:, None]  # (axes, 1)
        self._strides = jnp.asarray([math.prod(self.sizes[i + 1 :]) for i in range(len(self.sizes))], jnp.int32)

    def init(self, key: jax.Array) -> CEMState:
        uniform = jnp.where(self._valid, 1.0 / self._sizes, 0.0).astype(jnp.float32)
        return CEMState(CellCounts.zeros(self.num_actions), uniform)

    def cells_of(self, actions: jax.Array) -> jax.Array:
        """Action ``(B,)`` -> cell ``(B, num_axes)`` int32 (value index per axis)."""
        return (actions[:, None] // self._strides) % self._sizes.astype(jnp.int32)[:, 0]

    def act(self, state: CEMState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """``(B,)`` int32: each environment draws one value per axis from ``state.probs``."""
        keys = jax.random.split(key, len(self.sizes))
        logits = jnp.log(state.probs)  # -inf past each axis' size: never drawn
        cells = [jax.random.categorical(k, logits[i], shape=obs.shape[:1]) for i, k in enumerate(keys)]
        return jnp.sum(jnp.stack(cells, axis=-1).astype(jnp.int32) * self._strides, axis=-1).astype(jnp.int32)

    def action_scores(self, state: CEMState, obs: jax.Array) -> jax.Array:
        """Observed failure rate of every cell, ``(B, A)`` (rows identical; 0 where unvisited)."""
        return state.counts.scores(obs.shape[0])

    def elites(self, reward: jax.Array, key: jax.Array) -> jax.Array:
        """Positions ``(n,)`` of the batch's top-``n`` rewards ``(B,)``, ties in random order."""
        batch = reward.shape[0]
        n = max(1, round(self.config.elite_fraction * batch))
        shuffled = jax.random.permutation(key, batch)
        order = jnp.argsort(-reward[shuffled], stable=True)
        return shuffled[order[:n]]

    def update(self, state: CEMState, transition: Transition, key: jax.Array) -> tuple[CEMState, dict[str, jax.Array]]:
        """Count the batch, then refit every axis to its elites (see the module docstring)."""
        c = self.config
        elite = self.elites(transition.reward, key)
        elite_cells = self.cells_of(transition.action[elite])  # (n, axes)
        freq = jnp.mean(jax.nn.one_hot(elite_cells, self._width, dtype=jnp.float32), axis=0)  # (axes, width)
        probs = (1.0 - c.smoothing) * state.probs + c.smoothing * freq
        probs = jnp.where(self._valid, (1.0 - self._sizes * self._floor) * probs + self._floor, 0.0)
        counts = state.counts.add(transition.action, transition.failed)
        entropy = -jnp.sum(jnp.where(self._valid, probs * jnp.log(jnp.where(self._valid, probs, 1.0)), 0.0))
        return CEMState(counts, probs), {"coverage": counts.coverage(), "elite_threshold": jnp.min(transition.reward[elite]), "entropy": entropy}
