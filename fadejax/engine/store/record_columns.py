"""A records file's columns, whichever its format: the way every reader reads a run.

A columnar file (``records.arrow``, :mod:`fadejax.engine.store.arrow_records`) is read as
columns directly. For JSON lines (``records.jsonl``, runs written before columnar records
or with ``run.records: jsonl``):

Reading a run's ``records.jsonl`` line by line with :func:`json.loads` costs about 10 µs a
record in Python (4 s for the 409,600 records of a 200-iteration run at 2,048 queries an
iteration); Arrow's multi-threaded parser reads only the named fields, in C++, several times
faster (``benchmarks/records_read.py``: 6-9x). The line-by-line readers stay the reference:
:func:`read_columns` returns ``None`` whenever it cannot vouch that they would read the same
values without an error (a line that does not parse, a field that is missing, null or of
another type, a blank line, bytes that are not UTF-8, a key given twice, an integer beyond
64 bits), and its callers then read line by line, which either names the bad line in its
error or, for the rare lines JSON allows and Arrow refuses, reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Protocol, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json

from fadejax.engine.store.arrow_records import ArrowRecords, read_arrow_records
from fadejax.engine.store.durable import json_lines
from fadejax.engine.store.record_fields import ARROW_RECORDS_FILE, RecordsError


_SCAN_BYTES = 1 << 24


@dataclass(frozen=True)
class CompleteLines:
    """A records file's complete part: ``data``, its bytes up to and including the last
    newline (a final line without one, cut off by a kill, is not a record), and ``ends``,
    ``(Q,)`` int64, where each line's newline is."""

    data: bytes
    ends: np.ndarray

    @classmethod
    def of(cls, path: Path) -> "CompleteLines":
        data = Path(path).read_bytes()
        if not data.endswith(b"\n"):
            data = data[: data.rfind(b"\n") + 1]
        view = np.frombuffer(data, np.uint8)
        # in slices: a comparison of the whole file at once would take another file's worth of memory
        ends = [np.flatnonzero(view[i: i + _SCAN_BYTES] == ord("\n")) + i for i in range(0, view.size, _SCAN_BYTES)]
        return cls(data, np.concatenate(ends) if ends else np.zeros(0, np.int64))

    def lines(self, rows: Sequence[int] | np.ndarray) -> list[bytes]:
        """The lines (without their newline) at the 0-based ``rows``."""
        starts = np.concatenate([[0], self.ends[:-1] + 1])
        return [self.data[starts[r]: self.ends[r]] for r in np.asarray(rows, np.int64).tolist()]


class RecordRows(Protocol):
    """A records file's complete records, either format: ``ends``, ``(Q,)`` int64, where each
    record's bytes end (a JSON line's newline; the last byte of a columnar record's batch),
    so a checkpoint of ``n`` bytes covers the records with ``ends < n``; ``lines(rows)``,
    those records as JSON lines."""

    ends: np.ndarray

    def lines(self, rows: Sequence[int] | np.ndarray) -> list[bytes]: ...


def is_columnar(path: Path) -> bool:
    """Whether ``path`` names a columnar records file (an Arrow stream, or the Parquet of a
    complete run) rather than JSON lines."""
    return Path(path).name == ARROW_RECORDS_FILE or Path(path).suffix in (".arrow", ".parquet")


def record_rows(path: Path) -> RecordRows:
    """The complete records of a records file of either format (see :class:`RecordRows`)."""
    return read_arrow_records(path) if is_columnar(path) else CompleteLines.of(path)


def read_records(path: Path) -> Iterator[dict]:
    """Yield every complete record of a records file, either format, as the JSON-lines
    object (a final line without its newline, or a columnar batch cut short by a kill, is
    skipped); :class:`RecordsError` names a line that is not a JSON object."""
    if is_columnar(path):
        records = read_arrow_records(path)
        for start in range(0, records.num_rows, 4096):
            yield from map(json.loads, records.lines(np.arange(start, min(start + 4096, records.num_rows))))
        return
    for number, record, line in json_lines(path):
        if not isinstance(record, dict):
            raise RecordsError(f"'{path}' line {number} is not a record: {line[:80]!r}")
        yield record


def read_columns(path: Path, fields: Mapping[str, str]) -> tuple[dict[str, np.ndarray], RecordRows] | None:
    """Every complete record's ``fields`` (name -> Arrow type name: ``"int64"``, ``"bool"``)
    as ``(Q,)`` NumPy arrays, and the file's records (to read some whole);
    ``None`` where the line-by-line reading must decide (see the module docstring),
    including an empty file and a field the run does not have or of another type."""
    if is_columnar(path):
        return _arrow_columns(read_arrow_records(path), fields)
    lines = CompleteLines.of(path)
    if not lines.data:
        return None
    buffer = pa.py_buffer(lines.data)
    try:
        # json.loads refuses a line that is not UTF-8; Arrow may skip it in a field not read
        pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(np.asarray([0, len(lines.data)], np.int64)), buffer]).cast(pa.large_string())
        options = pa_json.ParseOptions(explicit_schema=pa.schema([(name, pa.type_for_alias(kind)) for name, kind in fields.items()]), unexpected_field_behavior="ignore")
        table = pa_json.read_json(pa.BufferReader(buffer), parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    # Arrow skips blank lines and would read two objects on one line as two rows
    if table.num_rows != lines.ends.size or any(table.column(name).null_count for name in fields):
        return None
    return {name: table.column(name).to_numpy() for name in fields}, lines


def _arrow_columns(records: ArrowRecords, fields: Mapping[str, str]) -> tuple[dict[str, np.ndarray], RecordRows] | None:
    if records.num_rows == 0:
        return None
    columns = {}
    for name, kind in fields.items():
        if name not in records.table.column_names:
            return None
        column = records.table.column(name)
        wanted = pa.type_for_alias(kind)
        same_kind = (pa.types.is_integer(column.type) and pa.types.is_integer(wanted)) or column.type == wanted
        if not same_kind:
            return None
        columns[name] = column.to_numpy().astype(wanted.to_pandas_dtype(), copy=False)
    return columns, records
