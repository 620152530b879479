"""Durable per-query failure records: one JSON object per line in ``records.jsonl``.

Each iteration's lines are appended and flushed before the next iteration starts, so a
killed process loses nothing it reported (the OS keeps flushed data). Checkpoints store
the file's byte length; resuming truncates the file to that length and replays the
iterations after it deterministically, so no record is lost or duplicated.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from fadejax.spaces import ConceptSpace

RECORDS_FILE = "records.jsonl"


class RecordsError(ValueError):
    """A run's records file does not match its checkpoint."""


#: Fields every record has, written first and in this order; a task's own fields follow.
CORE_FIELDS = ("action", "cell", "reward", "failed")


def _json_scalar(value) -> str:
    """One value as JSON text: bools, ints, floats (round-trip exact) and strings."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value)) if np.isfinite(value) else "null"
    return json.dumps(str(value))


class RecordWriter:
    """Appends query records; ``offset`` is the byte length of complete records written.

    One line per query: ``iteration, env, sample, action, cell, concepts {axis: value},
    reward, failed``, then the task's own fields (e.g. ``label, predicted, score`` for a
    classifier; edited text, summary and BLEU for a summarizer), then ``step, done`` in
    microscopic mode.
    """

    def __init__(self, path: Path, space: ConceptSpace, mode: str, truncate_to: int = 0):
        self.path = Path(path)
        self.space = space
        self.mode = mode
        self._names = [json.dumps(n) for n in space.names]
        self._values = [[_json_scalar(v) for v in a.values] for a in space.axes]
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < truncate_to:
            raise RecordsError(
                f"'{self.path}' holds {size} bytes but the checkpoint recorded {truncate_to}; "
                "the records were shortened outside fadejax, so this run cannot resume exactly"
            )
        self._file = open(self.path, "a+b")
        self._file.truncate(truncate_to)
        self._file.seek(truncate_to)

    @property
    def offset(self) -> int:
        return self._file.tell()

    def write(self, iteration: int, outcome: dict) -> None:
        """Append one iteration's records; ``outcome`` holds ``(B,)`` host arrays or lists
        (:meth:`fadejax.discovery.Discovery.step`'s outcome, fetched to the host)."""
        cells = np.asarray(outcome["cell"])
        per_axis = np.unravel_index(cells, self.space.sizes)  # row-major, as ConceptSpace numbers cells
        extra = [k for k in outcome if k not in CORE_FIELDS + ("sample", "done", "step")]
        columns = {k: (outcome[k].tolist() if isinstance(outcome[k], np.ndarray) else list(outcome[k])) for k in extra}
        samples, actions = np.asarray(outcome["sample"]).tolist(), np.asarray(outcome["action"]).tolist()
        rewards, failed = np.asarray(outcome["reward"]).tolist(), np.asarray(outcome["failed"]).tolist()
        lines = []
        for env in range(cells.shape[0]):
            concepts = ", ".join(f"{n}: {self._values[i][per_axis[i][env]]}" for i, n in enumerate(self._names))
            line = (
                f'{{"iteration": {iteration}, "env": {env}, "sample": {samples[env]}, "action": {actions[env]}, '
                f'"cell": {int(cells[env])}, "concepts": {{{concepts}}}, '
                f'"reward": {_json_scalar(rewards[env])}, "failed": {_json_scalar(failed[env])}'
            )
            for k in extra:
                line += f', "{k}": {_json_scalar(columns[k][env])}'
            if self.mode == "micro":
                line += f', "step": {int(outcome["step"][env])}, "done": {_json_scalar(bool(outcome["done"][env]))}'
            lines.append(line + "}\n")
        self._file.write("".join(lines).encode())
        self._file.flush()

    def sync(self) -> None:
        """Flush to stable storage (called at checkpoints)."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_records(path: Path) -> Iterator[dict]:
    """Yield every complete record of a run's ``records.jsonl``."""
    with open(path, "rb") as f:
        for line in f:
            if line.endswith(b"\n"):
                yield json.loads(line)


def cell_statistics(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse per-cell statistics of a records file: ``(cells, visits, failures)``, each
    ``(V,)`` int64 over the ``V`` visited cells (sorted), whatever the size of the space."""
    cells, failed = [], []
    for record in read_records(path):
        cells.append(record["cell"])
        failed.append(record["failed"])
    return sparse_counts(np.asarray(cells, np.int64), np.asarray(failed, bool))


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
