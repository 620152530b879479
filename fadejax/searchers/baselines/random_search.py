"""Random search: samples and cells uniformly at random (the paper's first baseline)."""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from fadejax.searchers.base import Searcher, SearcherConfig, Transition
from fadejax.searchers.baselines.counting import COVERAGE, CellCounts


class RandomConfig(SearcherConfig):
    kind: Literal["random"] = "random"


class RandomSearch(Searcher):
    supports_micro = False
    samples_drawn = True
    reports = dict(COVERAGE)

    def init(self, key: jax.Array) -> CellCounts:
        return CellCounts.zeros(self.num_actions)

    def act(self, state: CellCounts, obs: jax.Array, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, obs.shape[:1], 0, self.num_actions, dtype=jnp.int32)

    def action_scores(self, state: CellCounts, obs: jax.Array) -> jax.Array:
        return state.scores(obs.shape[0])

    def update(self, state: CellCounts, transition: Transition, key: jax.Array):
        counts = state.add(transition.action, transition.failed)
        return counts, {"coverage": counts.coverage()}
