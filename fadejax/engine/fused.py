"""The recorded discovery loop entirely on the device: many seeds, many iterations, one compiled program.

On a :class:`fadejax.engine.recording.RecordedTask` the audited model is a gather, so nothing in an
iteration needs the host. :func:`run_fused` compiles the loop's own pure steps into one
program::

    vmap over seeds(
        lax.scan over iterations(
            inputs, pending = discovery._propose(state)
            core, _         = task.evaluate(inputs, pending)     # the recorded lookup
            state, outcome, _ = discovery._settle(state, pending, core)))

and returns only what Table 1 needs: per seed and iteration the failure count, and (with
``keep_queries``) every query's sample, cell and failed flag. The initial states are the
loop's own (``discovery.init(seed)``, stacked), so seed ``s`` of a fused run makes exactly the
queries ``Discovery.step`` makes from ``discovery.init(s)`` (``tests/test_fused.py`` checks
this query by query for random, greedy and posterior sampling). Under ``vmap`` a searcher's
``lax.cond`` becomes a select over both branches: the same answer, more arithmetic.

Bitwise equality holds where vmapping a searcher keeps its float arithmetic in the same
order: random, epsilon-greedy and posterior sampling (tested). Searchers with neural
networks (``dqn``, ``bootstrapped``, ``reinforce``) run too, but a vmapped matmul is a
batched ``dot_general`` whose CPU kernel may sum in another order than the unbatched one:
their parameters agree with the stepped loop's to float precision (about 3e-7 after 20
iterations of the engine DQN) and their queries can drift apart late in a long run.

The recording's arrays (and the observations) enter the program as arguments, not as
constants baked into it, so a large recording does not slow compilation. Microscopic mode
runs as well (the loop is the same code; checked by hand with the engine DQN — identical
queries over 20 iterations — but not in the test suite). The sharded multi-device loop is
refused (one device runs the whole batch of seeds).
"""

from __future__ import annotations

import copy
import time
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fadejax.engine.loop import Discovery, LoopState
from fadejax.engine.recording import RecordedTask


