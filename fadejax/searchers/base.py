"""The searcher interface: what the discovery loop needs from an RL agent or a baseline.

A searcher is a plain Python object holding only static settings; everything that
changes lives in its *state*, a pytree, so the loop can jit every method and checkpoint
the state with orbax. The loop calls, per iteration (``B`` parallel environments,
``D``-dim observations, ``A`` actions)::

    idx, actions, obs, drawn = searcher.choose(state, k_select, k_act, B, observe)
        # by default: idx = select_samples(state, k_select, B)  (B,) int32 dataset rows
        #             actions = act(state, observe(idx), k_act)  (B,) int32 in [0, A)
        #             drawn = samples_drawn  (B,) bool: idx drawn uniformly, blind to answers
    ...                                                # perturb, audited model, reward
    state, metrics = searcher.update(state, transition, key)

and, to summarise, ``searcher.action_scores(state, obs)`` ``(B, A)`` (higher = more
likely to fail; Q-values for the DQN) and ``searcher.greedy(state, obs)`` ``(B,)``.
A new RL algorithm or baseline is one new module with a config model and a class
implementing these methods, added to ``fadejax.searchers.REGISTRY``.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pydantic

from fadejax.core.landscapes import dense_policy_view

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
    cell: jax.Array | None = None  # (B,) int32, the queried cell's index in the concept grid (None: = action)
    done: jax.Array | None = None  # (B,) bool, the episode ended here (failure or step limit; None: = terminal)


class Choice(NamedTuple):
    """One iteration's macroscopic queries, as :meth:`Searcher.choose` returns them."""

    sample: jax.Array  # (B,) int32, dataset rows
    action: jax.Array  # (B,) int32, cells
    obs: jax.Array  # (B, D) float32, the rows' observations
    # (B,) bool: the sample was drawn uniformly at random (among all samples, or among those
    # not yet asked under its cell) without regard to any answer. The report checks its
    # model's predictions for the samples never asked on these (fadejax.analysis.estimates).
    drawn: jax.Array


