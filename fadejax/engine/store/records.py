"""Durable per-query failure records: one JSON object per line in ``records.jsonl``.

Each iteration's lines are appended and flushed as one write. During discovery a
:class:`BackgroundRecordWriter` formats and writes them on its own thread while the loop
goes on, a few iterations behind at most; at a checkpoint it first writes everything
submitted, so the byte length the checkpoint stores covers exactly the iterations the
checkpointed state has done. Resuming truncates the file to that length and replays the
iterations after it deterministically, so no record is lost or duplicated, whether the
process was stopped or killed.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import jax
import numpy as np
import pyarrow as pa

from fadejax.engine.store.durable import AppendOnlyFile, json_lines
from fadejax.engine.store.json_columns import joined_lines, json_scalar, json_texts
from fadejax.engine.store.learning_log import LearningLog, StageTimes
from fadejax.engine.store.record_columns import read_columns
from fadejax.core.spaces import ConceptSpace

RECORDS_FILE = "records.jsonl"


class RecordsError(ValueError):
    """A run's records file does not match its checkpoint."""


#: Fields every record has, written first and in this order; a task's own fields follow.
CORE_FIELDS = ("action", "cell", "reward", "failed")
#: Written after ``failed`` on a deterministic audit: the query re-asked a pair and was answered
#: from the run's own answers, not by the model (its task fields repeat the first answer's).
REUSED = "reused"
#: Written after ``failed`` (and ``reused``) where the searcher marks them: the query's sample
#: was drawn uniformly at random, blind to any answer (:attr:`fadejax.searchers.base.Choice.drawn`).
DRAWN = "drawn"


_CONCEPT_CACHE_SIZE = 1 << 16