@dataclass
class FusedResult:
    """What a fused run returns (host arrays) and its final states (stacked, on the device).

    ``failures`` ``(S, T)`` int32: failures per seed and iteration. With ``keep_queries``,
    ``sample``, ``cell`` (macroscopic action index) ``(S, T, B)`` int32 and ``failed``
    ``(S, T, B)`` bool, and ``drawn`` ``(S, T, B)`` bool where the searcher marks uniformly
    drawn samples (:attr:`fadejax.searchers.base.Choice.drawn`); otherwise ``None``. ``compile_seconds`` is 0 when the program was
    already compiled (same discovery, seed count, iterations and ``keep_queries``);
    ``seconds`` is the run alone, until its results are on the host.
    """

    seeds: tuple[int, ...]
    iterations: int
    num_envs: int
    failures: np.ndarray
    sample: np.ndarray | None
    cell: np.ndarray | None
    failed: np.ndarray | None
    final: LoopState
    seconds: float
    compile_seconds: float
    drawn: np.ndarray | None = None

    @property
    def total_failures(self) -> np.ndarray:
        """Failures found per seed, ``(S,)``."""
        return self.failures.sum(axis=1)

    def queries(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Seed ``index``'s queries in order, ``(sample, cell, failed)`` each ``(T * B,)``."""
        if self.sample is None:
            raise ValueError("this fused run did not keep its queries; call run_fused(..., keep_queries=True)")
        return self.sample[index].reshape(-1), self.cell[index].reshape(-1), self.failed[index].reshape(-1)

    def drawn_queries(self, index: int) -> np.ndarray | None:
        """Which of seed ``index``'s queries (in :meth:`queries` order) were uniform draws,
        ``(T * B,)`` bool; ``None`` where the searcher marks none."""
        return None if self.drawn is None else self.drawn[index].reshape(-1)


# discovery -> {(seeds, iterations, keep_queries): compiled program}
_COMPILED: "weakref.WeakKeyDictionary[Discovery, dict]" = weakref.WeakKeyDictionary()


def _task_arrays(task: RecordedTask) -> dict[str, Any]:
    arrays = {"observations": task.observations, "failed": task.failed, "reward": task.reward}
    if task.micro_base is not None:
        arrays["micro_base"] = task.micro_base
    return arrays


def _bound_to(discovery: Discovery, arrays: dict[str, Any]) -> Discovery:
    """A shallow copy of the discovery whose task reads ``arrays`` (tracers inside the program)."""
    task = copy.copy(discovery.task)
    for name, value in arrays.items():
        setattr(task, name, value)
    bound = copy.copy(discovery)
    bound.task = task
    return bound


def _scan_seeds(d: Discovery, iterations: int, keep_queries: bool):
    """``stacked states -> (final states, outputs)``: every seed's ``lax.scan`` over iterations."""

    def body(state: LoopState, _):
        inputs, pending = d._propose(state)
        core, _fields = d.task.evaluate(inputs, pending)
        state, outcome, _metrics = d._settle(state, pending, core)
        failed = outcome["failed"]
        out = {"failures": jnp.sum(failed.astype(jnp.int32))}
        if keep_queries:
            out.update(sample=outcome["sample"].astype(jnp.int32), cell=outcome["cell"].astype(jnp.int32), failed=failed)
            if "drawn" in outcome:
                out["drawn"] = outcome["drawn"]
        return state, out

    def one_seed(state: LoopState):
        return jax.lax.scan(body, state, None, length=iterations)

    return jax.vmap(one_seed)


def _program(discovery: Discovery, iterations: int, keep_queries: bool):
    """The pure function ``(stacked states, task arrays) -> (final states, outputs)``."""

    def run(states: LoopState, arrays: dict[str, Any]):
        return _scan_seeds(_bound_to(discovery, arrays), iterations, keep_queries)(states)

    return run


def _check(discovery: Discovery) -> None:
    if not isinstance(discovery.task, RecordedTask):
        raise TypeError(f"run_fused needs a Discovery over a RecordedTask (the audited model as a lookup), got "
                        f"{type(discovery.task).__name__}; live audits call the model on the host, run them with Discovery.step")
    if discovery.sharded:
        raise ValueError("run_fused runs every seed on one device; build the Discovery without run.devices")


def stack_states(discovery: Discovery, seeds: Sequence[int]) -> LoopState:
    """The loop's initial states for ``seeds``, stacked along a new leading axis."""
    states = [discovery.init(int(seed)) for seed in seeds]
    return jax.tree.map(lambda *x: jnp.stack(x), *states)


def compile_fused(discovery: Discovery, num_seeds: int, iterations: int, keep_queries: bool = False) -> tuple[Any, float]:
    """The compiled program for ``num_seeds`` seeds (cached per discovery); ``(program, seconds compiling)``."""
    _check(discovery)
    cache = _COMPILED.setdefault(discovery, {})
    signature = (num_seeds, iterations, keep_queries)
    if signature in cache:
        return cache[signature], 0.0
    began = time.perf_counter()
    template = stack_states(discovery, range(num_seeds))  # only its shapes, dtypes and placement matter
    arrays = _task_arrays(discovery.task)
    program = jax.jit(_program(discovery, iterations, keep_queries), donate_argnums=0).lower(template, arrays).compile()
    cache[signature] = program
    return program, time.perf_counter() - began


def run_fused(discovery: Discovery, seeds: Sequence[int], iterations: int, keep_queries: bool = False) -> FusedResult:
    """Run ``iterations`` iterations of the recorded loop for every seed in one compiled program.

    Seed ``s`` makes the same queries as ``discovery.step`` iterated from ``discovery.init(s)``.
    """
    _check(discovery)
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("run_fused needs at least one seed")
    if iterations < 1:
        raise ValueError(f"iterations must be positive, got {iterations}")
    program, compile_seconds = compile_fused(discovery, len(seeds), iterations, keep_queries)
    states = stack_states(discovery, seeds)
    jax.block_until_ready(states)
    began = time.perf_counter()
    final, out = program(states, _task_arrays(discovery.task))
    host = jax.device_get(out)
    seconds = time.perf_counter() - began
    return FusedResult(
        seeds=seeds, iterations=iterations, num_envs=discovery.num_envs, failures=np.asarray(host["failures"]),
        sample=host.get("sample"), cell=host.get("cell"), failed=None if "failed" not in host else np.asarray(host["failed"], bool),
        final=final, seconds=seconds, compile_seconds=compile_seconds,
        drawn=None if "drawn" not in host else np.asarray(host["drawn"], bool),
    )


# -- many searcher settings in one program --------------------------------------------------


class NotBatchable(ValueError):
    """A searcher field that cannot enter a compiled program as a traced value (it sets a
    shape or a Python branch); a sweep gives each of its values a program of its own."""


def _with_settings(searcher: Any, values: dict[str, jax.Array]) -> Any:
    """The searcher rebuilt from its config with ``values`` (traced scalars) for those fields."""
    config = searcher.config.model_copy(update=values)  # no validation: the values are tracers
    return type(searcher)(config, num_actions=searcher.num_actions, obs_dim=searcher.obs_dim, num_samples=searcher.num_samples,
                          total_iterations=searcher.total_iterations, num_envs=searcher.num_envs, sizes=searcher.sizes, walk=searcher.walk,
                          deterministic=searcher.deterministic)


def _settings_program(base: Discovery, iterations: int, keep_queries: bool):
    """``(states (P, S, ...), task arrays, {field: (P,)}) -> (final states, outputs (P, S, ...))``."""

    def run(states: LoopState, arrays: dict[str, Any], values: dict[str, jax.Array]):
        def one_setting(states_p: LoopState, values_p: dict[str, jax.Array]):
            d = _bound_to(base, arrays)
            d.searcher = _with_settings(base.searcher, values_p)
            return _scan_seeds(d, iterations, keep_queries)(states_p)

        return jax.vmap(one_setting)(states, values)

    return run


def _values(discoveries: Sequence[Discovery], fields: Sequence[str]) -> dict[str, jax.Array]:
    """Each field's value per setting, ``{field: (P,)}`` (int32 for integer fields, else float32)."""
    out = {}
    for name in fields:
        raw = [getattr(d.searcher.config, name) for d in discoveries]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
            raise NotBatchable(f"searcher.{name} takes non-numeric values {raw}")
        out[name] = jnp.asarray(raw, jnp.int32 if all(isinstance(v, int) for v in raw) else jnp.float32)
    return out


def batchable(discovery: Discovery, name: str, iterations: int = 1) -> str | None:
    """``None`` if searcher field ``name`` can be swept inside one program, else why not
    (found by tracing the program with that field traced; nothing is compiled)."""
    _check(discovery)
    try:
        values = _values([discovery, discovery], [name])
        states = jax.tree.map(lambda x: jnp.stack([x, x]), stack_states(discovery, [0]))
        jax.eval_shape(_settings_program(discovery, iterations, False), states, _task_arrays(discovery.task), values)
    except NotBatchable as why:
        return str(why)
    except TypeError as error:  # jax's concretization errors: the value sets a shape or a Python branch
        return f"searcher.{name} is used where a traced value cannot be ({type(error).__name__})"
    return None


def run_fused_settings(discoveries: Sequence[Discovery], fields: Sequence[str], seeds: Sequence[int], iterations: int,
                       keep_queries: bool = False, program_of: Discovery | None = None) -> list[FusedResult]:
    """Several searcher settings x ``seeds`` in one compiled program: ``vmap`` over settings of
    :func:`run_fused`'s program, the swept ``fields`` entering as traced values.

    ``discoveries`` are built from configs that differ only in the searcher ``fields``
    (each a number; :func:`batchable` says whether one can be swept this way). Each
    setting's initial states are its own ``discovery.init(seed)``. Returns one
    :class:`FusedResult` per setting, in order; its ``seconds`` and ``compile_seconds`` are
    the whole program's. The program is cached on ``program_of`` (default
    ``discoveries[0]``; any discovery of the same kind, static settings and task) per
    setting count, so a sweep that passes one ``program_of`` compiles once per chunk size.
    """
    if not discoveries:
        raise ValueError("run_fused_settings needs at least one setting")
    base = program_of or discoveries[0]
    _check(base)
    seeds = tuple(int(s) for s in seeds)
    if not seeds or iterations < 1:
        raise ValueError(f"need seeds and positive iterations, got {seeds}, {iterations}")
    names = tuple(fields)
    for d in discoveries:
        if type(d.searcher) is not type(base.searcher) or d.num_envs != base.num_envs or d.task is not base.task:
            raise ValueError("every setting must share the searcher kind, num_envs and the recorded task")
        differ = {k for k, v in d.searcher.config.model_dump().items() if v != getattr(base.searcher.config, k)} - set(names)
        if differ:
            raise ValueError(f"settings differ in {sorted(differ)}, which are not swept fields {list(names)}; run those apart")
    values = _values(discoveries, names)
    states = jax.tree.map(lambda *x: jnp.stack(x), *[stack_states(d, seeds) for d in discoveries])
    arrays = _task_arrays(base.task)
    cache = _COMPILED.setdefault(base, {})
    signature = ("settings", names, len(discoveries), len(seeds), iterations, keep_queries)
    compile_seconds = 0.0
    if signature not in cache:
        began = time.perf_counter()
        cache[signature] = jax.jit(_settings_program(base, iterations, keep_queries), donate_argnums=0).lower(states, arrays, values).compile()
        compile_seconds = time.perf_counter() - began
    jax.block_until_ready(states)
    began = time.perf_counter()
    final, out = cache[signature](states, arrays, values)
    host = jax.device_get(out)
    seconds = time.perf_counter() - began
    results = []
    for p in range(len(discoveries)):
        pick = (lambda key: None if key not in host else np.asarray(host[key][p], bool if key in ("failed", "drawn") else np.int32))
        results.append(FusedResult(
            seeds=seeds, iterations=iterations, num_envs=base.num_envs, failures=np.asarray(host["failures"][p]),
            sample=pick("sample"), cell=pick("cell"), failed=pick("failed"),
            final=jax.tree.map(lambda x, p=p: x[p], final), seconds=seconds, compile_seconds=compile_seconds, drawn=pick("drawn"),
        ))
    return results