class Walk(NamedTuple):
    """What a searcher needs to plan microscopic episodes (given in micro mode only)."""

    grid: tuple[int, ...]  # the concept grid's axis sizes (the cells the episodes walk through)
    start: tuple[int, ...]  # the start cell, one value index per axis
    max_steps: int  # moves per episode at most


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
      sizes: the concept space's axis sizes (macroscopic actions are cells of this grid);
        in microscopic mode ``(num_actions,)``, the moves.
      walk: microscopic mode's grid, start cell and episode length (``None`` in macroscopic mode).
      deterministic: the audit answers a (sample, cell) pair asked twice the same
        (:attr:`fadejax.engine.task.AuditTask.deterministic`), so re-asking one teaches nothing.
    """

    #: False for searchers defined only over macroscopic cells (the baselines).
    supports_micro: bool = True
    #: False for searchers that only plan microscopic walks.
    supports_macro: bool = True
    #: True for searchers whose ``act`` also takes ``sample=`` ``(B,)``, the dataset rows of
    #: the observations, e.g. to avoid re-asking a known (sample, cell) pair; in microscopic
    #: mode also ``cell=`` ``(B, num_axes)`` (the current cells' value indices) and
    #: ``steps=`` ``(B,)`` (moves made so far in each episode).
    acts_on_samples: bool = False
    #: Microscopic mode on a deterministic audit: True for searchers that want a move onto a
    #: (sample, cell) pair the run has already answered to cost no query: onto a pair that did
    #: not fail, with moves left, the walk goes on from there in the same iteration (``act`` is
    #: called again); onto a known failure, or as the episode's last move, the episode ends
    #: there and the next starts at once (:meth:`fadejax.engine.loop.Discovery._walk`).
    skips_known_moves: bool = False
    #: Set by the engine: whether it crosses known pairs for this searcher (it does where the
    #: searcher asks for it and the run keeps its answers: a deterministic audit, one device).
    crossing: bool = False
    #: False for searchers whose ``init`` needs concrete values on the host (e.g. to seed a
    #: host-side optimiser); the loop then runs it op by op instead of as one compiled program.
    traceable_init: bool = True
    #: The scalars :meth:`update` returns, name -> what it measures. ``update`` returns
    #: exactly these keys every iteration; a run logs them as its learning curves
    #: (``searcher.NAME`` in ``metrics.jsonl``, ``searcher/NAME`` in TensorBoard).
    reports: ClassVar[dict[str, str]] = {}
    #: True for searchers whose every sample is a uniform draw made without regard to any
    #: answer or to the cell it is asked under (the default :meth:`select_samples`, and an
    #: ``act`` that ignores the observation): the report may then check its model on them
    #: (:attr:`Choice.drawn`).
    samples_drawn: ClassVar[bool] = False

    def __init__(self, config: SearcherConfig, *, num_actions: int, obs_dim: int, num_samples: int, total_iterations: int, num_envs: int, sizes: tuple[int, ...] = (), walk: Walk | None = None,
                 deterministic: bool = False):
        self.config = config
        self.deterministic = deterministic
        self.num_actions = num_actions
        self.obs_dim = obs_dim
        self.num_samples = num_samples
        self.total_iterations = total_iterations
        self.num_envs = num_envs
        self.sizes = tuple(sizes) or (num_actions,)
        self.walk = walk

    def init(self, key: jax.Array) -> SearcherState:
        raise NotImplementedError

    def select_samples(self, state: SearcherState, key: jax.Array, batch: int) -> jax.Array:
        """Dataset rows for new episodes, ``(batch,)`` int32; uniform by default."""
        return jax.random.randint(key, (batch,), 0, self.num_samples, dtype=jnp.int32)

    def restart_samples(self, state: SearcherState, key: jax.Array, sample: jax.Array, restart: jax.Array,
                        leave_current: bool = False) -> jax.Array:
        """Microscopic mode: each environment's sample after some episodes end, ``(B,)`` int32:
        a new one (:meth:`select_samples`) where ``restart`` ``(B,)`` bool, ``sample`` ``(B,)``
        elsewhere. A searcher may choose the new ones jointly, e.g. apart from the kept ones;
        ``leave_current``: the episodes ended without a query (the engine crossing known pairs),
        so a restart should not pick its environment's sample again."""
        return jnp.where(restart, self.select_samples(state, key, sample.shape[0]), sample)

    def plan_walks(self, state: SearcherState, sample: jax.Array) -> Any:
        """Microscopic mode, optional: what ``act`` computes for walks of ``sample`` ``(B,)``
        that does not depend on where they are (a pytree), so that the engine, crossing known
        pairs (:attr:`skips_known_moves`), takes several moves of a walk without computing it
        again; :meth:`planned_move` then gives each move. ``None`` (the default): the engine
        calls ``act`` for every move."""
        return None

    def planned_move(self, state: SearcherState, plan: Any, obs: jax.Array, key: jax.Array, sample: jax.Array,
                     cell: jax.Array, steps: jax.Array) -> jax.Array:
        """``act(state, obs, key, sample=sample, cell=cell, steps=steps)`` from ``plan``
        (:meth:`plan_walks` of these samples), ``(B,)`` int32."""
        raise NotImplementedError

    def act(self, state: SearcherState, obs: jax.Array, key: jax.Array) -> jax.Array:
        raise NotImplementedError

    @property
    def marks_drawn(self) -> bool:
        """Whether :meth:`choose` may mark any query ``drawn`` (its records then say which)."""
        return self.samples_drawn

    def choose(self, state: SearcherState, k_select: jax.Array, k_act: jax.Array, batch: int,
               observe: Callable[[jax.Array], jax.Array]) -> Choice:
        """Macroscopic mode's ``batch`` queries (a :class:`Choice`).

        ``observe(samples)`` gives the observations. By default the samples come first
        (:meth:`select_samples`) and each action is chosen on its sample's observation
        (:meth:`act`); a searcher that picks (sample, cell) pairs jointly overrides this."""
        sample = self.select_samples(state, k_select, batch)
        obs = observe(sample)
        action = self.act(state, obs, k_act, sample=sample) if self.acts_on_samples else self.act(state, obs, k_act)
        return Choice(sample, action, obs, jnp.full(batch, self.samples_drawn))

    def action_scores(self, state: SearcherState, obs: jax.Array) -> jax.Array:
        raise NotImplementedError

    def policy_marginals(self, state: SearcherState, obs: jax.Array) -> list[jax.Array]:
        """Eq. 10's ``P(a|s) = softmax_a score(s, a)`` summed onto each concept axis,
        ``[(B, sizes[i]) for each axis]``. This default builds the ``(B, A)`` scores;
        searchers for large spaces override it with a form that does not."""
        probs = jax.nn.softmax(self.action_scores(state, obs).astype(jnp.float32), axis=-1)
        grid = probs.reshape((obs.shape[0],) + self.sizes)
        axes = range(1, len(self.sizes) + 1)
        return [jnp.sum(grid, axis=tuple(a for a in axes if a != i + 1)) for i in range(len(self.sizes))]

    def policy_view(self, state: SearcherState, obs: jax.Array, keep: Sequence[int], fixed: dict[int, int] | None = None) -> jax.Array:
        """Eq. 10's ``P(a|s)`` reduced to a view, ``(B, *[sizes[k] for k in keep])``: the
        probability of the kept axes' values (and the ``fixed`` ones), other axes summed out."""
        parts = []
        for rows in _chunks(obs, self.num_actions):  # bounded (rows, A) memory
            probs = jax.nn.softmax(self.action_scores(state, rows).astype(jnp.float32), axis=-1)
            parts.append(dense_policy_view(probs, self.sizes, keep, fixed))
        return jnp.concatenate(parts, axis=0)

    def top_actions(self, state: SearcherState, obs: jax.Array, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` actions with the highest score averaged over ``obs``, best first:
        ``(actions (k,) int64, mean scores (k,))``."""
        total = sum(np.asarray(jnp.sum(self.action_scores(state, rows), axis=0), np.float64) for rows in _chunks(obs, self.num_actions))
        mean = total / obs.shape[0]
        order = np.lexsort((np.arange(mean.size), -mean))[:k]
        return order.astype(np.int64), mean[order]

    def greedy(self, state: SearcherState, obs: jax.Array) -> jax.Array:
        """The action the searcher currently rates most likely to fail, ``(B,)`` int32."""
        return jnp.argmax(self.action_scores(state, obs), axis=-1).astype(jnp.int32)

    def update(self, state: SearcherState, transition: Transition, key: jax.Array) -> tuple[SearcherState, dict[str, jax.Array]]:
        """Learn from one batch: ``(new state, {name: scalar})`` with the names of :attr:`reports`."""
        raise NotImplementedError

    def mark_pending(self, state: SearcherState, sample: jax.Array, cell: jax.Array) -> SearcherState:
        """``state`` as :meth:`choose` should see it while the ``(B,)`` pairs ``(sample,
        cell)`` are asked but not yet answered (the pipelined loop, ``run.pipeline``, proposes
        the next batch meanwhile). The state returned is used for that proposal only; the
        learning goes on from ``state``. By default nothing changes; a searcher that never
        re-asks a pair marks them as asked."""
        return state


def _chunks(obs: jax.Array, num_actions: int, budget: int = 1 << 24) -> list[jax.Array]:
    """Rows of ``obs`` in chunks whose ``(rows, num_actions)`` scores hold at most ``budget`` floats."""
    rows = max(1, budget // max(num_actions, 1))
    return [obs[i : i + rows] for i in range(0, obs.shape[0], rows)]
