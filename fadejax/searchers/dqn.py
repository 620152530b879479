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
from typing import Any, Literal, Sequence

import flashbax as fbx
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pydantic

from fadejax.core.landscapes import marginal_view, top_k_separable
from fadejax.searchers.base import Searcher, SearcherConfig, Transition


#: Named settings of the learning knobs (``searcher.preset``). A preset fills in only the
#: fields a config does not set itself; explicit fields win. Edit the values here.
PRESETS: dict[str, dict[str, Any]] = {
    # The paper's setting. The paper (its appendix) gives only the epsilon schedule
    # (1.0 -> 0.6, linear over the run) and the network shape (two hidden layers of
    # 256); everything else is this engine's reading of it and equals DQNConfig's
    # defaults: one gradient step per iteration on a batch of 256, Adam at a constant
    # 1e-3, a target network copied every 50 gradient steps, double Q-learning.
    "paper": dict(
        epsilon_start=1.0,  # paper
        epsilon_end=0.6,  # paper
        epsilon_decay_fraction=1.0,  # paper: over the whole run
        epsilon_schedule="linear",  # paper
        hidden_sizes=(256, 256),  # paper
        updates_per_iteration=1,  # engine's reading
        batch_size=256,  # engine's reading
        learning_rate=1e-3,  # engine's reading
        learning_rate_schedule="constant",  # engine's reading
        target_update="periodic",  # engine's reading
        target_period=50,  # engine's reading (gradient steps)
        double_q=True,  # engine's reading
    ),
    # A setting that learns from every query: mostly greedy after the first 30% of the
    # run, 8 gradient steps of 128 transitions per iteration (a replay ratio of
    # 8 * 128 / num_envs samples per new transition), a cosine-decayed learning rate and
    # a soft (Polyak) target. Not from the paper; to be tuned by sweeps.
    "engine": dict(
        epsilon_start=1.0,
        epsilon_end=0.05,
        epsilon_decay_fraction=0.3,
        epsilon_schedule="linear",
        hidden_sizes=(256, 256),
        updates_per_iteration=8,
        batch_size=128,
        learning_rate=1e-3,
        learning_rate_schedule="cosine",
        learning_rate_end_factor=0.1,
        target_update="polyak",
        polyak_tau=0.05,
        double_q=True,
    ),
}


def apply_preset(data: Any) -> Any:
    """A ``mode="before"`` validator's body: ``data`` with its ``preset``'s values filled in
    where ``data`` names no value of its own. An unknown preset is left for the field's
    own validation to report (with the allowed names)."""
    if isinstance(data, dict) and isinstance(data.get("preset"), str) and data["preset"] in PRESETS:
        return {**PRESETS[data["preset"]], **data}
    return data


def epsilon_schedule(kind: str, start: float, end: float, decay_steps: int) -> optax.Schedule:
    """Epsilon per loop iteration: from ``start`` to ``end`` at ``decay_steps``, then flat.
    ``linear`` interpolates; ``exponential`` multiplies by a constant factor per iteration
    (``start * (end / start) ** (t / decay_steps)``, optax.exponential_decay)."""
    decay_steps = max(1, int(decay_steps))
    if kind == "linear":
        return optax.linear_schedule(start, end, decay_steps)
    if kind == "exponential":
        return optax.exponential_decay(start, decay_steps, decay_rate=end / start, end_value=end)
    raise ValueError(f"unknown epsilon schedule '{kind}'")


def learning_rate_schedule(kind: str, value: float, end_factor: float, total_steps: int) -> optax.Schedule:
    """Learning rate per gradient step: ``constant``, or decaying over ``total_steps`` to
    ``end_factor * value`` along a cosine (optax.cosine_decay_schedule, ``alpha = end_factor``)
    or a line (optax.linear_schedule); flat at the end value afterwards."""
    total_steps = max(1, int(total_steps))
    if kind == "constant":
        return optax.constant_schedule(value)
    if kind == "cosine":
        return optax.cosine_decay_schedule(value, total_steps, alpha=end_factor)
    if kind == "linear":
        return optax.linear_schedule(value, value * end_factor, total_steps)
    raise ValueError(f"unknown learning-rate schedule '{kind}'")


def update_target(config, params: dict, target_params: dict, step: jax.Array) -> dict:
    """The target network after gradient step ``step``: moved by ``config.polyak_tau``
    (``target_update: polyak``) or copied every ``config.target_period`` steps (``periodic``)."""
    if config.target_update == "polyak":
        return optax.incremental_update(params, target_params, config.polyak_tau)
    return optax.periodic_update(params, target_params, step, config.target_period)


