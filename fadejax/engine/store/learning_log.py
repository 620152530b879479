"""Learning curves of a discovery run: one row per iteration in ``metrics.jsonl``.

Each row is one JSON object with the loop's figures and the searcher's own::

    iteration        0-based, as in the records
    queries          audited-model queries made so far (cumulative, after this iteration)
    failures         queries of this iteration on which the model failed
    failures_total   failed queries so far (cumulative)
    seconds          wall-clock seconds of this iteration: since the previous one was handed
                     to the writer (checkpoints and progress display included)
    queries_per_s    queries of this iteration / seconds
    time.propose     seconds from dispatching the proposal (samples, actions, the task's
                     prepared inputs, e.g. perturbed images) until its inputs are ready
    time.model       seconds in the task's evaluation: the audited model's batched call and
                     its reward (for text and prompt audits also the host-side edits)
    time.learn       seconds from dispatching score + learn until the new state is ready
    time.records     seconds formatting and writing this iteration's records (on the
                     writer's thread, overlapping the next iteration)
    searcher.NAME    every figure the searcher reports (its ``reports`` names and explains
                     them: loss, epsilon, Q-values, posterior spread, ...); ``null`` where
                     undefined, e.g. a DQN's loss before its replay buffer can be sampled

Rows are written on the record writer's thread right after the iteration's records and
cut back with them: a checkpoint stores this file's length next to the records', so a
run resumed after kill -9 has exactly one row per iteration. The figures that do not
depend on wall-clock time (``iteration, queries, failures, failures_total, searcher.*``)
are the same as an uninterrupted run's. ``pandas.read_json(path, lines=True)`` reads it.

Every row also goes to the run's sinks (TensorBoard, Weights & Biases: :mod:`fadejax.engine.store.sinks`)
with the number of queries as the step, so runs with different batch sizes line up.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence

import numpy as np

from fadejax.engine.store.durable import AppendOnlyFile, json_lines

METRICS_FILE = "metrics.jsonl"

#: The columns that depend on wall-clock time (the rest are reproducible from the seed).
TIMING_COLUMNS = ("seconds", "queries_per_s", "time.propose", "time.model", "time.learn", "time.records")


class MetricsError(ValueError):
    """A run's learning-curve file cannot be read or does not match its checkpoint."""


@dataclass
class StageTimes:
    """Host wall-clock seconds of one iteration (see :meth:`fadejax.engine.loop.Discovery.step`)."""

    propose: float = 0.0
    model: float = 0.0
    learn: float = 0.0
    #: the whole iteration, from the previous one's hand-over to the writer to this one's
    seconds: float = 0.0
    #: pipelined runs: 1 if the iteration was proposed before the previous one's answers were
    #: learned from, 0 if after (``None``: the run does not pipeline, every proposal is after)
    lag: int | None = None