class RecordWriter:
    """Appends query records; ``offset`` is the byte length of complete records written.

    One line per query: ``iteration, env, sample, action, cell, concepts {axis: value},
    reward, failed``, then the task's own fields in alphabetical order (e.g. ``label,
    predicted, score`` for a classifier; BLEU, summary and edited text for a summarizer), then ``step, done`` in
    microscopic mode. ``names`` (field -> class names, e.g. the task's ``record_names``)
    adds ``FIELD_name`` after each such integer field: ``label_name``, ``predicted_name``.
    """

    def __init__(self, path: Path, space: ConceptSpace, mode: str, truncate_to: int = 0, names: dict[str, Sequence[str]] | None = None):
        self.path = Path(path)
        self.space = space
        self.mode = mode
        # field -> JSON texts of its class names: each such integer field gets a FIELD_name
        self._named = {field: np.asarray([json.dumps(str(n)) for n in labels], dtype=object) for field, labels in (names or {}).items()}
        self._names = [json.dumps(n) for n in space.names]
        self._values = [[json_scalar(v) for v in a.values] for a in space.axes]
        self._concept_cache: dict[int, str] = {}
        self._concept_table: pa.Array | None = None
        self._env_texts: pa.Array | None = None
        self._file = AppendOnlyFile(self.path, truncate_to, what="records", error=RecordsError)
        #: (sample * A + cell) -> the task fields of the pair's first record; built from the
        #: file at the first re-asked query, then kept up to date (runs that never re-ask skip it)
        self._answered: dict[int, dict[str, Any]] | None = None

    @property
    def offset(self) -> int:
        return self._file.offset

    def write(self, iteration: int, outcome: dict) -> None:
        """Append one iteration's records; ``outcome`` holds ``(B,)`` arrays (host or
        device: device arrays are fetched here) or lists, as
        :meth:`fadejax.engine.loop.Discovery.step` returns them."""
        self.write_many([(iteration, fetch(outcome))])

    def write_many(self, iterations: Sequence[tuple[int, dict]]) -> None:
        """Append several iterations' records, in the order given, as one write: the same
        bytes as :meth:`write` of each in turn, formatted in one pass (Arrow's fixed cost
        per call is paid once, not once per iteration). Each outcome is a :func:`fetch`
        result (host arrays or lists)."""
        if any(REUSED in o and np.any(o[REUSED]) for _, o in iterations) or (self._answered is not None and any(REUSED in o for _, o in iterations)):
            for item in iterations:  # one at a time: each re-asked query's fields come from the records before it
                self._fill_reused(item[1])
                self._file.append(self._lines([item]))
            return
        start = 0
        while start < len(iterations):  # runs of iterations with the same fields, one pass each
            fields = set(iterations[start][1])
            end = start + 1
            while end < len(iterations) and set(iterations[end][1]) == fields:
                end += 1
            self._file.append(self._lines(iterations[start:end]))
            start = end

    def _task_fields(self, outcome: dict) -> list[str]:
        return [k for k in outcome if k not in CORE_FIELDS + ("sample", "done", "step", REUSED, DRAWN)]

    def _fill_reused(self, outcome: dict) -> None:
        """Give each re-asked query of ``outcome`` (in place) the task fields of its pair's
        first answer: from the records already written, or from this iteration's own."""
        num_actions = self.space.num_actions
        if self._answered is None:
            self._answered = {}
            for record in read_records(self.path):
                pair = int(record["sample"]) * num_actions + int(record["cell"])
                if not record.get(REUSED, False) and pair not in self._answered:
                    self._answered[pair] = {k: record[k] for k in self._task_fields(record) if k != "concepts" and k != "iteration"
                                            and k != "env" and not k.endswith("_name")}
        fields = self._task_fields(outcome)
        pairs = (np.asarray(outcome["sample"], np.int64) * num_actions + np.asarray(outcome["cell"], np.int64)).tolist()
        reused = np.asarray(outcome[REUSED], bool).tolist()
        for row, (pair, again) in enumerate(zip(pairs, reused)):
            if not again and pair not in self._answered:
                self._answered[pair] = {k: _item(outcome[k][row]) for k in fields}
        for k in fields:
            if not isinstance(outcome[k], list):
                outcome[k] = np.array(outcome[k])  # a writable copy
        for row, (pair, again) in enumerate(zip(pairs, reused)):
            if again:
                known = self._answered.get(pair)
                if known is None:
                    raise RecordsError(f"'{self.path}': a re-asked pair (sample {pair // num_actions}, cell {pair % num_actions}) "
                                       "has no earlier answer in the records")
                for k in fields:
                    outcome[k][row] = known[k]

    def _lines(self, iterations: Sequence[tuple[int, dict]]) -> memoryview:
        """The JSONL bytes of iterations that all have the same fields."""
        if len(iterations) == 1:
            iteration, outcome = iterations[0]
            head: list[str | pa.Array] = [f'{{"iteration": {iteration}, "env": ', self._envs(len(outcome["cell"]))]
        else:
            outcome = {k: _concatenated([o[k] for _, o in iterations]) for k in iterations[0][1]}
            sizes = [len(o["cell"]) for _, o in iterations]
            numbers = np.repeat(np.asarray([i for i, _ in iterations], np.int64), sizes)
            envs = np.concatenate([np.arange(n, dtype=np.int64) for n in sizes])
            head = ['{"iteration": ', json_texts(numbers), ', "env": ', json_texts(envs)]
        cells = np.asarray(outcome["cell"])
        # Column by column, then the columns joined into lines by Arrow (fadejax.engine.store.json_columns):
        # no Python string per value or per line, the same bytes.
        parts: list[str | pa.Array] = [
            *head, ', "sample": ', json_texts(outcome["sample"]),
            ', "action": ', json_texts(outcome["action"]), ', "cell": ', json_texts(cells), ', "concepts": {', self._concepts(cells),
            '}, "reward": ', json_texts(outcome["reward"]), ', "failed": ', json_texts(outcome["failed"]),
        ]
        if REUSED in outcome:
            parts += [f', "{REUSED}": ', json_texts(np.asarray(outcome[REUSED], bool))]
        if DRAWN in outcome:
            parts += [f', "{DRAWN}": ', json_texts(np.asarray(outcome[DRAWN], bool))]
        for k in sorted(self._task_fields(outcome)):
            parts += [f', "{k}": ', json_texts(outcome[k])]
            if k in self._named:
                parts += [f', "{k}_name": ', pa.array(self._named[k][np.asarray(outcome[k], np.int64)], pa.string())]
        if self.mode == "micro":
            parts += [', "step": ', json_texts(np.asarray(outcome["step"]).astype(np.int64)),
                      ', "done": ', json_texts(np.asarray(outcome["done"]).astype(bool))]
        return joined_lines(parts + ["}\n"])

    def _envs(self, batch: int) -> pa.Array:
        """``0 .. batch-1`` as JSON texts (the same every iteration)."""
        if self._env_texts is None or len(self._env_texts) != batch:
            self._env_texts = json_texts(np.arange(batch))
        return self._env_texts

    def _concepts(self, cells: np.ndarray) -> pa.Array:
        """The ``concepts`` object's inside for each cell, ``axis: value, ...``: taken from a
        table of every cell's where the space has at most ``_CONCEPT_CACHE_SIZE`` cells,
        else from a cache of the cells seen (million-action spaces: memory kept bounded)."""
        if self.space.num_actions <= _CONCEPT_CACHE_SIZE:
            if self._concept_table is None:
                self._concept_table = pa.array(self._concept_texts(np.arange(self.space.num_actions)), pa.string())
            return self._concept_table.take(pa.array(cells.astype(np.int64)))
        missing = np.asarray([c for c in set(cells.tolist()) if c not in self._concept_cache], np.int64)
        if missing.size:
            self._concept_cache.update(zip(missing.tolist(), self._concept_texts(missing)))
            if len(self._concept_cache) > _CONCEPT_CACHE_SIZE:
                self._concept_cache = {c: self._concept_cache[c] for c in set(cells.tolist())}
        return pa.array([self._concept_cache[c] for c in cells.tolist()], pa.string())

    def _concept_texts(self, cells: np.ndarray) -> list[str]:
        per_axis = np.unravel_index(cells, self.space.sizes)  # row-major, as ConceptSpace numbers cells
        return [", ".join(f"{n}: {self._values[i][per_axis[i][j]]}" for i, n in enumerate(self._names)) for j in range(cells.shape[0])]

    def sync(self) -> None:
        """Flush to stable storage (called at checkpoints)."""
        self._file.sync()

    def close(self) -> None:
        self._file.close()


