"""The discovery loop: one batched audited-model call per iteration, everything else jitted.

One iteration over ``B`` parallel environments::

    inputs, pending = propose(state)               # jit: samples, actions, task.prepare (e.g. perturbed images)
    core, fields    = task.evaluate(inputs, pending)  # the audited model, one batched call, and its reward
    state, outcome, metrics = settle(state, pending, core)  # jit: score (micro shaping, eq. 5 / eq. 7;
                                                    # episode ends), then learn (searcher update, resets)

The task decides what a query is: an image task perturbs on the device inside
``propose`` and scores with a jitted reward; a text or prompt task edits or composes on
the host inside ``evaluate``. Either way the loop makes one batched audited-model call.

``settle`` is dispatched asynchronously: nothing on the host waits for it, so the next
iteration's ``propose`` is queued behind it while the host writes the records (on the
record writer's thread, :class:`fadejax.engine.store.records.BackgroundRecordWriter`). ``settle``
donates the old state's buffers (the replay buffer is updated in place, not copied), so
a state passed to it must not be used again; ``propose`` leaves the state alone for the
same reason. In macroscopic mode every episode is one step; in
microscopic mode each environment walks the concept grid from the start cell until
the model fails or ``max_steps`` moves are made; for a searcher that asks for it
(``skips_known_moves``) on a deterministic audit, moves onto pairs the run already answered
cost no query (:meth:`Discovery._walk`).

On several devices (``devices``), a 1-D :class:`jax.sharding.Mesh` with a ``data`` axis
splits the ``B`` environments, their perturbed images and the replay buffer's storage
across the devices; network parameters and optimiser state are replicated, and the
compiler inserts the gradient all-reduce (the loss is a mean over a sharded batch). The
audited-model bridge receives a sharded batch and runs each shard on its own device.
"""

from __future__ import annotations

import time
from typing import Any, Literal, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fadejax.engine.store.learning_log import StageTimes
from fadejax.core.rewards import micro_reward
from fadejax.searchers.base import Searcher, Transition
from fadejax.core.spaces import MicroSpace
from fadejax.engine.task import AuditTask, is_deterministic


#: The largest (samples x cells) grid whose answers a run keeps to serve re-asked pairs
#: (about 10 bytes per pair: 40 MB at this size); larger spaces call the model again.
MAX_ANSWERED_PAIRS = 1 << 22


@flax.struct.dataclass
class Answers:
    """The run's own answers to the (sample, cell) pairs it has asked, on a deterministic audit."""

    known: jax.Array  # (N, A) bool, the pair has been answered
    failed: jax.Array  # (N, A) bool
    reward: jax.Array  # (N, A) float32
    micro_base: jax.Array  # (N, A) float32 in micro mode (eq. 5's base), (1, 1) otherwise


@flax.struct.dataclass
class LoopState:
    """Everything that changes during a run; a pytree that orbax checkpoints."""

    searcher: Any
    key: jax.Array  # uint32[2] raw PRNG key
    iteration: jax.Array  # int32, iterations completed
    queries: jax.Array  # int32, audited-model queries made
    failures: jax.Array  # int32, queries on which the model failed
    sample: jax.Array  # (B,) int32, dataset row per environment (microscopic episodes)
    cell: jax.Array  # (B, num_axes) int32, current concept cell per environment
    steps: jax.Array  # (B,) int32, moves made in the current episode
    answers: Answers | None = None  # the pairs answered so far (deterministic audits only)


