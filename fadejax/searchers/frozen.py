"""Evaluate a trained searcher greedily on a fresh budget: no exploration, no learning."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fadejax.searchers.base import Searcher, SearcherState, Transition


class FrozenGreedy(Searcher):
    """Wraps ``inner`` with its trained ``state``: acts with ``inner.greedy``, never updates.

    Not in the registry (it needs a trained state); build it in code, e.g. to report a
    DQN's trained policy separately from the queries it spent learning.
    """

    def __init__(self, inner: Searcher, state: SearcherState):
        super().__init__(
            inner.config, num_actions=inner.num_actions, obs_dim=inner.obs_dim, num_samples=inner.num_samples,
            total_iterations=inner.total_iterations, num_envs=inner.num_envs, sizes=inner.sizes, walk=inner.walk,
            deterministic=inner.deterministic,
        )
        self.inner = inner
        self.trained = state
        self.supports_micro = inner.supports_micro
        self.supports_macro = inner.supports_macro

    traceable_init = False  # traced, the trained state (replay buffer included) would become program constants

    def init(self, key: jax.Array) -> SearcherState:
        return jax.tree.map(jnp.copy, self.trained)  # the loop donates its state; keep ours intact

    def act(self, state: SearcherState, obs: jax.Array, key: jax.Array) -> jax.Array:
        return self.inner.greedy(state, obs)

    def action_scores(self, state: SearcherState, obs: jax.Array) -> jax.Array:
        return self.inner.action_scores(state, obs)

    def update(self, state: SearcherState, transition: Transition, key: jax.Array):
        return state, {}
