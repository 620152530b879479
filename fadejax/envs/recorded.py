"""A recording as a JAX-native RL environment with gymnax's interface.

A recording (:mod:`fadejax.engine.recording`) holds a real audited model's answer to every
(held-out sample, cell) pair. Here it becomes an environment whose ``reset(key, params)`` and
``step(key, state, action, params)`` are pure, jittable and ``vmap``-able, as gymnax's
``Environment`` (the interface rejax and PureJaxRL-style training loops consume: ``step``
returns ``obs, state, reward, done, info`` and resets a finished episode itself).

* **macro** (:class:`RecordedMacroEnv`): one-step episodes. ``reset`` draws a held-out sample
  uniformly; the observation is its observation vector ``(D,)``; the action is a cell
  (``0 .. cells - 1``); the reward is the audit's macroscopic reward on the recorded answer
  (eq. 4 for images, eq. 6 for text), exactly as ``fadejax discover`` scores a recorded audit.
* **micro** (:class:`RecordedMicroEnv`): the incremental walks of the micro configs. ``reset``
  draws a sample and puts it on the start cell; an action moves one axis one notch (``2j``
  lowers axis ``j``, ``2j + 1`` raises it, clipped at the grid's edge); the reward is eq. 5 /
  eq. 7 (the recorded base minus ``alpha`` per move so far); the episode ends at the first
  failure or after ``max_steps`` moves. The observation is the sample's vector, the cell
  normalised to ``[0, 1]`` per axis and the elapsed share of ``max_steps``, as the engine's.

With ``ledger=True`` the state also keeps which pairs this environment has asked, across
episodes (``asked`` ``(N, cells)`` bool, ``queries``, ``failing``), so a benchmark can score
what an agent found while it learned (:mod:`fadejax.envs.scoring`); with
``informative=True`` a pair the environment has already asked pays ``params.reask_reward``
instead of its reward, so an agent learns that a re-asked deterministic pair teaches nothing.
"""

from __future__ import annotations

from functools import partial
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from fadejax.core.rewards import micro_reward
from fadejax.core.spaces import ConceptSpace, MicroSpace
from fadejax.engine.recording import Recording


@struct.dataclass
class RecordedParams:
    """What an environment reads of its recording (a pytree: ``vmap`` over several
    recordings of one shape works). Shapes: N samples, C cells, D observation features."""

    failed: jax.Array  # (N, C) bool
    reward: jax.Array  # (N, C) float32, the macroscopic reward
    micro_base: jax.Array  # (N, C) float32, eq. 5 / eq. 7's base (the macroscopic reward where the audit has none)
    observations: jax.Array  # (N, D) float32
    max_steps_in_episode: int = 1
    alpha: float = 5.0  # eq. 5's step penalty (micro)
    reask_reward: float = 0.0  # what an already-asked pair pays when the environment is informative


@struct.dataclass
class RecordedState:
    """``time``: moves so far in the episode; ``sample``: the held-out sample; ``cell``: the
    current cell's value index per axis ``(A,)`` (macro: the last one asked). The ledger
    (``asked`` ``(N, C)`` bool, or ``(1, 1)`` without a ledger; ``queries``; ``failing``,
    the failing answers) runs across episodes."""

    time: jax.Array
    sample: jax.Array
    cell: jax.Array
    asked: jax.Array
    queries: jax.Array
    failing: jax.Array


