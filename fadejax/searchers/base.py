"""The searcher interface: what the discovery loop needs from an RL agent or a baseline.

A searcher is a plain Python object holding only static settings; everything that
changes lives in its *state*, a pytree, so the loop can jit every method and checkpoint
the state with orbax. The loop calls, per iteration (``B`` parallel environments,
``D``-dim observations, ``A`` actions)::

    idx     = searcher.select_samples(state, key, B)   # (B,) int32 dataset rows
    actions = searcher.act(state, obs, key)            # (B,) int32 in [0, A)
    ...                                                # perturb, audited model, reward
    state, metrics = searcher.update(state, transition, key)

and, to summarise, ``searcher.action_scores(state, obs)`` ``(B, A)`` (higher = more
likely to fail; Q-values for the DQN) and ``searcher.greedy(state, obs)`` ``(B,)``.
A new RL algorithm or baseline is one new module with a config model and a class
implementing these methods, added to ``fadejax.searchers.REGISTRY``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import pydantic

SearcherState = Any  # a pytree


class Transition(NamedTuple):
    """One batch of environment steps, each field with leading dimension ``B``."""

    obs: jax.Array  # (B, D) float32, observation the action was chosen on
    action: jax.Array  # (B,) int32
    reward: jax.Array  # (B,) float32
    next_obs: jax.Array  # (B, D) float32, observation after the step
    terminal: jax.Array  # (B,) bool, no bootstrapping past this step
    sample: jax.Array  # (B,) int32, dataset row of the query
    failed: jax.Array  # (B,) bool, the audited model failed on this query


class SearcherConfig(pydantic.BaseModel):
    """Base of every searcher's config; ``kind`` names the searcher in the registry."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
    kind: str


class Searcher:
    """Base class with the defaults most searchers share.

    Args:
      config: the searcher's own config model.
      num_actions: size of the action space it chooses from.
      obs_dim: observation length ``D``.
      num_samples: number of dataset rows it may pick from.
      total_iterations: planned length of the run (for schedules).
      num_envs: ``B``, environments (queries) per iteration.
      sizes: the concept space's axis sizes (macroscopic actions are cells of this grid).
    """

    #: False for searchers defined only over macroscopic cells (the baselines).
    supports_micro: bool = True

    def __init__(self, config: SearcherConfig, *, num_actions: int, obs_dim: int, num_samples: int, total_iterations: int, num_envs: int, sizes: tuple[int, ...] = ()):
        self.config = config
        self.num_actions = num_actions
        self.obs_dim = obs_dim
        self.num_samples = num_samples
        self.total_iterations = total_iterations
        self.num_envs = num_envs
        self.sizes = tuple(sizes) or (num_actions,)

    def init(self, key: jax.Array) -> SearcherState:
        raise NotImplementedError

    def select_samples(self, state: SearcherState, key: jax.Array, batch: int) -> jax.Array:
        """Dataset rows for new episodes, ``(batch,)`` int32; uniform by default."""
        return jax.random.randint(key, (batch,), 0, self.num_samples, dtype=jnp.int32)

    def act(self, state: SearcherState, obs: jax.Array, key: jax.Array) -> jax.Array:
        raise NotImplementedError

    def action_scores(self, state: SearcherState, obs: jax.Array) -> jax.Array:
        raise NotImplementedError

    def greedy(self, state: SearcherState, obs: jax.Array) -> jax.Array:
        """The action the searcher currently rates most likely to fail, ``(B,)`` int32."""
        return jnp.argmax(self.action_scores(state, obs), axis=-1).astype(jnp.int32)

    def update(self, state: SearcherState, transition: Transition, key: jax.Array) -> tuple[SearcherState, dict[str, jax.Array]]:
        raise NotImplementedError
