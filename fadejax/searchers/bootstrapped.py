"""Bootstrapped DQN: an ensemble of Q-networks whose disagreement drives exploration.

After Osband et al. (2016), "Deep Exploration via Bootstrapped DQN", with the optional
randomised prior functions of Osband et al. (2018), "Randomized Prior Functions for Deep
Reinforcement Learning". No epsilon-greedy schedule: exploration comes from the
ensemble's uncertainty.

* **Heads.** ``num_heads`` (K) *independent* MLPs, the DQN's flat network each, held as
  one parameter pytree with a leading ``(K,)`` axis and evaluated with ``jax.vmap``. The
  paper shares a convolutional torso for speed; independent networks are as cheap here
  (small MLPs) and keep the heads' errors independent, which is what the bootstrap is for.
  Each head has its own Adam state and its own gradient clipping (the optimiser is vmapped
  too), so head ``k`` is exactly a DQN trained on its own bootstrap sample.
* **Priors** (``prior_scale > 0``): head ``k``'s value is ``f_k(s) + prior_scale * p_k(s)``
  with ``p_k`` a second, randomly initialised network of the same shape that is never
  trained (stop-gradient). The prior keeps the heads apart where no data constrains them.
* **Bootstrap masks.** Every replayed transition carries a mask ``(K,)`` drawn
  ``Bernoulli(mask_probability)`` when it is added (from the update's key, so resume is
  exact); head ``k`` learns only from transitions whose mask ``k`` is 1: its loss is the
  masked mean of its Huber TD errors over the sampled batch (0, with zero gradient, when
  the batch holds none of its transitions). The loss reported is the sum over heads.
* **Acting.** Each environment acts greedily with one head, drawn uniformly. A head is
  drawn per environment when its episode ends and held until then: macroscopic episodes
  are one query, so each query gets a fresh head (Thompson sampling from the bootstrap
  posterior); microscopic episodes keep theirs for the whole walk. The episode end the
  searcher sees is ``Transition.terminal`` (the model failed); an episode cut at
  ``micro.max_steps`` is not visible to a searcher, so such an environment carries its
  head over into its next episode. An optional ``epsilon`` floor acts uniformly at random.
* **Summaries.** :meth:`action_scores` is the ensemble mean ``Q`` (the posterior mean), so
  eq. 10's landscape and the report's modes read the posterior; :meth:`action_uncertainty`
  is the ensemble's standard deviation.

Microscopic transitions bootstrap with ``gamma`` (per head, optionally double-Q with the
head's own online network choosing ``a'``); macroscopic ones are terminal. Only the flat
head: ``head: factored`` is refused.
"""

from __future__ import annotations

from typing import Any, Literal

import flashbax as fbx
import flax.struct
import jax
import jax.numpy as jnp
import optax
import pydantic

from fadejax.searchers.base import Searcher, SearcherConfig, Transition
from fadejax.searchers.dqn import QNetwork, learn_from_replay, learning_rate_schedule, update_target


class BootstrappedConfig(SearcherConfig):
    """Hyper-parameters of the bootstrapped DQN.

    ``num_heads`` Q-networks (K), each trained on the transitions its bootstrap mask
    (``Bernoulli(mask_probability)`` per transition and head) selects; ``prior_scale``
    weights the untrained random prior network added to each head (0 = none).
    ``updates_per_iteration`` gradient steps of ``batch_size`` replayed transitions per
    loop iteration; learning-rate schedule and target network as in the DQN
    (``learning_rate_schedule`` counted in gradient steps, ``target_update``).
    ``epsilon``: a constant chance of a uniformly random action (0 = pure ensemble
    sampling).
    """

    kind: Literal["bootstrapped"] = "bootstrapped"
    num_heads: int = pydantic.Field(10, ge=1)
    mask_probability: float = pydantic.Field(0.5, gt=0.0, le=1.0)
    prior_scale: float = pydantic.Field(0.0, ge=0.0)
    hidden_sizes: tuple[pydantic.PositiveInt, ...] = (256, 256)
    learning_rate: pydantic.PositiveFloat = 1e-3
    learning_rate_schedule: Literal["constant", "cosine", "linear"] = "constant"
    learning_rate_end_factor: float = pydantic.Field(0.1, ge=0.0, le=1.0)
    max_grad_norm: pydantic.PositiveFloat = 10.0
    gamma: float = pydantic.Field(0.9, ge=0.0, le=1.0)
    batch_size: pydantic.PositiveInt = 128
    replay_capacity: pydantic.PositiveInt = 50_000
    min_replay: pydantic.PositiveInt = 256
    updates_per_iteration: pydantic.PositiveInt = 4
    double_q: bool = True
    huber_delta: pydantic.PositiveFloat = 1.0
    target_update: Literal["periodic", "polyak"] = "polyak"
    target_period: pydantic.PositiveInt = 50
    polyak_tau: float = pydantic.Field(0.05, gt=0.0, le=1.0)
    epsilon: float = pydantic.Field(0.0, ge=0.0, le=1.0)
    head: Literal["flat", "factored"] = "flat"

    @pydantic.model_validator(mode="after")
    def _flat_only(self) -> "BootstrappedConfig":
        if self.head != "flat":
            raise ValueError("searcher 'bootstrapped' has only the flat head (one output per action); head 'factored' is available with kind 'dqn'")
        return self


