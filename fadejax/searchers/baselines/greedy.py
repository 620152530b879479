"""Epsilon-greedy over observations, as the paper defines its baseline.

Every observation (dataset row) starts with weight 1. After a query on it fails its
weight rises by epsilon; after a success it falls by epsilon, floored at 0.01. Rows are
drawn in proportion to weight; cells uniformly. A batch's updates are applied in query
order, exactly as one query at a time would.
"""

from __future__ import annotations

from typing import Literal

import flax.struct
import jax
import jax.numpy as jnp
import pydantic

from fadejax.searchers.base import Searcher, SearcherConfig, Transition
from fadejax.searchers.baselines.counting import COVERAGE, CellCounts


class GreedyConfig(SearcherConfig):
    kind: Literal["greedy"] = "greedy"
    epsilon: float = pydantic.Field(0.1, gt=0.0)
    floor: float = pydantic.Field(0.01, gt=0.0)


@flax.struct.dataclass
class GreedyState:
    counts: CellCounts
    weights: jax.Array  # (num_samples,) float32


class EpsilonGreedy(Searcher):
    supports_micro = False
    config: GreedyConfig
    reports = {**COVERAGE, "weight_max": "the largest observation weight (all start at 1): how much the sampling has concentrated"}

    def init(self, key: jax.Array) -> GreedyState:
        return GreedyState(CellCounts.zeros(self.num_actions), jnp.ones(self.num_samples, jnp.float32))

    def select_samples(self, state: GreedyState, key: jax.Array, batch: int) -> jax.Array:
        return jax.random.categorical(key, jnp.log(state.weights), shape=(batch,)).astype(jnp.int32)

    def act(self, state: GreedyState, obs: jax.Array, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, obs.shape[:1], 0, self.num_actions, dtype=jnp.int32)

    def action_scores(self, state: GreedyState, obs: jax.Array) -> jax.Array:
        return state.counts.scores(obs.shape[0])

    def update(self, state: GreedyState, transition: Transition, key: jax.Array):
        eps, floor = self.config.epsilon, self.config.floor

        def one(weights, query):
            sample, failed = query
            step = jnp.where(failed, eps, -eps)
            return weights.at[sample].set(jnp.maximum(weights[sample] + step, floor)), None

        weights, _ = jax.lax.scan(one, state.weights, (transition.sample, transition.failed))
        counts = state.counts.add(transition.action, transition.failed)
        return GreedyState(counts, weights), {"coverage": counts.coverage(), "weight_max": jnp.max(weights)}
