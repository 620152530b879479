"""Durable per-query failure records: columns in ``records.arrow`` (:class:`ArrowRecordWriter`,
the default: one Arrow record batch per iteration, compacted to ``records.parquet`` when the
run completes) or one JSON object per line in ``records.jsonl`` (:class:`RecordWriter`;
``run.records: jsonl``, and runs written before columnar records).

Each iteration's records are appended and flushed as one write. During discovery a
:class:`BackgroundRecordWriter` formats and writes them on its own thread while the loop
goes on, a few iterations behind at most; at a checkpoint it first writes everything
submitted, so the byte length the checkpoint stores covers exactly the iterations the
checkpointed state has done. Resuming truncates the file to that length and replays the
iterations after it deterministically, so no record is lost or duplicated, whether the
process was stopped or killed.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np
import pyarrow as pa

from fadejax.core.spaces import ConceptSpace
from fadejax.engine.store.arrow_records import batch_message, column_array, new_schema, read_arrow_records
from fadejax.engine.store.durable import AppendOnlyFile
from fadejax.engine.store.json_columns import json_texts
from fadejax.engine.store.jsonl_format import JsonlFormat
from fadejax.engine.store.learning_log import LearningLog, StageTimes
from fadejax.engine.store.record_columns import is_columnar, read_columns, read_records
from fadejax.engine.store.record_fields import (  # noqa: F401 - the records' names, re-exported for callers
    ARROW_RECORDS_FILE, CORE_FIELDS, DRAWN, PARQUET_RECORDS_FILE, RECORDS_FILE, REUSED, RecordsError, has_records, records_path,
    task_fields,
)

class RecordWriter:
    """Appends query records as JSON lines (``records.jsonl``; :class:`ArrowRecordWriter` writes
    the same records as columns); ``offset`` is the byte length of complete records written.

    The lines are :class:`fadejax.engine.store.jsonl_format.JsonlFormat`'s. ``names`` (field
    -> class names, e.g. the task's ``record_names``) adds ``FIELD_name`` after each such
    integer field: ``label_name``, ``predicted_name``.
    """

    def __init__(self, path: Path, space: ConceptSpace, mode: str, truncate_to: int = 0, names: dict[str, Sequence[str]] | None = None):
        self.path = Path(path)
        self.space = space
        self.mode = mode
        self.form = JsonlFormat.of_space(space, mode, names)
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
        records as :meth:`write` of each in turn, formatted in one pass (Arrow's fixed cost
        per call is paid once, not once per iteration). Each outcome is a :func:`fetch`
        result (host arrays or lists)."""
        if any(REUSED in o and np.any(o[REUSED]) for _, o in iterations) or (self._answered is not None and any(REUSED in o for _, o in iterations)):
            for item in iterations:  # one at a time: each re-asked query's fields come from the records before it
                self._fill_reused(item[1])
                self._append([item])
            return
        start = 0
        while start < len(iterations):  # runs of iterations with the same fields, one pass each
            fields = set(iterations[start][1])
            end = start + 1
            while end < len(iterations) and set(iterations[end][1]) == fields:
                end += 1
            self._append(iterations[start:end])
            start = end

    def _append(self, iterations: Sequence[tuple[int, dict]]) -> None:
        """Write iterations that all have the same fields."""
        self._file.append(self._lines(iterations))

    def _fill_reused(self, outcome: dict) -> None:
        """Give each re-asked query of ``outcome`` (in place) the task fields of its pair's
        first answer: from the records already written, or from this iteration's own."""
        num_actions = self.space.num_actions
        if self._answered is None:
            self._answered = {}
            for record in read_records(self.path):
                pair = int(record["sample"]) * num_actions + int(record["cell"])
                if not record.get(REUSED, False) and pair not in self._answered:
                    self._answered[pair] = {k: record[k] for k in task_fields(record) if k != "concepts" and not k.endswith("_name")}
        fields = task_fields(outcome)
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
            return self.form.lines(outcome, str(iteration), self._envs(len(outcome["cell"])))
        outcome = {k: _concatenated([o[k] for _, o in iterations]) for k in iterations[0][1]}
        numbers, envs = _positions(iterations)
        return self.form.lines(outcome, json_texts(numbers), json_texts(envs))

    def _envs(self, batch: int) -> pa.Array:
        """``0 .. batch-1`` as JSON texts (the same every iteration)."""
        if self._env_texts is None or len(self._env_texts) != batch:
            self._env_texts = json_texts(np.arange(batch))
        return self._env_texts

    def sync(self) -> None:
        """Flush to stable storage (called at checkpoints)."""
        self._file.sync()

    def close(self) -> None:
        self._file.close()