@flax.struct.dataclass
class BootstrappedState:
    params: dict  # every leaf with a leading (K,) head axis
    target_params: dict
    prior_params: Any  # (K,)-stacked untrained prior networks; a 0-d placeholder when prior_scale == 0
    opt_state: optax.OptState  # one Adam state per head (leading (K,) axis)
    replay: fbx.flat_buffer.TrajectoryBufferState
    heads: jax.Array  # (B,) int32, the head each environment acts with
    iteration: jax.Array  # int32, loop iterations seen
    updates: jax.Array  # int32, gradient steps taken


class BootstrappedDQN(Searcher):
    """Bootstrapped DQN searcher (Osband et al., 2016) with the options in :class:`BootstrappedConfig`."""

    config: BootstrappedConfig
    reports = {
        "loss": "sum over heads of each head's masked Huber TD loss, last gradient step (null until the replay buffer can be sampled)",
        "q_max": "max_a of the ensemble-mean Q(s, a), averaged over the batch's observations",
        "head_spread": "standard deviation of Q(s, a) across heads, averaged over the batch and actions: what drives exploration",
    }

    def __init__(self, config: BootstrappedConfig, **kwargs):
        super().__init__(config, **kwargs)
        c = config
        self.num_heads = c.num_heads
        self.network = QNetwork(tuple(c.hidden_sizes), self.num_actions)
        self.learning_rate = learning_rate_schedule(c.learning_rate_schedule, c.learning_rate, c.learning_rate_end_factor, self.total_iterations * c.updates_per_iteration)
        lr = c.learning_rate if c.learning_rate_schedule == "constant" else self.learning_rate
        self.optimizer = optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(lr))
        self.replay = fbx.make_item_buffer(
            max_length=c.replay_capacity,
            min_length=max(c.min_replay, c.batch_size),
            sample_batch_size=c.batch_size,
            add_batches=True,
        )
        self._apply = jax.vmap(self.network.apply, in_axes=(0, None))  # (K-stacked params, (N, D)) -> (K, N, A)

    def init(self, key: jax.Array) -> BootstrappedState:
        k_params, k_heads = jax.random.split(key)
        dummy_obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        with_prior = self.config.prior_scale > 0
        k = self.num_heads
        # the trained heads and (with priors) the prior networks in one vmapped init
        nets = jax.vmap(self.network.init, in_axes=(0, None))(jax.random.split(k_params, 2 * k if with_prior else k), dummy_obs)
        params = jax.tree.map(lambda x: x[:k], nets)
        prior = jax.tree.map(lambda x: x[k:], nets) if with_prior else jnp.zeros((), jnp.float32)
        item = dict(
            obs=jnp.zeros((self.obs_dim,), jnp.float32),
            action=jnp.int32(0),
            reward=jnp.float32(0),
            next_obs=jnp.zeros((self.obs_dim,), jnp.float32),
            terminal=jnp.bool_(True),
            mask=jnp.zeros((self.num_heads,), jnp.float32),
        )
        return BootstrappedState(
            params=params,
            target_params=jax.tree.map(jnp.copy, params),  # distinct buffers: the loop donates state
            prior_params=prior,
            opt_state=jax.vmap(self.optimizer.init)(params),
            replay=self.replay.init(item),
            heads=self._draw_heads(k_heads, self.num_envs),
            iteration=jnp.int32(0),
            updates=jnp.int32(0),
        )

    def _draw_heads(self, key: jax.Array, n: int) -> jax.Array:
        return jax.random.randint(key, (n,), 0, self.num_heads, dtype=jnp.int32)

    # -- the ensemble -------------------------------------------------------------------
    def head_values(self, state: BootstrappedState, obs: jax.Array, params: dict | None = None) -> jax.Array:
        """Every head's ``Q(s, a)`` (prior included), ``(K, B, A)``."""
        q = self._apply(state.params if params is None else params, obs)
        if self.config.prior_scale > 0:
            q = q + self.config.prior_scale * jax.lax.stop_gradient(self._apply(state.prior_params, obs))
        return q

    def action_scores(self, state: BootstrappedState, obs: jax.Array) -> jax.Array:
        """The ensemble mean ``Q`` (the bootstrap posterior's mean), ``(B, A)``."""
        return jnp.mean(self.head_values(state, obs), axis=0)

    def action_uncertainty(self, state: BootstrappedState, obs: jax.Array) -> jax.Array:
        """The ensemble's standard deviation of ``Q``, ``(B, A)``."""
        return jnp.std(self.head_values(state, obs), axis=0)

    def act(self, state: BootstrappedState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Each environment's own head's argmax (heads held in ``state.heads``; a batch of
        another size than ``num_envs`` draws fresh heads from ``key``)."""
        k_heads, k_explore, k_random = jax.random.split(key, 3)
        n = obs.shape[0]
        heads = state.heads if n == state.heads.shape[0] else self._draw_heads(k_heads, n)
        q = self.head_values(state, obs)  # (K, B, A)
        mine = jnp.take_along_axis(q, heads[None, :, None], axis=0)[0]  # (B, A): row b from head heads[b]
        action = jnp.argmax(mine, axis=-1).astype(jnp.int32)
        if self.config.epsilon > 0:
            explore = jax.random.uniform(k_explore, (n,)) < self.config.epsilon
            action = jnp.where(explore, jax.random.randint(k_random, (n,), 0, self.num_actions, dtype=jnp.int32), action)
        return action

    # -- learning -----------------------------------------------------------------------
    def _head_losses(self, params: dict, target_params: dict, prior: Any, batch: dict) -> jax.Array:
        """Each head's masked mean Huber TD error over the batch, ``(K,)``."""
        c = self.config
        import rlax  # here, not at the top: rlax pulls in distrax and TFP, ~1 s of every command's start
        discount = c.gamma * (1.0 - batch["terminal"].astype(jnp.float32))

        def values(p, obs):
            q = self._apply(p, obs)
            if c.prior_scale > 0:
                q = q + c.prior_scale * jax.lax.stop_gradient(self._apply(prior, obs))
            return q

        q_tm1 = values(params, batch["obs"])  # (K, N, A)
        q_t_target = values(target_params, batch["next_obs"])
        per_sample = jax.vmap(rlax.q_learning, in_axes=(0, 0, 0, 0, 0))
        if c.double_q:
            q_t_online = values(params, batch["next_obs"])
            per_sample = jax.vmap(rlax.double_q_learning, in_axes=(0, 0, 0, 0, 0, 0))
            td = jax.vmap(per_sample, in_axes=(0, None, None, None, 0, 0))(q_tm1, batch["action"], batch["reward"], discount, q_t_target, q_t_online)
        else:
            td = jax.vmap(per_sample, in_axes=(0, None, None, None, 0))(q_tm1, batch["action"], batch["reward"], discount, q_t_target)
        huber = rlax.huber_loss(td, c.huber_delta)  # (K, N)
        mask = batch["mask"].T.astype(jnp.float32)  # (K, N)
        return jnp.sum(mask * huber, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)

    def _loss(self, params: dict, target_params: dict, prior: Any, batch: dict) -> jax.Array:
        """Sum over heads of the masked losses; head ``k``'s parameters see only its own term."""
        return jnp.sum(self._head_losses(params, target_params, prior, batch))

    def _learn(self, state: BootstrappedState, key: jax.Array) -> tuple[BootstrappedState, jax.Array]:
        c = self.config
        batch = self.replay.sample(state.replay, key).experience
        loss, grads = jax.value_and_grad(self._loss)(state.params, state.target_params, state.prior_params, batch)
        updates, opt_state = jax.vmap(self.optimizer.update)(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        n = state.updates + 1
        target = update_target(c, params, state.target_params, n)
        return state.replace(params=params, target_params=target, opt_state=opt_state, updates=n), loss

    def update(self, state: BootstrappedState, transition: Transition, key: jax.Array) -> tuple[BootstrappedState, dict[str, jax.Array]]:
        k_mask, k_heads, k_learn = jax.random.split(key, 3)
        n = transition.action.shape[0]
        mask = jax.random.bernoulli(k_mask, self.config.mask_probability, (n, self.num_heads)).astype(jnp.float32)
        items = dict(
            obs=transition.obs,
            action=transition.action,
            reward=transition.reward,
            next_obs=transition.next_obs,
            terminal=transition.terminal,
            mask=mask,
        )
        heads = state.heads
        if n == heads.shape[0]:  # a new head for every environment whose episode ended
            heads = jnp.where(transition.terminal, self._draw_heads(k_heads, n), heads)
        state = state.replace(replay=self.replay.add(state.replay, items), heads=heads, iteration=state.iteration + 1)

        state, loss = learn_from_replay(self.replay, state, self._learn, k_learn, self.config.updates_per_iteration)
        q = self.head_values(state, transition.obs)  # (K, B, A)
        return state, {"loss": loss, "q_max": jnp.mean(jnp.max(jnp.mean(q, axis=0), axis=-1)), "head_spread": jnp.mean(jnp.std(q, axis=0))}
