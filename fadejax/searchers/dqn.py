"""DQN searcher: a Flax MLP Q-network, optax, rlax losses and a flashbax replay on device.

Readable top to bottom: hyper-parameters in :class:`DQNConfig`, the networks, the state,
then ``act`` and ``update``. Macroscopic episodes are one step long (every transition is
terminal, so the target is the reward, the paper's eq. 2); microscopic ones bootstrap
with ``gamma * max_a' Q(s', a')`` (eq. 3), or its double-Q form.

Two Q-heads share everything else:

* ``flat``: one output per action, ``(B, A)`` — the paper's network;
* ``factored``: one head per concept axis combined dueling-style, as in action-branching
  networks (Tavakoli et al., 2018)::

      Q(s, a) = V(s) + sum_i [ A_i(s, a_i) - mean_j A_i(s, j) ]

  so the output grows with ``sum(sizes)``, not ``prod(sizes)``. Greedy and epsilon-greedy
  selection, the TD target's ``max_a' Q(s', a')`` and the policy's marginals (eq. 10 is a
  product of per-axis softmaxes under this head) never materialise the product space.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import flashbax as fbx
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pydantic
import rlax

from fadejax.landscapes import marginal_view, top_k_separable
from fadejax.searchers.base import Searcher, SearcherConfig, Transition


class DQNConfig(SearcherConfig):
    """Hyper-parameters of the DQN searcher (defaults follow the paper where it gives one)."""

    kind: Literal["dqn"] = "dqn"
    hidden_sizes: tuple[pydantic.PositiveInt, ...] = (256, 256)
    learning_rate: pydantic.PositiveFloat = 1e-3
    max_grad_norm: pydantic.PositiveFloat = 10.0
    gamma: float = pydantic.Field(0.9, ge=0.0, le=1.0)
    batch_size: pydantic.PositiveInt = 256
    replay_capacity: pydantic.PositiveInt = 50_000
    min_replay: pydantic.PositiveInt = 256
    updates_per_iteration: pydantic.PositiveInt = 1
    double_q: bool = True
    huber_delta: pydantic.PositiveFloat = 1.0
    target_update: Literal["periodic", "polyak"] = "periodic"
    target_period: pydantic.PositiveInt = 50
    polyak_tau: float = pydantic.Field(0.01, gt=0.0, le=1.0)
    epsilon_start: float = pydantic.Field(1.0, ge=0.0, le=1.0)
    epsilon_end: float = pydantic.Field(0.6, ge=0.0, le=1.0)
    epsilon_decay_fraction: float = pydantic.Field(1.0, gt=0.0, le=1.0)
    head: Literal["flat", "factored"] = "flat"


class QNetwork(nn.Module):
    """MLP ``(B, D) -> (B, num_actions)`` Q-values."""

    hidden_sizes: Sequence[int]
    num_actions: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs
        for size in self.hidden_sizes:
            x = nn.relu(nn.Dense(size)(x))
        return nn.Dense(self.num_actions)(x)


class FactoredQNetwork(nn.Module):
    """MLP torso, then a state value and one advantage head per axis: ``(B, D) -> (B, 1 + sum(sizes))``.

    Column 0 is ``V(s)``; then the advantages of axis 0's ``sizes[0]`` values, axis 1's, ...
    """

    hidden_sizes: Sequence[int]
    sizes: Sequence[int]

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs
        for size in self.hidden_sizes:
            x = nn.relu(nn.Dense(size)(x))
        return nn.Dense(1 + sum(self.sizes))(x)


@flax.struct.dataclass
class DQNState:
    params: dict
    target_params: dict
    opt_state: optax.OptState
    replay: fbx.flat_buffer.TrajectoryBufferState
    iteration: jax.Array  # int32, loop iterations seen (drives epsilon)
    updates: jax.Array  # int32, gradient steps taken


class DQN(Searcher):
    """Deep Q-network searcher (Mnih et al., 2015) with the options in :class:`DQNConfig`."""

    config: DQNConfig

    def __init__(self, config: DQNConfig, **kwargs):
        super().__init__(config, **kwargs)
        c = config
        self.factored = c.head == "factored"
        if self.factored:
            if math.prod(self.sizes) != self.num_actions:
                raise ValueError(f"the factored head needs a product action space; sizes {self.sizes} do not multiply to {self.num_actions} actions")
            self.network = FactoredQNetwork(tuple(c.hidden_sizes), self.sizes)
            self._offsets = tuple(int(o) for o in np.cumsum((1,) + self.sizes))  # column where each axis' head starts
            strides = [math.prod(self.sizes[i + 1 :]) for i in range(len(self.sizes))]
            self._strides = jnp.asarray(strides, jnp.int32)
            self._sizes = jnp.asarray(self.sizes, jnp.int32)
        else:
            self.network = QNetwork(tuple(c.hidden_sizes), self.num_actions)
        self.optimizer = optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(c.learning_rate))
        self.replay = fbx.make_item_buffer(
            max_length=c.replay_capacity,
            min_length=max(c.min_replay, c.batch_size),
            sample_batch_size=c.batch_size,
            add_batches=True,
        )
        decay = max(1, int(round(c.epsilon_decay_fraction * self.total_iterations)))
        self.epsilon = optax.linear_schedule(c.epsilon_start, c.epsilon_end, decay)

    def init(self, key: jax.Array) -> DQNState:
        dummy_obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        params = self.network.init(key, dummy_obs)
        item = dict(
            obs=jnp.zeros((self.obs_dim,), jnp.float32),
            action=jnp.int32(0),
            reward=jnp.float32(0),
            next_obs=jnp.zeros((self.obs_dim,), jnp.float32),
            terminal=jnp.bool_(True),
        )
        return DQNState(
            params=params,
            target_params=jax.tree.map(jnp.copy, params),  # distinct buffers: the loop donates state
            opt_state=self.optimizer.init(params),
            replay=self.replay.init(item),
            iteration=jnp.int32(0),
            updates=jnp.int32(0),
        )

    # -- the factored head's pieces ---------------------------------------------------
    def _parts(self, params: dict, obs: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        """Factored head: ``V(s)`` ``(B,)`` and the centred advantages, one ``(B, sizes[i])`` per axis."""
        out = self.network.apply(params, obs)
        value = out[:, 0]
        advantages = [out[:, lo:hi] for lo, hi in zip(self._offsets[:-1], self._offsets[1:])]
        return value, [a - jnp.mean(a, axis=-1, keepdims=True) for a in advantages]

    def _cells_to_actions(self, cells: list[jax.Array]) -> jax.Array:
        return jnp.sum(jnp.stack(cells, axis=-1) * self._strides, axis=-1).astype(jnp.int32)

    def _q_of(self, value: jax.Array, advantages: list[jax.Array], action: jax.Array) -> jax.Array:
        """``Q(s, a)`` ``(B,)`` of given actions ``(B,)`` under the factored head."""
        cells = (action[:, None] // self._strides) % self._sizes
        picked = [jnp.take_along_axis(a, cells[:, i : i + 1], axis=-1)[:, 0] for i, a in enumerate(advantages)]
        return value + sum(picked)

    # -- acting ---------------------------------------------------------------------------
    def action_scores(self, state: DQNState, obs: jax.Array) -> jax.Array:
        """``Q(s, a)`` for every action, ``(B, A)``. The factored head builds this product
        only on request (summaries of small spaces); large spaces use :meth:`policy_marginals`."""
        if not self.factored:
            return self.network.apply(state.params, obs)
        value, advantages = self._parts(state.params, obs)
        q = value.reshape((-1,) + (1,) * len(advantages))
        for i, a in enumerate(advantages):
            shape = [a.shape[0]] + [1] * len(advantages)
            shape[1 + i] = a.shape[1]
            q = q + a.reshape(shape)
        return q.reshape(obs.shape[0], self.num_actions)

    def policy_marginals(self, state: DQNState, obs: jax.Array) -> list[jax.Array]:
        """Eq. 10's ``P(a|s)`` marginalised onto each axis, ``[(B, sizes[i])]``. Under the
        factored head ``P(a|s) = prod_i softmax(A_i(s, .))[a_i]`` exactly (``V`` cancels)."""
        if not self.factored:
            return super().policy_marginals(state, obs)
        _, advantages = self._parts(state.params, obs)
        return [jax.nn.softmax(a, axis=-1) for a in advantages]

    def policy_view(self, state: DQNState, obs: jax.Array, keep: Sequence[int], fixed: dict[int, int] | None = None) -> jax.Array:
        if not self.factored:
            return super().policy_view(state, obs, keep, fixed)
        return marginal_view(self.policy_marginals(state, obs), keep, fixed)

    def top_actions(self, state: DQNState, obs: jax.Array, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` actions by mean ``Q`` over ``obs``; the factored head's mean ``Q`` is
        ``mean V + sum_i mean A_i``, so its top-``k`` comes without the product space."""
        if not self.factored:
            return super().top_actions(state, obs, k)
        value, advantages = self._parts(state.params, obs)
        cells, scores = top_k_separable([np.asarray(jnp.mean(a, axis=0)) for a in advantages], k)
        actions = np.asarray(cells, np.int64) @ np.asarray(self._strides, np.int64)
        return actions, scores + float(jnp.mean(value))

    def greedy(self, state: DQNState, obs: jax.Array) -> jax.Array:
        if not self.factored:
            return super().greedy(state, obs)
        _, advantages = self._parts(state.params, obs)
        return self._cells_to_actions([jnp.argmax(a, axis=-1) for a in advantages])

    def act(self, state: DQNState, obs: jax.Array, key: jax.Array) -> jax.Array:
        # epsilon-greedy without building a probability vector over the actions.
        greedy = self.greedy(state, obs)
        k_explore, k_random = jax.random.split(key)
        explore = jax.random.uniform(k_explore, greedy.shape) < self.epsilon(state.iteration)
        if self.factored:  # uniform over the product = independent uniform per axis
            keys = jax.random.split(k_random, len(self.sizes))
            random = self._cells_to_actions([jax.random.randint(k, greedy.shape, 0, n, dtype=jnp.int32) for k, n in zip(keys, self.sizes)])
        else:
            random = jax.random.randint(k_random, greedy.shape, 0, self.num_actions, dtype=jnp.int32)
        return jnp.where(explore, random, greedy)

    # -- learning ---------------------------------------------------------------------------
    def _factored_td(self, params: dict, target_params: dict, batch: dict, discount: jax.Array) -> jax.Array:
        """TD errors ``(B,)`` of the factored head; ``max_a' Q(s', a')`` is ``V + sum_i max A_i``."""
        value, advantages = self._parts(params, batch["obs"])
        q_sa = self._q_of(value, advantages, batch["action"])
        next_value, next_adv = self._parts(target_params, batch["next_obs"])
        if self.config.double_q:  # choose a' with the online network, evaluate it with the target
            _, online_adv = self._parts(params, batch["next_obs"])
            best = self._cells_to_actions([jnp.argmax(a, axis=-1) for a in online_adv])
            q_next = self._q_of(next_value, next_adv, best)
        else:
            q_next = next_value + sum(jnp.max(a, axis=-1) for a in next_adv)
        target = batch["reward"] + discount * jax.lax.stop_gradient(q_next)
        return target - q_sa

    def _loss(self, params: dict, target_params: dict, batch: dict) -> jax.Array:
        c = self.config
        discount = c.gamma * (1.0 - batch["terminal"].astype(jnp.float32))
        if self.factored:
            return jnp.mean(rlax.huber_loss(self._factored_td(params, target_params, batch, discount), c.huber_delta))
        q_tm1 = self.network.apply(params, batch["obs"])
        q_t_target = self.network.apply(target_params, batch["next_obs"])
        if c.double_q:
            q_t_online = self.network.apply(params, batch["next_obs"])
            td = jax.vmap(rlax.double_q_learning)(q_tm1, batch["action"], batch["reward"], discount, q_t_target, q_t_online)
        else:
            td = jax.vmap(rlax.q_learning)(q_tm1, batch["action"], batch["reward"], discount, q_t_target)
        return jnp.mean(rlax.huber_loss(td, c.huber_delta))

    def _learn(self, state: DQNState, key: jax.Array) -> tuple[DQNState, jax.Array]:
        c = self.config
        batch = self.replay.sample(state.replay, key).experience
        loss, grads = jax.value_and_grad(self._loss)(state.params, state.target_params, batch)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        n = state.updates + 1
        if c.target_update == "polyak":
            target = optax.incremental_update(params, state.target_params, c.polyak_tau)
        else:
            target = optax.periodic_update(params, state.target_params, n, c.target_period)
        return state.replace(params=params, target_params=target, opt_state=opt_state, updates=n), loss

    def update(self, state: DQNState, transition: Transition, key: jax.Array) -> tuple[DQNState, dict[str, jax.Array]]:
        items = dict(
            obs=transition.obs,
            action=transition.action,
            reward=transition.reward,
            next_obs=transition.next_obs,
            terminal=transition.terminal,
        )
        state = state.replace(replay=self.replay.add(state.replay, items), iteration=state.iteration + 1)

        def learn_many(state: DQNState) -> tuple[DQNState, jax.Array]:
            def body(carry, k):
                s, _ = carry
                s, loss = self._learn(s, k)
                return (s, loss), None

            keys = jax.random.split(key, self.config.updates_per_iteration)
            (state, loss), _ = jax.lax.scan(body, (state, jnp.float32(0)), keys)
            return state, loss

        state, loss = jax.lax.cond(
            self.replay.can_sample(state.replay), learn_many, lambda s: (s, jnp.float32(jnp.nan)), state
        )
        return state, {"loss": loss, "epsilon": self.epsilon(state.iteration)}
