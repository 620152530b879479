"""DQN searcher: a Flax MLP Q-network, optax, rlax losses and a flashbax replay on device.

Readable top to bottom: hyper-parameters in :class:`DQNConfig`, the network, the state,
then ``act`` and ``update``. Macroscopic episodes are one step long (every transition is
terminal, so the target is the reward, the paper's eq. 2); microscopic ones bootstrap
with ``gamma * max_a' Q(s', a')`` (eq. 3), or its double-Q form.
"""

from __future__ import annotations

from typing import Literal, Sequence

import flashbax as fbx
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
import pydantic
import rlax

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

    def action_scores(self, state: DQNState, obs: jax.Array) -> jax.Array:
        return self.network.apply(state.params, obs)

    def act(self, state: DQNState, obs: jax.Array, key: jax.Array) -> jax.Array:
        # epsilon-greedy without building a probability vector over the actions.
        greedy = self.greedy(state, obs)
        k_explore, k_random = jax.random.split(key)
        explore = jax.random.uniform(k_explore, greedy.shape) < self.epsilon(state.iteration)
        random = jax.random.randint(k_random, greedy.shape, 0, self.num_actions, dtype=jnp.int32)
        return jnp.where(explore, random, greedy)

    def _loss(self, params: dict, target_params: dict, batch: dict) -> jax.Array:
        c = self.config
        q_tm1 = self.network.apply(params, batch["obs"])
        q_t_target = self.network.apply(target_params, batch["next_obs"])
        discount = c.gamma * (1.0 - batch["terminal"].astype(jnp.float32))
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