class Sink(Protocol):
    """Somewhere the rows are mirrored to, e.g. TensorBoard (:mod:`fadejax.engine.store.sinks`)."""

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Log ``values`` (tag -> number; tags like ``loop/failures``) at ``step`` queries."""

    def image(self, step: int, tag: str, rgb: np.ndarray) -> None:
        """Log an ``(H, W, 3)`` uint8 image at ``step`` queries."""

    def flush(self) -> None: ...

    def close(self, failed: bool = False) -> None:
        """Finish; ``failed``: the run stopped on an error or an interrupt."""


def _finite(value: Any) -> float | int | None:
    """A scalar (Python, NumPy or a 0-d array) as JSON-ready ``int``/``float``; ``None`` for
    a missing or non-finite value."""
    if value is None:
        return None
    value = np.asarray(value).item()
    if isinstance(value, (bool, int)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def tag_of(column: str) -> str:
    """A row's column as a TensorBoard tag: ``failures`` -> ``loop/failures``,
    ``searcher.loss`` -> ``searcher/loss``, ``time.model`` -> ``time/model``."""
    group, dot, name = column.partition(".")
    return f"{group}/{name}" if dot else f"loop/{column}"


class LearningLog:
    """Writes a run's per-iteration rows (see the module docstring).

    Args:
      path: the ``metrics.jsonl`` file.
      num_envs: queries per iteration.
      queries: the query counter of the state the run starts (or resumes) from.
      failures: the failure counter of the same state.
      truncate_to: the file's length that the resumed checkpoint stored.
      sinks: where each row (and each landscape image) is also logged.
    """

    def __init__(self, path: Path, *, num_envs: int, queries: int = 0, failures: int = 0, truncate_to: int = 0, sinks: Sequence[Sink] = ()):
        self._file = AppendOnlyFile(path, truncate_to, what="learning curves", error=MetricsError)
        self.num_envs = int(num_envs)
        self.queries = int(queries)
        self.failures = int(failures)
        self.sinks = list(sinks)

    @property
    def offset(self) -> int:
        return self._file.offset

    def add(self, iteration: int, failures: int, learner: Mapping[str, Any], times: StageTimes | None, records_seconds: float) -> dict[str, Any]:
        """Write the row of ``iteration`` (``failures`` of its queries failed; ``learner``:
        the searcher's scalars, host or device); returns the row."""
        self.queries += self.num_envs
        self.failures += int(failures)
        row: dict[str, Any] = {"iteration": int(iteration), "queries": self.queries, "failures": int(failures), "failures_total": self.failures}
        if times is not None:
            row.update({
                "seconds": times.seconds, "queries_per_s": self.num_envs / times.seconds if times.seconds > 0 else None,
                "time.propose": times.propose, "time.model": times.model, "time.learn": times.learn,
            })
            if times.lag is not None:
                row["proposal_lag"] = times.lag
        row["time.records"] = records_seconds
        for name in sorted(learner):
            if np.size(learner[name]) != 1:
                raise ValueError(f"the searcher's figure '{name}' has shape {np.shape(learner[name])}; "
                                 "update() must report scalars (see Searcher.reports)")
            row[f"searcher.{name}"] = learner[name]
        row = {k: _finite(v) for k, v in row.items()}
        self._file.append((json.dumps(row) + "\n").encode())
        values = {tag_of(k): float(v) if v is not None else float("nan") for k, v in row.items() if k not in ("iteration", "queries")}
        self._to_sinks("scalars", self.queries, values)
        return row

    def add_image(self, tag: str, make_rgb) -> None:
        """Log the image ``make_rgb()`` (``(H, W, 3)`` uint8) at the current number of
        queries to every sink; a drawing error is reported, not raised (the rows go on)."""
        try:
            rgb = make_rgb()
        except Exception as exc:  # noqa: BLE001 - a picture is not worth a run
            warnings.warn(f"fadejax: the {tag} image was not drawn ({type(exc).__name__}: {exc})", stacklevel=2)
            return
        self._to_sinks("image", self.queries, tag, rgb)

    def _to_sinks(self, method: str, *args) -> None:
        """Call every sink; one that fails is reported once and dropped: ``metrics.jsonl``
        (written before) is the record, the sinks are views of it."""
        for sink in list(self.sinks):
            try:
                getattr(sink, method)(*args)
            except Exception as exc:  # noqa: BLE001
                warnings.warn(f"fadejax: logging to {type(sink).__name__} stopped ({type(exc).__name__}: {exc}); "
                              "metrics.jsonl keeps every row", stacklevel=2)
                self.sinks.remove(sink)
                with contextlib.suppress(Exception):
                    sink.close(True)

    def sync(self) -> None:
        """Rows to stable storage, sinks flushed (called at checkpoints)."""
        self._file.sync()
        self._to_sinks("flush")

    def close(self, failed: bool = False) -> None:
        self._file.close()
        self._to_sinks("close", failed)


def read_metrics(path: Path) -> Iterator[dict[str, Any]]:
    """Yield every complete row of a ``metrics.jsonl`` (a final line cut off by a kill is
    skipped); :class:`MetricsError` names a line that is not a row."""
    for number, row, line in json_lines(path):
        if not isinstance(row, dict) or type(row.get("iteration")) is not int or type(row.get("queries")) is not int:
            raise MetricsError(f"'{path}' line {number} is not a learning-curve row (a JSON object with integer iteration and queries): {line[:80]!r}")
        yield row