class _Recorded(environment.Environment):
    """What the macro and micro environments share: the tables, the ledger and auto-reset."""

    def __init__(self, recording: Recording, space: ConceptSpace, *, name: str, ledger: bool = False, informative: bool = False):
        if recording.num_actions != space.num_actions:
            raise ValueError(f"the recording has {recording.num_actions} cells, the concept space {space.num_actions}")
        if informative and not ledger:
            raise ValueError("informative=True needs ledger=True: what an environment has asked is kept in its ledger")
        super().__init__()
        self.recording, self.space, self._name = recording, space, name
        self.ledger, self.informative = ledger, informative
        obs = np.asarray(recording.observations, np.float32)
        self._obs_low, self._obs_high = float(obs.min()), float(obs.max())

    # -- gymnax's interface ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    def _tables(self, max_steps: int, alpha: float, reask_reward: float) -> RecordedParams:
        r = self.recording
        base = r.reward if r.micro_base is None else r.micro_base
        return RecordedParams(
            failed=jnp.asarray(r.failed, bool), reward=jnp.asarray(r.reward, jnp.float32),
            micro_base=jnp.asarray(base, jnp.float32), observations=jnp.asarray(r.observations, jnp.float32),
            max_steps_in_episode=max_steps, alpha=alpha, reask_reward=reask_reward)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: RecordedState, action: int | jax.Array, params: RecordedParams | None = None):
        """gymnax's step with its auto-reset, except that the ledger runs on across episodes
        (and is not copied through the reset's ``select``)."""
        if params is None:
            params = self.default_params
        # a step draws nothing (its answer is recorded), so the whole key goes to the reset's draw
        obs_st, state_st, reward, done, info = self.step_env(key, state, action, params)
        obs_re, state_re = self.reset_env(key, params)
        episode = ("time", "sample", "cell")
        kept = {f: jax.lax.select(done, getattr(state_re, f), getattr(state_st, f)) for f in episode}
        return jax.lax.select(done, obs_re, obs_st), state_st.replace(**kept), reward, done, info

    def reset_env(self, key: jax.Array, params: RecordedParams) -> tuple[jax.Array, RecordedState]:
        n, cells = params.failed.shape
        sample = jax.random.randint(key, (), 0, n)
        ledger = (n, cells) if self.ledger else (1, 1)
        state = RecordedState(time=jnp.int32(0), sample=sample, cell=self._start(), asked=jnp.zeros(ledger, bool),
                              queries=jnp.int32(0), failing=jnp.int32(0))
        return self.get_obs(state, params), state

    def _answer(self, state: RecordedState, flat: jax.Array, params: RecordedParams, base: jax.Array) -> tuple[jax.Array, jax.Array, RecordedState]:
        """The recorded answer to ``(state.sample, flat)``: failed, the reward (``base`` unless the
        pair was asked before in an informative environment) and the state's ledger updated."""
        failed = params.failed[state.sample, flat]
        reward = base
        if self.ledger:
            known = state.asked[state.sample, flat]
            if self.informative:
                reward = jnp.where(known, jnp.float32(params.reask_reward), reward)
            state = state.replace(asked=state.asked.at[state.sample, flat].set(True), queries=state.queries + 1,
                                  failing=state.failing + failed.astype(jnp.int32))
        return failed, reward, state

    def action_space(self, params: RecordedParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions)

    def state_space(self, params: RecordedParams) -> spaces.Dict:
        n, cells = params.failed.shape
        ledger = (n, cells) if self.ledger else (1, 1)
        return spaces.Dict({
            "time": spaces.Discrete(int(params.max_steps_in_episode) + 1), "sample": spaces.Discrete(n),
            "cell": spaces.Box(0, max(a.size for a in self.space.axes) - 1, (self.space.num_axes,), jnp.int32),
            "asked": spaces.Box(0, 1, ledger, jnp.bool_), "queries": spaces.Discrete(np.iinfo(np.int32).max),
            "failing": spaces.Discrete(np.iinfo(np.int32).max)})

    def _start(self) -> jax.Array:
        return jnp.zeros((self.space.num_axes,), jnp.int32)