class Discovery:
    """Binds a task, a searcher and a mode into jitted ``propose`` / ``score`` / ``learn`` steps.

    Args:
      task: what is audited (an :class:`fadejax.engine.task.AuditTask`).
      searcher: chooses samples and actions, learns from transitions.
      mode: ``"macro"`` (actions are cells) or ``"micro"`` (actions are moves).
      num_envs: ``B``, parallel environments = queries per iteration.
      micro: the :class:`MicroSpace` (required in micro mode); ``max_steps`` and ``alpha`` its episode settings.
      devices: the devices to shard the environments over (default: the first device only).
    """

    def __init__(self, task: AuditTask, searcher: Searcher, *, mode: Literal["macro", "micro"], num_envs: int, micro: MicroSpace | None = None, max_steps: int = 8, alpha: float = 5.0, devices: Sequence[jax.Device] | None = None):
        if mode == "micro" and micro is None:
            raise ValueError("micro mode needs a MicroSpace")
        devices = list(devices) if devices else jax.devices()[:1]
        if num_envs % len(devices):
            raise ValueError(f"run.num_envs ({num_envs}) must be a multiple of the number of devices ({len(devices)})")
        self.mesh = Mesh(np.asarray(devices), ("data",))
        self.sharded = len(devices) > 1
        self._replicated = NamedSharding(self.mesh, PartitionSpec())
        self._by_env = NamedSharding(self.mesh, PartitionSpec("data"))
        if self.sharded:  # the data set and observations: one copy per device
            task.replicate(self._replicated)
        self.task = task
        self.searcher = searcher
        self.mode = mode
        self.num_envs = num_envs
        self.micro = micro
        self.max_steps = max_steps
        self.alpha = alpha
        #: a re-asked pair is served from the run's own answers, not the model: the audit answers
        #: a pair asked twice the same, and the grid of pairs is small enough to keep
        self.reuse = (is_deterministic(task) and not self.sharded
                      and task.num_samples * task.space.num_actions <= MAX_ANSWERED_PAIRS)
        #: records say which queries' samples were uniform draws (macroscopic mode, searchers that mark them)
        self.marks_drawn = mode == "macro" and searcher.marks_drawn
        #: walks cross cells whose pair was answered without a failure, without a query (see _walk)
        self.skip_known = mode == "micro" and self.reuse and searcher.skips_known_moves
        searcher.crossing = self.skip_known  # the searcher plans (and picks samples) for what the engine does
        self._field_template: dict[str, Any] | None = None  # the task's record fields, as the model last gave them
        self._init = None  # jitted on first use
        self._take_rows = jax.jit(_take_rows)  # one dispatch each way for the fresh queries (at most eight shapes)
        self._put_rows = jax.jit(_put_rows, static_argnums=2)
        self.propose = jax.jit(self._propose)
        self.propose_next = jax.jit(self._propose_next)
        self.settle = jax.jit(self._settle, donate_argnums=0)

    # -- shapes -----------------------------------------------------------------------
    @property
    def num_actions(self) -> int:
        return self.micro.num_actions if self.mode == "micro" else self.task.space.num_actions

    @property
    def obs_dim(self) -> int:
        extra = self.task.space.num_axes + 1 if self.mode == "micro" else 0
        return int(self.task.observations.shape[1]) + extra

    def observe(self, sample: jax.Array, cell: jax.Array, steps: jax.Array | None = None) -> jax.Array:
        """Observation ``(B, D)``: the sample's features; in micro mode also the normalised
        cell and the episode's elapsed share of ``max_steps`` (eq. 5's step penalty depends
        on it, so without it the state would not be Markov)."""
        obs = self.task.observations[sample]
        if self.mode == "micro":
            elapsed = jnp.zeros(sample.shape, jnp.float32) if steps is None else steps.astype(jnp.float32) / self.max_steps
            obs = jnp.concatenate([obs, self.task.space.normalized_cell(cell), elapsed[:, None]], axis=-1)
        return obs

    # -- state --------------------------------------------------------------------------
    def init(self, seed: int) -> LoopState:
        """The loop's starting state for ``seed`` (one compiled program: building a searcher's
        state op by op would compile every op on its own, seconds for a network)."""
        if not self.searcher.traceable_init:
            state = self._initial_state(jnp.uint32(seed))
        else:
            if self._init is None:
                self._init = jax.jit(self._initial_state)
            state = self._init(jnp.uint32(seed))
        # Make the initial state look exactly like learn's output: strong dtypes (a
        # library may init a counter as a weak-typed Python int) and committed to a
        # device. Otherwise the second iteration recompiles every step (~2 s here).
        state = jax.tree.map(lambda x: jnp.asarray(x, x.dtype) if getattr(x, "weak_type", True) else x, state)
        return jax.device_put(state, self.state_sharding(state))

    def _initial_state(self, seed: jax.Array) -> LoopState:
        key = jax.random.PRNGKey(seed)
        key, k_searcher, k_samples = jax.random.split(key, 3)
        searcher_state = self.searcher.init(k_searcher)
        b, a = self.num_envs, self.task.space.num_axes
        start = self.micro.start_cells(b) if self.micro is not None else jnp.zeros((b, a), jnp.int32)
        state = LoopState(
            searcher=searcher_state,
            key=key,
            iteration=jnp.int32(0),
            queries=jnp.int32(0),
            failures=jnp.int32(0),
            sample=self.searcher.restart_samples(searcher_state, k_samples, jnp.zeros(b, jnp.int32), jnp.ones(b, bool)),
            cell=jnp.asarray(start, jnp.int32),
            steps=jnp.zeros((b,), jnp.int32),
        )
        if self.reuse:
            n, cells = self.task.num_samples, self.task.space.num_actions
            micro_shape = (n, cells) if self.mode == "micro" else (1, 1)
            state = state.replace(answers=Answers(
                known=jnp.zeros((n, cells), bool), failed=jnp.zeros((n, cells), bool), reward=jnp.zeros((n, cells), jnp.float32),
                micro_base=jnp.zeros(micro_shape, jnp.float32)))
        return state

    # -- sharding -------------------------------------------------------------------------
    def state_sharding(self, state: LoopState) -> Any:
        """Per-leaf shardings of a loop state: per-environment arrays and the replay buffer's
        storage split along the ``data`` axis, everything else replicated."""

        def place(path, leaf) -> NamedSharding:
            names = [getattr(p, "name", getattr(p, "key", None)) for p in path]
            if not self.sharded or not hasattr(leaf, "ndim") or leaf.ndim == 0:
                return self._replicated
            if names and names[0] in ("sample", "cell", "steps"):
                return self._by_env
            if "experience" in names and leaf.ndim >= 2 and leaf.shape[1] % len(self.mesh.devices) == 0:
                return NamedSharding(self.mesh, PartitionSpec(None, "data"))  # (1, capacity, ...): split capacity
            return self._replicated

        return jax.tree_util.tree_map_with_path(place, state)

    def _constrain(self, tree: Any, sharding: Any) -> Any:
        return jax.lax.with_sharding_constraint(tree, sharding) if self.sharded else tree

    # -- the three jitted steps ---------------------------------------------------------
    def _move(self, state: LoopState, sample: jax.Array, cell: jax.Array, steps: jax.Array, key: jax.Array,
              plan: Any = None) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Each environment's next move on ``sample`` ``(B,)`` from ``cell`` ``(B, axes)`` after
        ``steps`` ``(B,)`` moves: ``(observation (B, D), move (B,), the cell it lands on (B, axes))``;
        from the searcher's ``plan`` of these samples' walks where given (``plan_walks``)."""
        obs = self.observe(sample, cell, steps)
        if plan is not None:
            action = self.searcher.planned_move(state.searcher, plan, obs, key, sample=sample, cell=cell, steps=steps)
        elif self.searcher.acts_on_samples:  # a planner: it also wants the rows, cells and steps
            action = self.searcher.act(state.searcher, obs, key, sample=sample, cell=cell, steps=steps)
        else:
            action = self.searcher.act(state.searcher, obs, key)
        return obs, action, self.micro.move(cell, action)

    def _walk(self, state: LoopState, key: jax.Array, passable: Answers | None) -> tuple[jax.Array, ...]:
        """Microscopic mode: each environment's query, ``(sample, obs, move, cell, steps)``
        (``(B,)``, ``(B, D)``, ``(B,)``, ``(B, axes)``, ``(B,)``; ``steps``: the moves its
        episode made before this one).

        Where the searcher skips known moves and ``passable`` (the run's answers) is given,
        a move landing on a pair answered before is made without a query: onto a pair that
        did not fail, with moves left after it, the walk goes on from there; onto a known
        failure, or as the episode's last move, the episode ends there (it would end on an
        answer already known) and the environment starts a new one at once, on a sample
        from the searcher's ``restart_samples``. At most ``4 * max_steps`` such moves an
        iteration; an environment still on a known pair then asks it (served from the
        answers, as any re-ask). A searcher that plans its walks (``plan_walks``) plans once,
        and again only after a restart; otherwise each move is a call of ``act``."""
        sample, cell, steps = state.sample, state.cell, state.steps
        if passable is None or not self.skip_known:
            return (sample, *self._move(state, sample, cell, steps, key), steps)
        plan = self.searcher.plan_walks(state.searcher, sample)
        obs, action, landing = self._move(state, sample, cell, steps, key, plan)
        start = self.micro.start_cells(self.num_envs)
        k_restart = jax.random.fold_in(key, 0x5EED)

        def known(sample: jax.Array, landing: jax.Array) -> jax.Array:
            return passable.known[sample, self.task.space.action_of(landing)]

        def body(carry):
            i, sample, steps, obs, action, landing, plan = carry
            flat = self.task.space.action_of(landing)
            through = passable.known[sample, flat]
            ends = through & (passable.failed[sample, flat] | (steps + 1 >= self.max_steps))
            sample = self.searcher.restart_samples(state.searcher, jax.random.fold_in(k_restart, i), sample, ends, leave_current=True)
            if plan is not None:  # new samples, new walks to plan
                plan = jax.lax.cond(jnp.any(ends), lambda: self.searcher.plan_walks(state.searcher, sample), lambda: plan)
            here = jnp.where(ends[:, None], start, landing)
            steps = jnp.where(ends, 0, steps + 1)
            o, a, c = self._move(state, sample, here, steps, jax.random.fold_in(key, i), plan)
            return (i + 1, sample, jnp.where(through, steps, carry[2]), jnp.where(through[:, None], o, obs),
                    jnp.where(through, a, action), jnp.where(through[:, None], c, landing), plan)

        def more(carry):
            return (carry[0] <= 4 * self.max_steps) & jnp.any(known(carry[1], carry[5]))

        carry = jax.lax.while_loop(more, body, (jnp.int32(1), sample, steps, obs, action, landing, plan))
        _, sample, steps, obs, action, landing, _ = carry
        return sample, obs, action, landing, steps

    def _propose(self, state: LoopState, passable: Answers | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The next iteration's queries: ``(the task's prepared inputs, pending)``.
        ``passable``: the answers a microscopic walk may cross without a query (default the
        run's answers; see :meth:`_walk`)."""
        if passable is None and self.reuse:
            passable = state.answers
        key, k_select, k_act, k_perturb, k_update, k_reset = jax.random.split(state.key, 6)
        if self.mode == "macro":
            sample, action, obs, drawn = self.searcher.choose(state.searcher, k_select, k_act, self.num_envs,
                                                              lambda rows: self.observe(rows, state.cell))
            cell = self.task.space.cell_of(action)
        else:
            sample, obs, action, cell, steps = self._walk(state, k_act, passable)
            state = state.replace(steps=steps)
            drawn = None  # a walk's cells depend on its sample: none is a draw for the cell it asks
        values = self.task.space.values_of_cell(cell)
        inputs = self.task.prepare(sample, values, k_perturb)
        if inputs is not None:
            inputs = self._constrain(inputs, self._by_env)  # the oracle runs each shard on its device
        pending = dict(
            obs=obs, action=action, sample=sample, cell=cell, values=values, steps=state.steps + 1, iteration=state.iteration,
            key=key, k_perturb=k_perturb, k_update=k_update, k_reset=k_reset,
        )
        if self.marks_drawn:
            pending["drawn"] = jnp.asarray(drawn, bool)
        if self.reuse:  # which queries re-ask a pair: answered before, or asked earlier in this batch
            flat = self.task.space.action_of(cell)
            known = state.answers.known[sample, flat]
            first = _first_occurrence(sample * self.task.space.num_actions + flat)  # < MAX_ANSWERED_PAIRS: int32
            pending.update(known=known, first=first, reused=known | (first != jnp.arange(sample.shape[0])))
        return inputs, pending

    def _propose_next(self, state: LoopState, pending: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Iteration t+1's proposal from ``state``, which has not learned from iteration t
        (``pending``, t's proposal) yet: the key and the counter go on from t's, the searcher
        sees t's pairs as pending (:meth:`Searcher.mark_pending`), and on a deterministic
        audit t's pairs count as asked (the model is not called on them again; ``settle``
        serves them from the answers t's learning adds)."""
        flat = self.task.space.action_of(pending["cell"])
        ahead = state.replace(key=pending["key"], iteration=pending["iteration"] + 1,
                              searcher=self.searcher.mark_pending(state.searcher, pending["sample"], flat))
        if self.reuse:
            ahead = ahead.replace(answers=ahead.answers.replace(known=ahead.answers.known.at[pending["sample"], flat].set(True)))
        # the pairs in flight are not answered yet: a walk asks them (served) rather than crossing them
        return self._propose(ahead, state.answers if self.reuse else None)

    def _served(self, answers: Answers, pending: dict[str, jax.Array], core: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """``core`` with every re-asked query's answer taken from the run's answers (a pair
        answered in an earlier iteration) or from its batch's first query of the pair."""
        sample, flat = pending["sample"], self.task.space.action_of(pending["cell"])
        known, first = pending["known"], pending["first"]
        table = {"failed": answers.failed, "reward": answers.reward}
        values = {"failed": jnp.asarray(core["failed"], bool), "reward": jnp.asarray(core["reward"], jnp.float32)}
        if self.mode == "micro":
            table["micro_base"] = answers.micro_base
            values["micro_base"] = jnp.asarray(core.get("micro_base", core["reward"]), jnp.float32)
        return {k: jnp.where(known, table[k][sample, flat], v)[first] for k, v in values.items()}

    def _score(self, pending: dict[str, jax.Array], core: dict[str, jax.Array]) -> dict[str, jax.Array]:
        failed = jnp.asarray(core["failed"], bool)
        reward = jnp.asarray(core["reward"], jnp.float32)
        if self.mode == "micro":  # eq. 5 (images) / eq. 7 (text): the task's micro base minus alpha per step
            reward = micro_reward(jnp.asarray(core.get("micro_base", core["reward"]), jnp.float32), pending["steps"], self.alpha)
        done = jnp.ones_like(failed) if self.mode == "macro" else failed | (pending["steps"] >= self.max_steps)
        outcome = dict(
            reward=reward, failed=failed, done=done, action=pending["action"], sample=pending["sample"],
            cell=self.task.space.action_of(pending["cell"]), step=pending["steps"],
        )
        if self.reuse:
            outcome["reused"] = pending["reused"]
        if self.marks_drawn:
            outcome["drawn"] = pending["drawn"]
        return outcome

    def _learn(self, state: LoopState, pending: dict[str, jax.Array], outcome: dict[str, jax.Array]) -> tuple[LoopState, dict[str, jax.Array]]:
        sample, cell = pending["sample"], pending["cell"]
        failed = outcome["failed"]
        terminal = jnp.ones_like(failed) if self.mode == "macro" else failed
        transition = Transition(
            obs=pending["obs"], action=pending["action"], reward=outcome["reward"],
            next_obs=self.observe(sample, cell, pending["steps"]), terminal=terminal, sample=sample, failed=failed,
            cell=self.task.space.action_of(cell), done=outcome["done"],
        )
        searcher_state, metrics = self.searcher.update(state.searcher, transition, pending["k_update"])
        steps = pending["steps"]
        if self.mode == "micro":
            done = outcome["done"]
            sample = self.searcher.restart_samples(searcher_state, pending["k_reset"], sample, done)
            cell = jnp.where(done[:, None], self.micro.start_cells(self.num_envs), cell)
            steps = jnp.where(done, 0, steps)
        n_fail = jnp.sum(failed.astype(jnp.int32))
        if self.reuse:  # every answer is kept (a re-asked pair's is the same as before)
            flat, ans = outcome["cell"], state.answers
            state = state.replace(answers=ans.replace(
                known=ans.known.at[pending["sample"], flat].set(True),
                failed=ans.failed.at[pending["sample"], flat].set(failed),
                reward=ans.reward.at[pending["sample"], flat].set(pending["served"]["reward"]),
                micro_base=ans.micro_base.at[pending["sample"], flat].set(pending["served"]["micro_base"]) if self.mode == "micro" else ans.micro_base,
            ))
        new_state = state.replace(
            searcher=searcher_state,
            key=pending["key"],
            iteration=state.iteration + 1,
            queries=state.queries + self.num_envs,
            failures=state.failures + n_fail,
            sample=sample, cell=cell, steps=steps,
        )
        return self._constrain(new_state, self.state_sharding(new_state)), metrics

    def _settle(self, state: LoopState, pending: dict[str, jax.Array], core: dict[str, jax.Array]) -> tuple[LoopState, dict[str, jax.Array], dict[str, jax.Array]]:
        """Score the audited model's answers, then learn from them (one compiled program,
        one dispatch): ``(new state, outcome, learner metrics)``."""
        if self.reuse:
            core = self._served(state.answers, pending, core)
            pending = {**pending, "served": core}
        outcome = self._score(pending, core)
        state, metrics = self._learn(state, pending, outcome)
        return state, outcome, metrics

    def step(self, state: LoopState, times: StageTimes | None = None) -> tuple[LoopState, dict[str, jax.Array], dict[str, jax.Array]]:
        """One iteration; returns ``(new state, outcome, learner metrics)``. The outcome maps
        ``reward, failed, done, action, sample, cell, step`` and the task's record fields
        (e.g. ``label, predicted, score``) to ``(B,)`` arrays or lists; the learner metrics
        are the searcher's scalars (its ``reports``).

        With ``times``, the host waits for the device at the two stage boundaries and fills
        in each stage's wall-clock seconds. The waits cost little: the audited model waits
        for the proposal's inputs anyway, and the next proposal for the new state.
        """
        state, outcome, metrics, _ = self.step_ahead(state, None, ahead=False, times=times)
        return state, outcome, metrics

    def step_ahead(self, state: LoopState, proposed: tuple[Any, dict[str, jax.Array]] | None, *, ahead: bool,
                   times: StageTimes | None = None) -> tuple[LoopState, dict[str, Any], dict[str, jax.Array], tuple[Any, dict[str, jax.Array]] | None]:
        """One iteration of the pipelined loop: ``(new state, outcome, learner metrics, next
        proposal)``. ``proposed``: this iteration's ``(inputs, pending)`` if the previous step
        made it ahead (``None``: propose it now, from ``state``). ``ahead``: also propose the
        next iteration now, from ``state`` (before this iteration's answers are learned
        from), dispatched before the model is called so the device makes it while the model
        answers; it is returned for the next step (``None`` otherwise)."""
        began = time.perf_counter()
        inputs, pending = proposed if proposed is not None else self.propose(state)
        following = self.propose_next(state, pending) if ahead else None
        if times is not None:
            jax.block_until_ready(inputs)
        proposed_at = time.perf_counter()
        core, fields = self.evaluate(inputs, pending)
        evaluated = time.perf_counter()
        state, outcome, metrics = self.settle(state, pending, core)
        if times is not None:
            jax.block_until_ready(state.iteration)
            times.propose, times.model, times.learn = proposed_at - began, evaluated - proposed_at, time.perf_counter() - evaluated
        return state, {**outcome, **fields}, metrics, following

    # -- serving re-asked pairs ------------------------------------------------------------
    #: pending's per-environment entries (leading dimension B); the rest are keys and counters
    _PER_ENV = ("obs", "action", "sample", "cell", "values", "steps", "known", "first", "reused", "drawn")

    def evaluate(self, inputs: Any, pending: dict[str, jax.Array]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The audited model's answers to the batch: on a deterministic audit the model is
        called only on the queries that ask a pair for the first time (padded up to a multiple
        of ``B / 8``, so at most eight batch shapes ever compile); the others are filled in by
        ``settle`` from the run's answers, and their record fields by the record writer."""
        if not self.reuse:
            return self.task.evaluate(inputs, pending)
        reused = np.asarray(pending["reused"])
        if not reused.any() or (reused.all() and self._field_template is None):
            core, fields = self.task.evaluate(inputs, pending)  # (all re-asked, fields never seen: the model tells their form)
            self._field_template = {k: _template(v) for k, v in fields.items()}
            return core, fields
        b = reused.size
        fresh = np.flatnonzero(~reused)
        if fresh.size == 0:
            placeholder = {"failed": jnp.zeros(b, bool), "reward": jnp.zeros(b, jnp.float32)}
            return placeholder, {k: _blank(v, b) for k, v in self._field_template.items()}
        # The fresh rows, padded up to a multiple of B / 8 with copies of the first (so at most
        # eight batch shapes compile); the padding's answers are dropped on the way back.
        quantum = max(1, b // 8)
        padding = -fresh.size % quantum
        take = np.concatenate([fresh, np.full(padding, fresh[0])]).astype(np.int32)
        put = np.concatenate([fresh, np.full(padding, b)]).astype(np.int32)  # index b: out of range, dropped
        leaves, treedef = jax.tree.flatten(inputs)
        batched = [i for i, x in enumerate(leaves) if isinstance(x, (jax.Array, np.ndarray)) and x.ndim and x.shape[0] == b]
        per_env = {k: v for k, v in pending.items() if k in self._PER_ENV}
        taken, sub_per_env = self._take_rows([leaves[i] for i in batched], per_env, take)
        for i, x in zip(batched, taken):
            leaves[i] = x
        sub_inputs = jax.tree.unflatten(treedef, leaves)
        core, fields = self.task.evaluate(sub_inputs, {**pending, **sub_per_env})
        self._field_template = {k: _template(v) for k, v in fields.items()}
        on_device = {k: v for k, v in fields.items() if isinstance(v, jax.Array)}
        core, spread = self._put_rows({k: jnp.asarray(v) for k, v in core.items()}, on_device, b, put)
        return core, {k: spread[k] if k in spread else _spread(v, fresh, b) for k, v in fields.items()}


def _take_rows(arrays: list[jax.Array], per_env: dict[str, jax.Array], rows: jax.Array) -> tuple[list[jax.Array], dict[str, jax.Array]]:
    """The ``rows`` ``(n,)`` of each array (leading dimension B) and of each per-environment entry."""
    return [a[rows] for a in arrays], {k: v[rows] for k, v in per_env.items()}


def _put_rows(core: dict[str, jax.Array], fields: dict[str, jax.Array], size: int, rows: jax.Array) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """Each ``(n, ...)`` array placed at ``rows`` ``(n,)`` of a ``(size, ...)`` array of zeros;
    rows equal to ``size`` (padding) are dropped."""
    def put(values: jax.Array) -> jax.Array:
        return jnp.zeros((size,) + values.shape[1:], values.dtype).at[rows].set(values, mode="drop")
    return {k: put(v) for k, v in core.items()}, {k: put(v) for k, v in fields.items()}


def _first_occurrence(pair: jax.Array) -> jax.Array:
    """For each entry of ``pair`` ``(B,)``, the index of the first entry with the same value, ``(B,)`` int32."""
    order = jnp.argsort(pair, stable=True)
    ordered = pair[order]
    position = jnp.arange(pair.shape[0])
    starts = jnp.concatenate([jnp.ones(1, bool), ordered[1:] != ordered[:-1]])
    first_in_order = jax.lax.cummax(jnp.where(starts, position, 0))
    return jnp.zeros_like(position).at[order].set(order[first_in_order]).astype(jnp.int32)


def _spread(values: Any, rows: np.ndarray, size: int) -> Any:
    """A record field of the fresh queries ``rows`` widened to the batch: the other entries
    are blanks the record writer fills from the run's earlier answers."""
    if isinstance(values, (list, tuple)):
        out: list[Any] = [None] * size
        for row, value in zip(rows.tolist(), values):
            out[row] = value
        return out
    values = np.asarray(values)
    out_array = np.zeros((size,) + values.shape[1:], values.dtype)
    out_array[rows] = values[: rows.size]
    return out_array


def _template(values: Any) -> Any:
    """What a record field's blanks are made from: ``[]`` for a list, else an empty array of
    its dtype and trailing shape (host-side: no device operation)."""
    return [] if isinstance(values, (list, tuple)) else np.zeros((0,) + tuple(np.shape(values)[1:]), values.dtype)


def _blank(template: Any, size: int) -> Any:
    return [None] * size if isinstance(template, list) else np.zeros((size,) + np.shape(template)[1:], np.asarray(template).dtype)
