"""What a run's records are called and hold, shared by their two file formats.

A run keeps one record per audited-model query, in ``records.arrow`` (Arrow IPC stream,
columns; :mod:`~fadejax.engine.store.arrow_records`; compacted to ``records.parquet`` when
the run completes) or, for runs written before it and
runs that ask for it (``run.records: jsonl``), ``records.jsonl`` (one JSON object a line;
:mod:`~fadejax.engine.store.jsonl_format`). Both hold the same fields.
"""

from __future__ import annotations

from pathlib import Path

#: The JSON-lines records file (runs written before columnar records, and ``run.records: jsonl``).
RECORDS_FILE = "records.jsonl"
#: The columnar records file (Arrow IPC stream), the default since columnar records.
ARROW_RECORDS_FILE = "records.arrow"
#: A complete run's columnar records, compacted to Parquet when the run completes (smaller,
#: and faster to read; ``benchmarks/records_read.py``).
PARQUET_RECORDS_FILE = "records.parquet"
#: What ``run.records`` may be.
RECORD_FORMATS = ("arrow", "jsonl")

#: Fields every record has, written first and in this order; a task's own fields follow.
CORE_FIELDS = ("action", "cell", "reward", "failed")
#: Written after ``failed`` on a deterministic audit: the query re-asked a pair and was answered
#: from the run's own answers, not by the model (its task fields repeat the first answer's).
REUSED = "reused"
#: Written after ``failed`` (and ``reused``) where the searcher marks them: the query's sample
#: was drawn uniformly at random, blind to any answer (:attr:`fadejax.searchers.base.Choice.drawn`).
DRAWN = "drawn"
#: Fields the loop gives that are not the task's own (``step`` and ``done`` are written in micro mode only).
LOOP_FIELDS = ("iteration", "env", "sample", *CORE_FIELDS, REUSED, DRAWN, "step", "done")


class RecordsError(ValueError):
    """A run's records file is unreadable, damaged, or does not match its checkpoint."""


def task_fields(fields) -> list[str]:
    """The task's own fields among ``fields`` (e.g. ``label, predicted, score``), sorted: the
    order both formats write them in."""
    return sorted(k for k in fields if k not in LOOP_FIELDS)


def records_path(run_dir: Path) -> Path:
    """The records file of ``run_dir``: ``records.parquet`` (a complete columnar run),
    ``records.arrow`` or ``records.jsonl``, whichever it holds (the columnar file's path
    when it holds none yet)."""
    run_dir = Path(run_dir)
    if (run_dir / PARQUET_RECORDS_FILE).is_file():
        return run_dir / PARQUET_RECORDS_FILE
    jsonl = run_dir / RECORDS_FILE
    if jsonl.is_file() and not (run_dir / ARROW_RECORDS_FILE).is_file():
        return jsonl
    return run_dir / ARROW_RECORDS_FILE


def has_records(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a records file (either format), however short."""
    return any((Path(run_dir) / name).is_file() for name in (ARROW_RECORDS_FILE, RECORDS_FILE, PARQUET_RECORDS_FILE))