def fetch(outcome: dict[str, Any]) -> dict[str, Any]:
    """An iteration's outcome with its device arrays copied to the host (numpy); lists
    (e.g. a summarizer's texts) as they are."""
    # One jax.device_get starts every device-to-host copy before waiting for any: on a
    # GPU, fetching the columns one by one paid a round trip each.
    arrays = jax.device_get({k: v for k, v in outcome.items() if not isinstance(v, (list, tuple))})
    return {k: v if isinstance(v, (list, tuple)) else np.asarray(arrays[k]) for k, v in outcome.items()}


def _item(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _concatenated(columns: Sequence[Any]) -> Any:
    """Several iterations' values of one field, end to end (arrays, or lists for texts)."""
    if any(isinstance(c, (list, tuple)) for c in columns):
        return [v for c in columns for v in c]
    return np.concatenate([np.atleast_1d(c) for c in columns])


@dataclass
class _Fetched:
    """An iteration on the writer's thread: fetched, counted, its lines not yet written."""

    iteration: int
    outcome: dict[str, Any]
    failures: int
    learner: dict[str, Any] | None
    times: StageTimes | None
    fetched_at: float  # time.perf_counter() when its fetch began
    fetch_seconds: float

    @property
    def rows(self) -> int:
        return len(self.outcome["failed"])


_FLUSH = object()  # queued by drain(): write what the thread holds, then report


class BackgroundRecordWriter:
    """A :class:`RecordWriter` on its own thread: :meth:`write` queues an iteration's outcome
    (device arrays are fine: the thread fetches them) and returns at once, so formatting and
    writing overlap the next iteration's work.

    At most ``depth`` iterations wait in the queue (:meth:`write` blocks beyond that). The
    thread fetches each iteration as it comes and writes the fetched ones together once they
    hold ``coalesce_rows`` queries or the oldest was fetched ``max_delay`` seconds ago
    (whether or not more iterations come):
    formatting a few thousand rows in one pass costs little more than formatting a few
    hundred (Arrow's cost per call is fixed), so small batches are not paid for one by one.
    :attr:`offset`, :meth:`drain` and :meth:`sync` first write everything submitted, so a
    checkpoint taken after them records exactly the iterations its state has done. An
    error on the thread (e.g. a full disk) is raised by the next call from the loop.
    ``failures`` counts the failed queries fetched so far (for progress displays).

    With a ``log`` (:class:`fadejax.engine.store.learning_log.LearningLog`) the thread also writes each
    iteration's learning-curve row right after its records, from the searcher's figures
    and stage times given to :meth:`write`; :attr:`log_offset` is that file's length.
    """

    def __init__(self, writer: RecordWriter, depth: int = 4, log: LearningLog | None = None,
                 coalesce_rows: int = 2048, max_delay: float = 0.5):
        self._writer = writer
        self.log = log
        self.coalesce_rows = int(coalesce_rows)
        self.max_delay = float(max_delay)
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._held: list[_Fetched] = []
        self.failures = 0
        self._thread = threading.Thread(target=self._work, name="fadejax-records", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            wait = None if not self._held else max(0.0, self._held[0].fetched_at + self.max_delay - time.perf_counter())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:  # the loop went quiet: what is held has waited long enough
                try:
                    self._write_held()
                except BaseException as exc:  # noqa: BLE001 - handed to the loop's thread
                    self._error = exc
                continue
            try:
                if self._error is not None:  # after an error, only drain (the loop raises it)
                    self._held = []
                elif isinstance(item, tuple):
                    self._hold(*item)
                else:  # an image, a drain's flush or the close: the records before it first
                    self._write_held()
                    if callable(item):
                        item()
            except BaseException as exc:  # noqa: BLE001 - handed to the loop's thread
                self._error = exc
            finally:
                self._queue.task_done()
            if item is None:
                return

    def _hold(self, iteration: int, outcome: dict[str, Any], learner: dict[str, Any] | None, times: StageTimes | None) -> None:
        began = time.perf_counter()
        host = fetch(outcome)
        failures = int(np.count_nonzero(np.asarray(host["failed"])))
        self.failures += failures
        self._held.append(_Fetched(iteration, host, failures, learner, times, began, time.perf_counter() - began))
        if sum(h.rows for h in self._held) >= self.coalesce_rows or time.perf_counter() - self._held[0].fetched_at >= self.max_delay:
            self._write_held()

    def _write_held(self) -> None:
        """Write the held iterations' lines (one pass), then their learning-curve rows; each
        row's ``time.records`` is its fetch plus its share of the pass."""
        held, self._held = self._held, []
        if not held:
            return
        rows = sum(h.rows for h in held)
        began = time.perf_counter()
        self._writer.write_many([(h.iteration, h.outcome) for h in held])
        seconds = time.perf_counter() - began
        if self.log is not None:
            for h in held:
                share = seconds * h.rows / max(rows, 1)
                self.log.add(h.iteration, h.failures, h.learner or {}, h.times, h.fetch_seconds + share)

    def _submit(self, work) -> None:
        self._raise_pending()
        if not self._thread.is_alive():
            raise RuntimeError("the record writer is closed")
        self._queue.put(work)

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def write(self, iteration: int, outcome: dict[str, Any], learner: dict[str, Any] | None = None, times: StageTimes | None = None) -> None:
        """Queue iteration ``iteration``'s records (and, with a log, its learning-curve row
        from the searcher's figures ``learner`` and the stage ``times``)."""
        self._submit((iteration, outcome, learner, times))

    def add_image(self, tag: str, make_rgb) -> None:
        """Queue an image for the log's sinks, made on the thread by ``make_rgb()`` (an
        ``(H, W, 3)`` uint8 array), logged at the queries of the iteration queued last."""
        if self.log is not None and self.log.sinks:
            self._submit(lambda: self.log.add_image(tag, make_rgb))

    def drain(self) -> None:
        """Wait until every queued iteration is written."""
        if self._thread.is_alive():
            self._queue.put(_FLUSH)
        self._queue.join()
        self._raise_pending()

    @property
    def offset(self) -> int:
        self.drain()
        return self._writer.offset

    @property
    def log_offset(self) -> int:
        """The learning-curve file's length after everything queued (0 without a log)."""
        self.drain()
        return self.log.offset if self.log is not None else 0

    def sync(self) -> None:
        self.drain()
        self._writer.sync()
        if self.log is not None:
            self.log.sync()

    def close(self, failed: bool = False) -> None:
        """Write what is queued, stop the thread and close the files (``failed``: the run
        stopped on an error or an interrupt, which the log's sinks are told)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._writer.close()
        if self.log is not None:
            self.log.close(failed)
        self._raise_pending()


def read_records(path: Path) -> Iterator[dict]:
    """Yield every complete record of a run's ``records.jsonl`` (a final line without its
    newline, cut off by a kill, is skipped); :class:`RecordsError` names a line that is
    not a JSON object."""
    for number, record, line in json_lines(path):
        if not isinstance(record, dict):
            raise RecordsError(f"'{path}' line {number} is not a record: {line[:80]!r}")
        yield record


def cell_statistics(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse per-cell statistics of a records file: ``(cells, visits, failures)``, each
    ``(V,)`` int64 over the ``V`` visited cells (sorted), whatever the size of the space."""
    fast = read_columns(path, {"cell": "int64", "failed": "bool"})
    if fast is not None and (fast[0]["cell"] >= 0).all():
        return sparse_counts(fast[0]["cell"], fast[0]["failed"])
    cells, failed = [], []  # line by line: names the bad record, or reads what Arrow refused
    for number, record in enumerate(read_records(path), 1):
        cell, fail = record.get("cell"), record.get("failed")
        if type(cell) is not int or cell < 0 or type(fail) is not bool:
            raise RecordsError(f"'{path}' record {number} has no valid cell (an integer >= 0) and failed flag (true or false)")
        cells.append(cell)
        failed.append(fail)
    return sparse_counts(np.asarray(cells, np.int64), np.asarray(failed, bool))


def query_columns(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every query of a records file: ``(samples, cells, failed)``, each ``(Q,)`` (int64, int64, bool)."""
    fast = read_columns(path, {"sample": "int64", "cell": "int64", "failed": "bool"})
    if fast is not None and (fast[0]["cell"] >= 0).all() and (fast[0]["sample"] >= 0).all():
        return fast[0]["sample"], fast[0]["cell"], fast[0]["failed"]
    samples, cells, failed = [], [], []  # line by line: names the bad record, or reads what Arrow refused
    for number, record in enumerate(read_records(path), 1):
        sample, cell, fail = record.get("sample"), record.get("cell"), record.get("failed")
        if type(sample) is not int or type(cell) is not int or sample < 0 or cell < 0 or type(fail) is not bool:
            raise RecordsError(f"'{path}' record {number} has no valid sample and cell (integers >= 0) and failed flag (true or false)")
        samples.append(sample)
        cells.append(cell)
        failed.append(fail)
    return np.asarray(samples, np.int64), np.asarray(cells, np.int64), np.asarray(failed, bool)


def query_drawn(path: Path) -> np.ndarray | None:
    """Which queries of a records file were uniform draws (the ``drawn`` field), ``(Q,)`` bool,
    in the order of :func:`query_columns`; ``None`` where the records do not say (a searcher
    that marks none, microscopic mode, or a run written before the field existed)."""
    first = next(iter(read_records(path)), None)
    if first is None or DRAWN not in first:
        return None
    fast = read_columns(path, {DRAWN: "bool"})
    if fast is not None:
        return fast[0][DRAWN]
    drawn = []
    for number, record in enumerate(read_records(path), 1):
        value = record.get(DRAWN, False)
        if type(value) is not bool:
            raise RecordsError(f"'{path}' record {number} has a '{DRAWN}' field that is not true or false")
        drawn.append(value)
    return np.asarray(drawn, bool)


def sparse_counts(cells: np.ndarray, failed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries ``(Q,)`` (their cells and whether each failed) counted per visited cell:
    ``(cells, visits, failures)``, each ``(V,)`` int64, cells sorted."""
    unique, inverse, visits = np.unique(np.asarray(cells, np.int64), return_inverse=True, return_counts=True)
    failures = np.bincount(inverse, weights=np.asarray(failed, np.float64), minlength=unique.size).astype(np.int64)
    return unique, visits.astype(np.int64), failures


def top_observed_cells(path: Path, k: int, min_visits: int = 5) -> list[dict]:
    """The ``k`` cells of a records file with the highest observed failure rate (see :func:`rank_cells`):
    ``[{"cell", "visits", "failures", "failure_rate"}]``."""
    cells, visits, failures = cell_statistics(path)
    return [
        {"cell": int(cells[i]), "visits": int(visits[i]), "failures": int(failures[i]), "failure_rate": float(failures[i] / visits[i])}
        for i in rank_cells(visits, failures, k, min_visits)
    ]


def rank_cells(visits: np.ndarray, failures: np.ndarray, k: int, min_visits: int = 5) -> list[int]:
    """Positions of the ``k`` entries with the highest observed failure rate, ties broken by
    more visits (dense per-cell arrays: the positions are cells; sparse ones: index them).

    Only cells visited at least ``min_visits`` times compete (fewer if no cell has that
    many), so a single lucky query does not top the list.
    """
    threshold = min(min_visits, max(int(visits.max(initial=0)), 1))
    eligible = np.flatnonzero(visits >= threshold)
    rate = failures[eligible] / visits[eligible]
    return [int(c) for c in eligible[np.lexsort((-visits[eligible], -rate))][:k]]
