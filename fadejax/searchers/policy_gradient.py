"""Policy-gradient searcher: REINFORCE with a learned value baseline (optionally PPO-clipped).

A Flax MLP softmax policy ``pi(a|s)`` over the ``A`` cells, conditioned on the
observation, and a separate MLP value ``b(s)`` as the baseline. Macroscopic episodes are
one step long, so the return of a query is its reward ``r`` and the loss on an
iteration's batch of ``B`` queries is::

    adv  = r - stop_gradient(b(s))
    loss = -mean(adv * log pi(a|s)) + value_coef * mean((r - b(s))^2) - entropy_coef * mean(H(pi(.|s)))

minimised with optax Adam after global-norm gradient clipping. It is on-policy: each
iteration takes ``updates_per_iteration`` gradient steps on that iteration's batch only,
then discards it. With ``updates_per_iteration > 1`` and ``clip_ratio`` set, the policy
term becomes PPO's clipped surrogate ``-mean(min(rho * adv, clip(rho, 1 - eps, 1 + eps) * adv))``
with ``rho = pi(a|s) / pi_old(a|s)`` against the behaviour log-probabilities of the
first pass (the parameters that chose the actions); ``adv`` stays the first pass's.
With one update per iteration the plain REINFORCE loss above is used.

``action_scores`` returns the policy's logits ``(B, A)``, so eq. 10's
``softmax_a score(s, a)`` (the report's landscapes) is exactly the policy ``pi(a|s)``.

Macroscopic only (``supports_micro = False``): multi-step microscopic episodes would need
discounted returns across steps, which this searcher does not keep.
"""

from __future__ import annotations

from typing import Literal, Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
import pydantic

from fadejax.searchers.base import Searcher, SearcherConfig, Transition


class ReinforceConfig(SearcherConfig):
    """Hyper-parameters of the policy-gradient searcher."""

    kind: Literal["reinforce"] = "reinforce"
    #: Hidden layer widths of the policy MLP and of the (separate) value MLP.
    hidden_sizes: tuple[pydantic.PositiveInt, ...] = (128,)
    #: Adam's learning rate.
    learning_rate: pydantic.PositiveFloat = 3e-3
    #: Gradients are clipped to this global norm before Adam.
    max_grad_norm: pydantic.PositiveFloat = 1.0
    #: Weight of the value baseline's squared error in the loss.
    value_coef: pydantic.NonNegativeFloat = 0.5
    #: Weight of the policy's entropy bonus (subtracted from the loss).
    entropy_coef: pydantic.NonNegativeFloat = 0.01
    #: Gradient steps per iteration on that iteration's batch.
    updates_per_iteration: pydantic.PositiveInt = 1
    #: PPO clipping epsilon, used when updates_per_iteration > 1; None = plain REINFORCE every step.
    clip_ratio: pydantic.PositiveFloat | None = 0.2


class PolicyValueNetwork(nn.Module):
    """``(B, D) -> (logits (B, A), value (B,))``: two MLPs, no shared layers."""

    hidden_sizes: Sequence[int]
    num_actions: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = obs
        for size in self.hidden_sizes:
            x = nn.relu(nn.Dense(size)(x))
        # A small last layer: the initial policy is close to uniform.
        logits = nn.Dense(self.num_actions, kernel_init=nn.initializers.variance_scaling(0.01, "fan_in", "truncated_normal"))(x)
        v = obs
        for size in self.hidden_sizes:
            v = nn.relu(nn.Dense(size)(v))
        return logits, nn.Dense(1)(v)[:, 0]


@flax.struct.dataclass
class ReinforceState:
    params: dict
    opt_state: optax.OptState
    updates: jax.Array  # () int32, gradient steps taken


class Reinforce(Searcher):
    """REINFORCE with a value baseline over macroscopic cells (see the module docstring)."""

    supports_micro = False
    config: ReinforceConfig
    reports = {
        "loss": "total loss of the iteration's last update: policy + value_coef * value - entropy_coef * entropy",
        "policy_loss": "the policy-gradient term (clipped surrogate with PPO)",
        "value_loss": "mean squared error of the value baseline",
        "entropy": "mean entropy (nats) of pi(.|s) over the batch",
    }

    def __init__(self, config: ReinforceConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.network = PolicyValueNetwork(tuple(config.hidden_sizes), self.num_actions)
        self.optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate))
        self.ppo = config.updates_per_iteration > 1 and config.clip_ratio is not None

    def init(self, key: jax.Array) -> ReinforceState:
        params = self.network.init(key, jnp.zeros((1, self.obs_dim), jnp.float32))
        return ReinforceState(params=params, opt_state=self.optimizer.init(params), updates=jnp.int32(0))

    def action_scores(self, state: ReinforceState, obs: jax.Array) -> jax.Array:
        """The policy's logits ``(B, A)``: their softmax is ``pi(a|s)``."""
        return self.network.apply(state.params, obs)[0]

    def act(self, state: ReinforceState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """``(B,)`` int32, each environment's action drawn from ``pi(.|s)``."""
        return jax.random.categorical(key, self.action_scores(state, obs), axis=-1).astype(jnp.int32)

    def loss(self, params: dict, batch: dict) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The loss of the module docstring on ``batch`` (``obs (B, D)``, ``action (B,)``,
        ``reward (B,)``, ``advantage (B,)`` and ``old_log_prob (B,)`` from the first pass)."""
        c = self.config
        logits, value = self.network.apply(params, batch["obs"])
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        log_prob = jnp.take_along_axis(log_probs, batch["action"][:, None], axis=-1)[:, 0]
        advantage = batch["advantage"]
        if self.ppo:
            ratio = jnp.exp(log_prob - batch["old_log_prob"])
            clipped = jnp.clip(ratio, 1.0 - c.clip_ratio, 1.0 + c.clip_ratio)
            policy_loss = -jnp.mean(jnp.minimum(ratio * advantage, clipped * advantage))
        else:
            policy_loss = -jnp.mean(advantage * log_prob)
        value_loss = jnp.mean((batch["reward"] - value) ** 2)
        entropy = jnp.mean(-jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1))
        total = policy_loss + c.value_coef * value_loss - c.entropy_coef * entropy
        return total, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}

    def update(self, state: ReinforceState, transition: Transition, key: jax.Array) -> tuple[ReinforceState, dict[str, jax.Array]]:
        """``updates_per_iteration`` Adam steps on this batch; the advantages and behaviour
        log-probabilities are fixed from the parameters that chose the actions."""
        logits, value = self.network.apply(state.params, transition.obs)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        batch = dict(
            obs=transition.obs,
            action=transition.action,
            reward=transition.reward,
            advantage=transition.reward - value,
            old_log_prob=jnp.take_along_axis(log_probs, transition.action[:, None], axis=-1)[:, 0],
        )

        def step(state: ReinforceState, _):
            (total, parts), grads = jax.value_and_grad(self.loss, has_aux=True)(state.params, batch)
            updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
            new = ReinforceState(optax.apply_updates(state.params, updates), opt_state, state.updates + 1)
            return new, {"loss": total, **parts}

        state, metrics = jax.lax.scan(step, state, None, length=self.config.updates_per_iteration)
        return state, jax.tree.map(lambda m: m[-1], metrics)
