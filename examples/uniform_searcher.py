"""A searcher kept outside fadejax: uniform random cells, with observed failure rates as
its ranking. The worked example of docs/benchmark-your-searcher.md.

    .venv/bin/python benchmarks/table1.py --recorded recordings/digits.npz \\
        --plugin examples/uniform_searcher.py --searchers "uniform,random,posterior (default)"
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp

from fadejax.searchers import register
from fadejax.searchers.base import Searcher, SearcherConfig, Transition


class UniformConfig(SearcherConfig):
    kind: Literal["uniform"] = "uniform"


class Uniform(Searcher):
    """Every query a uniformly drawn cell; the state counts failures and visits per cell."""

    supports_micro = False  # it picks cells, not moves
    #: what update() reports each iteration: the run's learning curves (searcher.coverage)
    reports = {"coverage": "share of the cells queried at least once"}

    def init(self, key: jax.Array) -> dict[str, jax.Array]:
        return {"failures": jnp.zeros(self.num_actions), "visits": jnp.zeros(self.num_actions)}

    def act(self, state: dict, obs: jax.Array, key: jax.Array) -> jax.Array:
        """``obs`` ``(B, D)`` -> ``(B,)`` int32 cells."""
        return jax.random.randint(key, obs.shape[:1], 0, self.num_actions)

    def action_scores(self, state: dict, obs: jax.Array) -> jax.Array:
        """``(B, A)``: each cell's observed failure rate (the same for every sample)."""
        rate = state["failures"] / jnp.maximum(state["visits"], 1)
        return jnp.broadcast_to(rate, (obs.shape[0], self.num_actions))

    def update(self, state: dict, t: Transition, key: jax.Array) -> tuple[dict, dict[str, Any]]:
        failures = state["failures"].at[t.action].add(t.failed.astype(jnp.float32))
        visits = state["visits"].at[t.action].add(1.0)
        return {"failures": failures, "visits": visits}, {"coverage": jnp.mean(visits > 0)}


register(UniformConfig, Uniform)
