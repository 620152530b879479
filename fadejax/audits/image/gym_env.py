"""An audit as a gymnasium environment, so stable-baselines3, CleanRL or any agent can drive it.

Optional: needs ``pip install 'fadejax[bench]'`` (gymnasium). Macroscopic by default: an
episode is one step — observe a randomly drawn held-out sample, choose a cell, get eq. 4's
reward — as in the paper's reference code. With ``micro`` set, an episode walks the
concept grid one notch per step from the start cell until the model fails or
``max_steps`` moves are made (eq. 5). One ``step`` = one audited-model query; for
throughput prefer fadejax's own batched loop (``fadejax discover``), which makes the
same queries hundreds at a time.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from fadejax.audits.image.task import ClassificationTask
from fadejax.core.rewards import classification_reward, family_reward, micro_reward
from fadejax.core.spaces import MicroSpace


class AuditEnv(gym.Env):
    """One image audit (a :class:`ClassificationTask`) as a gymnasium ``Env``.

    Observation: the sample's observation vector ``(D,)`` float32, bounded by the smallest and
    largest feature of the held-out samples' observations (every observation is one of them);
    in micro mode also the cell normalised to ``[0, 1]`` per axis and the episode's elapsed
    share of ``max_steps``, as the engine observes a walk (eq. 5's step penalty depends on it).
    Action: ``Discrete(num_actions)``. ``info`` of each step holds
    ``sample, label, cell, concepts, failed, predicted, score``; for a model family
    ``failed`` is the aggregate's (``reward.aggregate``), ``predicted`` and ``score`` are
    ``None`` and ``models`` holds each model's ``{failed, predicted, score}``.

    Args:
      task: what is audited (data, perturbations, oracle, concept space).
      reward: a :class:`fadejax.engine.config.RewardConfig`.
      micro: a :class:`MicroSpace` for microscopic episodes, else macroscopic.
      max_steps, alpha: microscopic episode length and step penalty.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, task: ClassificationTask, reward, micro: MicroSpace | None = None, max_steps: int = 8, alpha: float = 5.0):
        self.task = task
        self.reward_config = reward
        self.micro = micro
        self.max_steps = max_steps
        self.alpha = alpha
        self._observations = np.asarray(task.observations, np.float32)
        extra = task.space.num_axes + 1 if micro is not None else 0
        features = self._observations.shape[1]
        low = np.concatenate([np.full(features, self._observations.min(), np.float32), np.zeros(extra, np.float32)])
        high = np.concatenate([np.full(features, self._observations.max(), np.float32), np.ones(extra, np.float32)])
        self.observation_space = gym.spaces.Box(low, high, (features + extra,), np.float32)
        self.action_space = gym.spaces.Discrete(micro.num_actions if micro is not None else task.space.num_actions)
        self._labels = np.asarray(task.labels)
        self._sizes = np.asarray(task.space.sizes)
        # A step is two compiled calls around the audited model (its inputs; its scoring),
        # not a dozen eager operations: the model's own call is then most of a step.
        self._prepare = jax.jit(functools.partial(_perturbed, task.perturb, task.space))
        self._score = jax.jit(functools.partial(_scored, reward, tuple(task.members or ()), alpha if micro is not None else None))
        self._move = jax.jit(micro.move) if micro is not None else None
        self._sample = 0
        self._cell = np.zeros(task.space.num_axes, np.int32)
        self._steps = 0
        self._key = jax.random.PRNGKey(0)

    def _obs(self) -> np.ndarray:
        obs = self._observations[self._sample].copy()  # gymnasium: every call returns new data
        if self.micro is not None:
            elapsed = np.float32(self._steps / self.max_steps)
            position = self._cell.astype(np.float32) / (self._sizes - 1).astype(np.float32)  # as ConceptSpace.normalized_cell
            obs = np.concatenate([obs, position, [elapsed]]).astype(np.float32)
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        self._sample = int(self.np_random.integers(self.task.num_samples))
        self._cell = np.asarray(self.micro.start if self.micro is not None else np.zeros(self.task.space.num_axes), np.int32)
        self._steps = 0
        return self._obs(), {}

    def perturbed_image(self, cell: np.ndarray) -> jax.Array:
        """The current sample under ``cell`` ``(num_axes,)``, ``(1, H, W, C)``."""
        image, self._key = self._prepare(self.task.images, self._sample, jnp.asarray(cell, jnp.int32), self._key)
        return image

    def step(self, action: int):
        action = int(action)
        if self.micro is not None:
            self._cell = np.asarray(self._move(self._cell, action))
        else:
            self._cell = self.task.space.host_cell_of(action)
        self._steps += 1
        logits = self.task.oracle(self.perturbed_image(self._cell))
        outcome, per, reward = jax.device_get(self._score(logits, self._labels[self._sample : self._sample + 1], self._steps))
        failed = bool(outcome.failed[0])
        terminated = self.micro is None or failed
        truncated = self.micro is not None and not failed and self._steps >= self.max_steps
        cell_index = self.task.space.host_action_of(self._cell)
        info = {
            "sample": self._sample, "label": int(self._labels[self._sample]), "cell": cell_index,
            "concepts": self.task.space.describe(cell_index), "failed": failed,
            "predicted": int(outcome.predicted[0]), "score": float(outcome.score[0]),
        }
        if per is not None:
            info["predicted"] = info["score"] = None  # no single model's answer: each one's is below
            info["models"] = {name: {"failed": bool(per.failed[m, 0]), "predicted": int(per.predicted[m, 0]), "score": float(per.score[m, 0])}
                              for m, name in enumerate(self.task.members)}
        return self._obs(), float(reward[0]), terminated, truncated, info


def _perturbed(perturb, space, images: jax.Array, sample: jax.Array, cell: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Sample ``sample`` of ``images`` ``(N, H, W, C)`` under ``cell`` ``(num_axes,)``: ``((1, H, W, C), the next key)``."""
    key, draw = jax.random.split(key)
    return perturb(images[sample][None], space.values_of_cell(cell[None]), draw), key


def _scored(reward, members: tuple[str, ...], alpha: float | None, logits: jax.Array, label: jax.Array, steps: jax.Array):
    """Eq. 4 for one query, ``(outcome, each model's outcome or None, the step's reward (1,))``:
    a family's aggregate as ``reward.aggregate`` says, and in micro mode (``alpha`` given)
    eq. 5's step penalty on top."""
    r = reward
    per = None
    if members:  # (M, 1, classes) logits
        rows = {name: i for i, name in enumerate(members)}
        outcome, per = family_reward(logits, label, aggregate=r.aggregate, a=rows.get(r.a), b=rows.get(r.b),
                                     scale=r.scale, const=r.const, form=r.form)
    else:
        outcome = classification_reward(logits, label, scale=r.scale, const=r.const, form=r.form)
    shaped = outcome.reward if alpha is None else micro_reward(outcome.reward, jnp.int32(steps), alpha)
    return outcome, per, shaped