class RecordedMacroEnv(_Recorded):
    """One-step episodes: observe a held-out sample, choose a cell, get the audit's reward.

    Args:
      recording: the answers (:func:`fadejax.engine.recording.load_recording`).
      space: the concept space it was recorded over (cell order).
      name: e.g. ``fadejax/digits-macro-v0``.
      ledger, informative: see the module docstring.
    """

    @property
    def default_params(self) -> RecordedParams:
        return self._tables(max_steps=1, alpha=0.0, reask_reward=0.0)

    @property
    def num_actions(self) -> int:
        return self.space.num_actions

    def get_obs(self, state: RecordedState, params: RecordedParams | None = None, key: jax.Array | None = None) -> jax.Array:
        params = self.default_params if params is None else params
        return params.observations[state.sample]

    def step_env(self, key: jax.Array, state: RecordedState, action: int | jax.Array, params: RecordedParams):
        flat = jnp.asarray(action, jnp.int32)
        failed, reward, state = self._answer(state, flat, params, params.reward[state.sample, flat])
        state = state.replace(time=state.time + 1, cell=self.space.cell_of(flat))
        done = self.is_terminal(state, params)
        return self.get_obs(state, params), state, reward, done, {"failed": failed, "cell": flat, "sample": state.sample}

    def is_terminal(self, state: RecordedState, params: RecordedParams) -> jax.Array:
        """Always: an episode is one query (a constant, so the compiled step drops the
        observation that auto-reset replaces)."""
        return jnp.bool_(True)

    def observation_space(self, params: RecordedParams | None = None) -> spaces.Box:
        return spaces.Box(self._obs_low, self._obs_high, (self.recording.observations.shape[1],), jnp.float32)


class RecordedMicroEnv(_Recorded):
    """Incremental walks from the start cell (eq. 5 / eq. 7), as the micro configs run them.

    Args:
      recording, space, name, ledger, informative: as :class:`RecordedMacroEnv`.
      micro: the walk's start cell (:class:`fadejax.core.spaces.MicroSpace`).
      max_steps: moves before an episode without a failure is cut off.
      alpha: the step penalty.
    """

    def __init__(self, recording: Recording, space: ConceptSpace, micro: MicroSpace, *, max_steps: int, alpha: float, name: str,
                 ledger: bool = False, informative: bool = False):
        super().__init__(recording, space, name=name, ledger=ledger, informative=informative)
        self.micro, self.max_steps, self.alpha = micro, int(max_steps), float(alpha)

    @property
    def default_params(self) -> RecordedParams:
        return self._tables(max_steps=self.max_steps, alpha=self.alpha, reask_reward=0.0)

    @property
    def num_actions(self) -> int:
        return self.micro.num_actions

    def _start(self) -> jax.Array:
        return jnp.asarray(self.micro.start, jnp.int32)

    def get_obs(self, state: RecordedState, params: RecordedParams | None = None, key: jax.Array | None = None) -> jax.Array:
        params = self.default_params if params is None else params
        elapsed = state.time.astype(jnp.float32) / jnp.float32(params.max_steps_in_episode)
        return jnp.concatenate([params.observations[state.sample], self.space.normalized_cell(state.cell), elapsed[None]])

    def step_env(self, key: jax.Array, state: RecordedState, action: int | jax.Array, params: RecordedParams):
        cell = self.micro.move(state.cell, jnp.asarray(action, jnp.int32))
        flat = self.space.action_of(cell)
        time = state.time + 1
        base = micro_reward(params.micro_base[state.sample, flat], time, params.alpha)
        failed, reward, state = self._answer(state, flat, params, base)
        state = state.replace(time=time, cell=cell)
        done = failed | self.is_terminal(state, params)
        return self.get_obs(state, params), state, reward, done, {"failed": failed, "cell": flat, "sample": state.sample}

    def is_terminal(self, state: RecordedState, params: RecordedParams) -> jax.Array:
        """The step limit (a failure also ends the episode: ``step_env``'s ``done``)."""
        return state.time >= params.max_steps_in_episode

    def observation_space(self, params: RecordedParams | None = None) -> spaces.Box:
        d = self.recording.observations.shape[1]
        low = jnp.concatenate([jnp.full((d,), self._obs_low), jnp.zeros((self.space.num_axes + 1,))]).astype(jnp.float32)
        high = jnp.concatenate([jnp.full((d,), self._obs_high), jnp.ones((self.space.num_axes + 1,))]).astype(jnp.float32)
        return spaces.Box(low, high, (d + self.space.num_axes + 1,), jnp.float32)

