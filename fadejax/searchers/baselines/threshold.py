"""Threshold search (the paper's baseline): stay on one randomly chosen observation until
``patience`` (5) consecutive queries on it do not fail, then move to another; cells uniform.

Each of the ``B`` parallel environments runs its own threshold searcher.
"""

from __future__ import annotations

from typing import Literal

import flax.struct
import jax
import jax.numpy as jnp
import pydantic

from fadejax.searchers.base import Searcher, SearcherConfig, Transition
from fadejax.searchers.baselines.counting import COVERAGE, CellCounts


class ThresholdConfig(SearcherConfig):
    kind: Literal["threshold"] = "threshold"
    patience: pydantic.PositiveInt = 5


@flax.struct.dataclass
class ThresholdState:
    counts: CellCounts
    current: jax.Array  # (B,) int32, the observation each environment stays on
    streak: jax.Array  # (B,) int32, consecutive non-failures on it


class Threshold(Searcher):
    supports_micro = False
    config: ThresholdConfig
    reports = {**COVERAGE, "streak_mean": "consecutive non-failures on each environment's current observation, averaged"}

    def init(self, key: jax.Array) -> ThresholdState:
        current = jax.random.randint(key, (self.num_envs,), 0, self.num_samples, dtype=jnp.int32)
        return ThresholdState(CellCounts.zeros(self.num_actions), current, jnp.zeros(self.num_envs, jnp.int32))

    def select_samples(self, state: ThresholdState, key: jax.Array, batch: int) -> jax.Array:
        return state.current

    def act(self, state: ThresholdState, obs: jax.Array, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, obs.shape[:1], 0, self.num_actions, dtype=jnp.int32)

    def action_scores(self, state: ThresholdState, obs: jax.Array) -> jax.Array:
        return state.counts.scores(obs.shape[0])

    def update(self, state: ThresholdState, transition: Transition, key: jax.Array):
        streak = jnp.where(transition.failed, 0, state.streak + 1)
        move = streak >= self.config.patience
        fresh = jax.random.randint(key, streak.shape, 0, self.num_samples, dtype=jnp.int32)
        counts = state.counts.add(transition.action, transition.failed)
        streak = jnp.where(move, 0, streak)
        new = ThresholdState(counts, jnp.where(move, fresh, state.current), streak)
        return new, {"coverage": counts.coverage(), "streak_mean": jnp.mean(streak.astype(jnp.float32))}