class ArrowRecordWriter(RecordWriter):
    """Appends query records as columns: one Arrow record batch per iteration to ``records.arrow``
    (:mod:`fadejax.engine.store.arrow_records`), the same records :class:`RecordWriter` writes
    as JSON lines, with no per-row Python. The schema is written with the first records; a
    resumed run's file keeps its schema, and a write whose fields differ from it is refused."""

    def __init__(self, path: Path, space: ConceptSpace, mode: str, truncate_to: int = 0, names: dict[str, Sequence[str]] | None = None):
        super().__init__(path, space, mode, truncate_to, names)
        self._schema: pa.Schema | None = None
        if truncate_to:
            self._schema = _schema_of(self.path)

    def _append(self, iterations: Sequence[tuple[int, dict]]) -> None:
        # One record batch per iteration, however many iterations a write holds: the file's
        # bytes then do not depend on how the background writer happened to group them, so
        # a resumed run's file is the uninterrupted run's, byte for byte.
        messages = [m for iteration, outcome in iterations for m in self._batch(iteration, outcome)]
        self._file.append(messages[0] if len(messages) == 1 else b"".join(messages))

    def _batch(self, iteration: int, outcome: dict) -> list[pa.Buffer]:
        """One iteration's record-batch message (after the schema's, for the run's first)."""
        size = len(outcome["cell"])
        columns = {"iteration": column_array(np.full(size, iteration, np.int32)), "env": column_array(np.arange(size, dtype=np.int32))}
        for k in ("sample", *CORE_FIELDS, REUSED, DRAWN, *task_fields(outcome)):
            if k in outcome:
                columns[k] = column_array(outcome[k])
        if self.mode == "micro":
            columns["step"] = column_array(np.asarray(outcome["step"]).astype(np.int32))
            columns["done"] = column_array(np.asarray(outcome["done"]).astype(bool))
        head = []
        if self._schema is None:
            self._schema = new_schema(columns, self.form)
            head = [self._schema.serialize()]  # written with the first records: a file never holds a schema alone
        return head + [batch_message(columns, self._schema)]


def open_record_writer(run_dir: Path, space: ConceptSpace, mode: str, *, record_format: str, truncate_to: int = 0,
                       names: dict[str, Sequence[str]] | None = None) -> RecordWriter:
    """The writer of a run's records: in the format of the file ``run_dir`` already holds
    (a run written before columnar records keeps its JSON lines), else ``record_format``
    (``"arrow"`` or ``"jsonl"``, the config's ``run.records``)."""
    run_dir = Path(run_dir)
    # a stream first: beside a Parquet file, it is one a crash left while compacting it
    for name, kind in ((ARROW_RECORDS_FILE, ArrowRecordWriter), (RECORDS_FILE, RecordWriter)):
        if (run_dir / name).is_file():
            return kind(run_dir / name, space, mode, truncate_to=truncate_to, names=names)
    if (run_dir / PARQUET_RECORDS_FILE).is_file():
        raise RecordsError(f"'{run_dir}' holds the compacted records of a complete run ({PARQUET_RECORDS_FILE}); "
                           "a complete run takes no more records: start another run")
    kind, name = (RecordWriter, RECORDS_FILE) if record_format == "jsonl" else (ArrowRecordWriter, ARROW_RECORDS_FILE)
    return kind(run_dir / name, space, mode, truncate_to=truncate_to, names=names)


def _schema_of(path: Path) -> pa.Schema:
    """The schema at the head of a columnar records file."""
    try:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.read_schema(pa.ipc.read_message(source))
    except (OSError, pa.ArrowException) as error:
        raise RecordsError(f"'{path}' does not start with a records schema ({str(error).splitlines()[0][:200]}); "
                           "this run cannot resume exactly") from None


def _positions(iterations: Sequence[tuple[int, dict]]) -> tuple[np.ndarray, np.ndarray]:
    """Each query's iteration and environment, ``(Q,)`` int64 each, for iterations end to end."""
    sizes = [len(o["cell"]) for _, o in iterations]
    numbers = np.repeat(np.asarray([i for i, _ in iterations], np.int64), sizes)
    envs = np.concatenate([np.arange(n, dtype=np.int64) for n in sizes])
    return numbers, envs


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
    if is_columnar(path):
        drawn = read_arrow_records(path).column(DRAWN)
        return None if drawn is None or not len(drawn) else np.asarray(drawn, bool)
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