def learn_from_replay(replay, state, learn_step, key: jax.Array, updates: int):
    """``updates`` gradient steps ``learn_step(state, key) -> (state, loss)`` once ``replay``
    (a flashbax buffer; ``state.replay`` its state) can be sampled; ``(state, last loss)``,
    the loss NaN while it cannot."""

    def learn_many(state):
        def body(carry, k):
            s, _ = carry
            s, loss = learn_step(s, k)
            return (s, loss), None

        (state, loss), _ = jax.lax.scan(body, (state, jnp.float32(0)), jax.random.split(key, updates))
        return state, loss

    return jax.lax.cond(replay.can_sample(state.replay), learn_many, lambda s: (s, jnp.float32(jnp.nan)), state)


class DQNConfig(SearcherConfig):
    """Hyper-parameters of the DQN searcher. The defaults are the paper's setting (the
    ``paper`` preset, see :data:`PRESETS` for which values the paper gives);
    ``preset: engine`` learns far more per query. A preset fills in only the fields the
    config leaves out.

    Learning per query: ``updates_per_iteration`` gradient steps of ``batch_size``
    replayed transitions per loop iteration; epsilon from ``epsilon_start`` to
    ``epsilon_end`` over the first ``epsilon_decay_fraction`` of the run
    (``epsilon_schedule``: ``linear`` or ``exponential``); the learning rate
    ``learning_rate`` either ``constant`` or decaying (``cosine`` / ``linear``) to
    ``learning_rate_end_factor * learning_rate`` at the planned run's last gradient step
    (``total_iterations * updates_per_iteration``; unused under ``constant``); the target
    network copied every ``target_period`` gradient steps (``periodic``) or moved by
    ``polyak_tau`` after each (``polyak``).
    """

    kind: Literal["dqn"] = "dqn"
    preset: Literal["paper", "engine"] | None = None
    hidden_sizes: tuple[pydantic.PositiveInt, ...] = (256, 256)
    learning_rate: pydantic.PositiveFloat = 1e-3
    learning_rate_schedule: Literal["constant", "cosine", "linear"] = "constant"
    learning_rate_end_factor: float = pydantic.Field(0.1, ge=0.0, le=1.0)
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
    epsilon_schedule: Literal["linear", "exponential"] = "linear"
    head: Literal["flat", "factored"] = "flat"

    @pydantic.model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        return apply_preset(data)

    @pydantic.model_validator(mode="after")
    def _exponential_needs_positive_ends(self) -> "DQNConfig":
        if self.epsilon_schedule == "exponential" and min(self.epsilon_start, self.epsilon_end) <= 0.0:
            raise ValueError("epsilon_schedule 'exponential' needs epsilon_start and epsilon_end > 0 (a geometric decay never reaches 0)")
        return self


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

    reports = {
        "loss": "Huber TD loss of the iteration's last gradient step (null until the replay buffer can be sampled)",
        "epsilon": "exploration rate: the share of actions drawn uniformly",
        "q_mean": "Q(s, a) averaged over the batch's observations and every action",
        "q_max": "max_a Q(s, a), the greedy action's value, averaged over the batch",
    }

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
        # Counted in gradient steps; a constant rate is passed as a number so that the
        # optimiser state (and so a checkpoint) is what it was before schedules existed.
        self.learning_rate = learning_rate_schedule(c.learning_rate_schedule, c.learning_rate, c.learning_rate_end_factor, self.total_iterations * c.updates_per_iteration)
        lr = c.learning_rate if c.learning_rate_schedule == "constant" else self.learning_rate
        self.optimizer = optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(lr))
        self.replay = fbx.make_item_buffer(
            max_length=c.replay_capacity,
            min_length=max(c.min_replay, c.batch_size),
            sample_batch_size=c.batch_size,
            add_batches=True,
        )
        decay = max(1, int(round(c.epsilon_decay_fraction * self.total_iterations)))
        self.epsilon = epsilon_schedule(c.epsilon_schedule, c.epsilon_start, c.epsilon_end, decay)

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
        import rlax  # here, not at the top: rlax pulls in distrax and TFP, ~1 s of every command's start
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
        target = update_target(c, params, state.target_params, n)
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

        state, loss = learn_from_replay(self.replay, state, self._learn, key, self.config.updates_per_iteration)
        return state, {"loss": loss, "epsilon": self.epsilon(state.iteration), **self._q_summary(state.params, transition.obs)}

    def _q_summary(self, params: dict, obs: jax.Array) -> dict[str, jax.Array]:
        """``q_mean`` (Q over the batch and every action) and ``q_max`` (the greedy action's
        Q, averaged over the batch) of observations ``(B, D)``, without the ``(B, A)`` table
        under the factored head (its advantages are centred: the mean over actions is ``V``)."""
        if not self.factored:
            q = self.network.apply(params, obs)
            return {"q_mean": jnp.mean(q), "q_max": jnp.mean(jnp.max(q, axis=-1))}
        value, advantages = self._parts(params, obs)
        return {"q_mean": jnp.mean(value), "q_max": jnp.mean(value + sum(jnp.max(a, axis=-1) for a in advantages))}
