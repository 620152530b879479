"""Recorded audits: every held-out sample x every cell asked once, kept, and replayed without the model.

A *recording* holds, for each of the ``N`` held-out samples and each of the ``A``
macroscopic cells, what the discovery loop needs to score a query: whether the audited
model failed, the macroscopic reward (eq. 4 / eq. 6) and, where the task has one, the
microscopic base term (eq. 5 / eq. 7), plus the searcher's observations of the samples.
:class:`RecordedTask` is an :class:`fadejax.engine.task.AuditTask` whose audited model is a
lookup into those arrays, so every searcher, reward, run directory and benchmark works
on it unchanged, at the cost of a gather instead of a model call.

File format (``.npz``, NumPy's zip of arrays, written with ``numpy.savez_compressed``):

* ``failed``       ``(N, A)`` bool
* ``reward``       ``(N, A)`` float32, the macroscopic reward, exactly as the live loop computed it
* ``micro_base``   ``(N, A)`` float32 (present only when the task's micro reward has its own base)
* ``observations`` ``(N, D)`` float32, what the searcher sees of each sample
* ``meta``         a JSON string: ``format`` (= :data:`FORMAT`), ``key`` (hash of the data,
  model and concept space it was recorded from, :func:`fadejax.engine.ground_truth.landscape_key`),
  ``task`` (the live task kind), ``config_name``, ``sizes``, ``axes`` (names and values),
  ``info`` (model facts such as the clean accuracy).

Perturbations that draw randomness per query (``noise``, the spot a text edit hits) are
recorded with one fixed draw per (sample, cell) pair — the draw
:func:`fadejax.engine.ground_truth.failure_rates` uses — so a replay of such a space equals the
exhaustive landscape, not a live run's own draws.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from fadejax.core.spaces import ConceptSpace

FORMAT = "fadejax-recording-1"


class RecordingError(ValueError):
    """A recording file is missing, truncated, of another format or for another audit."""


@dataclass
class Recording:
    """The arrays of a recording (see the module docstring for shapes)."""

    failed: np.ndarray
    reward: np.ndarray
    observations: np.ndarray
    meta: dict[str, Any]
    micro_base: np.ndarray | None = None

    @property
    def num_samples(self) -> int:
        return int(self.failed.shape[0])

    @property
    def num_actions(self) -> int:
        return int(self.failed.shape[1])

    def failure_rates(self) -> np.ndarray:
        """The exhaustive landscape it holds, ``(A,)`` float64."""
        return self.failed.mean(axis=0, dtype=np.float64)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"failed": self.failed, "reward": self.reward, "observations": self.observations,
                  "meta": np.asarray(json.dumps(self.meta, sort_keys=True))}
        if self.micro_base is not None:
            arrays["micro_base"] = self.micro_base
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)
        return path


def record(task, key: str, config_name: str, batch_size: int = 1024, seed: int = 0, progress: bool = False) -> Recording:
    """Ask the audited model about every held-out sample under every cell, once.

    Same batching and keys as :func:`fadejax.engine.ground_truth.failure_rates` (so
    ``recording.failure_rates()`` equals that landscape). ``key`` identifies the data,
    model and space (:func:`fadejax.engine.ground_truth.landscape_key`).
    """
    from fadejax.engine.ground_truth import _every_sample_under, actions_per_call

    n, a = task.num_samples, task.space.num_actions
    per_call = actions_per_call(n, a, batch_size)
    propose = _every_sample_under(task, per_call)
    failed = np.zeros((n, a), bool)
    reward = np.zeros((n, a), np.float32)
    micro_base: np.ndarray | None = None
    prng = jax.random.PRNGKey(seed)
    for start in tqdm(range(0, a, per_call), disable=not progress, desc="recording", unit="call"):
        chunk = np.arange(start, min(start + per_call, a), dtype=np.int32)
        count = chunk.size
        if count < per_call:  # one compiled shape: pad with the last action
            chunk = np.concatenate([chunk, np.full(per_call - count, chunk[-1], np.int32)])
        inputs, pending = propose(jnp.asarray(chunk), jax.random.fold_in(prng, start))
        core, _ = task.evaluate(inputs, pending)
        failed[:, start : start + count] = np.asarray(core["failed"], bool).reshape(per_call, n)[:count].T
        reward[:, start : start + count] = np.asarray(core["reward"], np.float32).reshape(per_call, n)[:count].T
        if "micro_base" in core:
            if micro_base is None:
                micro_base = np.zeros((n, a), np.float32)
            micro_base[:, start : start + count] = np.asarray(core["micro_base"], np.float32).reshape(per_call, n)[:count].T
    space: ConceptSpace = task.space
    meta = {
        "format": FORMAT, "key": key, "task": task.kind, "config_name": config_name,
        "sizes": list(space.sizes), "axes": {ax.name: [_plain(v) for v in ax.values] for ax in space.axes},
        "info": {k: v for k, v in task.info.items() if isinstance(v, (str, int, float, bool)) or v is None},
    }
    return Recording(failed, reward, np.asarray(task.observations, np.float32), meta, micro_base)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def load_recording(path: str | Path, expect_key: str | None = None) -> Recording:
    """Read and check a recording; :class:`RecordingError` names what is wrong.

    ``expect_key``: the landscape key of the config it is meant to replay (a recording of
    another data set, model or space is refused).
    """
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"recording '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as error:  # zip / npy errors: a truncated or foreign file
        raise RecordingError(f"recording '{path}' cannot be read ({type(error).__name__}: {error}); record it again") from None
    missing = {"failed", "reward", "observations", "meta"} - set(arrays)
    if missing:
        raise RecordingError(f"recording '{path}' lacks {sorted(missing)}; it is not a fadejax recording")
    try:
        meta = json.loads(str(arrays["meta"])) if arrays["meta"].ndim == 0 else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise RecordingError(f"recording '{path}' has no readable 'meta' (a JSON object); it is not a fadejax recording")
    if meta.get("format") != FORMAT:
        raise RecordingError(f"recording '{path}' has format {meta.get('format')!r}; this fadejax reads {FORMAT!r}")
    failed, reward, obs = arrays["failed"], arrays["reward"], arrays["observations"]
    n, a = failed.shape if failed.ndim == 2 else (-1, -1)
    sizes = meta.get("sizes")
    sizes_ok = isinstance(sizes, list) and bool(sizes) and all(type(size) is int and size >= 2 for size in sizes)
    shapes_ok = (failed.dtype == bool and failed.ndim == 2 and reward.shape == failed.shape and obs.ndim == 2 and obs.shape[0] == n
                 and sizes_ok and int(np.prod(sizes)) == a and reward.dtype.kind == "f" and obs.dtype.kind == "f")
    micro_base = arrays.get("micro_base")
    shapes_ok = shapes_ok and (micro_base is None or (micro_base.shape == failed.shape and micro_base.dtype.kind == "f"))
    if not shapes_ok:
        raise RecordingError(f"recording '{path}' is inconsistent: failed {failed.shape}, reward {reward.shape}, observations "
                             f"{obs.shape}, sizes {meta.get('sizes')}; record it again")
    if expect_key is not None and meta.get("key") != expect_key:
        raise RecordingError(f"recording '{path}' was made for other data, model or concept space (key {meta.get('key')}, "
                             f"this config's is {expect_key}); record this config with `fadejax landscape --record`")
    return Recording(failed, reward, obs, meta, micro_base)


def replay(config, path: str | Path) -> "RecordedTask":
    """The audit ``config`` describes, answered by the recording at ``path`` (which must
    have been made from the config's data, model and concept space: :class:`RecordingError`
    otherwise)."""
    from fadejax.engine.ground_truth import landscape_key

    recording = load_recording(path, expect_key=landscape_key(config))
    return RecordedTask(recording, config.concept_space(), info={"recording": str(path)})


@dataclass
class RecordedTask:
    """An :class:`fadejax.engine.task.AuditTask` whose audited model is a lookup into a recording.

    ``prepare`` returns nothing (there is no input to build); ``evaluate`` gathers
    ``failed`` / ``reward`` of each query's ``(sample, cell)`` on the device.
    """

    recording: Recording
    space: ConceptSpace
    info: dict[str, Any] = field(default_factory=dict)
    kind: str = "recorded"
    #: a lookup: a (sample, cell) pair asked twice is answered the same
    deterministic = True

    def __post_init__(self) -> None:
        r = self.recording
        if r.num_actions != self.space.num_actions:
            raise RecordingError(f"the recording has {r.num_actions} cells, the concept space {self.space.num_actions}")
        self.observations = jnp.asarray(r.observations, jnp.float32)
        self.failed = jnp.asarray(r.failed)
        self.reward = jnp.asarray(r.reward)
        self.micro_base = None if r.micro_base is None else jnp.asarray(r.micro_base)
        self.info = {**r.meta.get("info", {}), **self.info, "recorded_from": r.meta.get("task")}
        self._lookup = jax.jit(self._gather)

    @property
    def num_samples(self) -> int:
        return self.recording.num_samples

    def prepare(self, sample: jax.Array, values: jax.Array, key: jax.Array) -> None:
        return None

    def _gather(self, sample: jax.Array, cell: jax.Array, failed: jax.Array, reward: jax.Array, micro_base: jax.Array | None) -> dict:
        action = self.space.action_of(cell)
        core = {"failed": failed[sample, action], "reward": reward[sample, action]}
        if micro_base is not None:
            core["micro_base"] = micro_base[sample, action]
        return core

    def evaluate(self, inputs: Any, pending: dict[str, jax.Array]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The recorded answers of the ``B`` queries; no task-specific record fields."""
        return self._lookup(pending["sample"], pending["cell"], self.failed, self.reward, self.micro_base), {}

    def replicate(self, sharding: Any) -> None:
        self.observations, self.failed, self.reward = jax.device_put((self.observations, self.failed, self.reward), sharding)
