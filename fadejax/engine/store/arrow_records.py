"""Columnar records: a run's queries as an Arrow IPC stream, ``records.arrow``, compacted to
Parquet, ``records.parquet``, when the run completes.

The file is a schema message, then one record-batch message per iteration, each write's
appended and flushed whole, with no
end-of-stream marker: pyarrow, polars, DuckDB and Hugging Face ``datasets`` open it as an
Arrow stream (``pyarrow.ipc.open_stream``). The schema's metadata (``fadejax.records``)
holds the concept space's axes and the class names as JSON texts, so the JSON-lines form
(``concepts``, ``label_name``) is rebuilt byte for byte by :meth:`ArrowRecords.lines` without
storing it per row: about 37 bytes a query for a classifier audit, against about 228 as
JSON lines.

Crash safety is the JSON-lines file's: a checkpoint stores the byte length of the messages
written, resuming truncates the file to it, and a message cut short by a kill (the file
ends inside it) is not a record. Reading is safe on a file from elsewhere (SECURITY.md):
only the plain column types fadejax writes are accepted (no extension types, nothing
that would import or run code), every batch is fully validated before a value is read,
and anything else is one :class:`RecordsError` naming the byte where the file goes wrong.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fadejax.engine.store.json_columns import json_texts
from fadejax.engine.store.jsonl_format import JsonlFormat, safe_field_name
from fadejax.engine.store.record_fields import CORE_FIELDS, RecordsError

#: The schema metadata key holding :meth:`JsonlFormat.description` and the format version.
META_KEY = b"fadejax.records"
VERSION = 1
#: Types a column may have: what numpy's bools, ints and floats and Python's texts become.
_PLAIN = (pa.types.is_boolean, pa.types.is_integer, pa.types.is_floating, pa.types.is_string, pa.types.is_large_string)
#: The most bytes a message's metadata may claim: fadejax's are a few hundred; a larger claim is damage.
_MAX_METADATA = 1 << 20
_CONTINUATION = b"\xff\xff\xff\xff"


def column_array(values: Any) -> pa.Array:
    """One field's ``(B,)`` values (a numpy array, or a list of texts or numbers) as an Arrow
    array; a list of nothing but ``None`` becomes texts (all missing), as a text field's would."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return pa.array(values)
    array = pa.array(list(values) if isinstance(values, (tuple, np.ndarray)) else values)
    return array.cast(pa.string()) if pa.types.is_null(array.type) else array


def new_schema(columns: Mapping[str, pa.Array], form: JsonlFormat) -> pa.Schema:
    """The schema of a run whose first write has ``columns``, with ``form`` in its metadata."""
    for name, array in columns.items():
        if not any(test(array.type) for test in _PLAIN):
            raise RecordsError(f"record field '{name}' holds {array.type} values; records hold numbers, flags and texts only")
    meta = json.dumps({"version": VERSION, **form.description()})
    return pa.schema([pa.field(name, array.type) for name, array in columns.items()], metadata={META_KEY: meta.encode()})


def batch_message(columns: Mapping[str, pa.Array], schema: pa.Schema) -> pa.Buffer:
    """``columns`` (in the schema's order; cast to its types where they differ) as one
    record-batch message."""
    if list(columns) != schema.names:
        raise RecordsError(f"this write's fields ({', '.join(columns)}) differ from the run's ({', '.join(schema.names)})")
    arrays = [a if a.type == f.type else a.cast(f.type) for a, f in zip(columns.values(), schema)]  # safe casts only
    return pa.RecordBatch.from_arrays(arrays, schema=schema).serialize()


@dataclass(frozen=True)
class ArrowRecords:
    """A columnar records file, read and validated.

    ``table``: every complete record; ``ends``: ``(Q,)`` int64, for each record the byte
    offset of the last byte of its batch (so, as with JSON lines' newline positions, a
    checkpoint of ``n`` bytes covers the records whose ``ends < n``); ``form``: the JSON-lines
    form the metadata describes; ``size``: the file's length in bytes.
    """

    path: Path
    table: pa.Table
    ends: np.ndarray
    form: JsonlFormat | None
    size: int

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def column(self, name: str) -> np.ndarray | list | None:
        """Field ``name`` as a ``(Q,)`` numpy array (texts: a list), or ``None`` if the run has no such field."""
        return _values(self.table.column(name)) if name in self.table.column_names else None

    def lines(self, rows: Sequence[int] | np.ndarray | None = None) -> list[bytes]:
        """The JSON lines (without their newline) of the records at the 0-based ``rows`` (all
        of them when ``None``): the bytes the JSON-lines writer writes for them."""
        data = self.jsonl(rows)
        return bytes(data).split(b"\n")[:-1] if len(data) else []

    def jsonl(self, rows: Sequence[int] | np.ndarray | None = None) -> memoryview:
        """The JSON-lines bytes of the records at ``rows`` (all when ``None``), newline-ended."""
        table = self.table if rows is None else self.table.take(pa.array(np.asarray(rows, np.int64)))
        if table.num_rows == 0 or self.form is None:
            return memoryview(b"")
        outcome = {name: _values(table.column(name)) for name in table.column_names}
        return self.form.lines(outcome, json_texts(outcome.pop("iteration")), json_texts(outcome.pop("env")))


def _values(column: pa.ChunkedArray) -> np.ndarray | list:
    """A column's values as the writers were given them: texts as a list, the rest as numpy."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.to_pylist()
    return column.to_numpy()


def read_arrow_records(path: Path) -> ArrowRecords:
    """The complete records of a ``records.arrow`` file (an empty file: none). A final
    message cut short by a kill is skipped, as JSON lines' final line without its newline;
    anything else that is not what fadejax writes raises :class:`RecordsError`. The last
    file read is kept while its size and modification time stay the same (a command reads
    several columns of one run)."""
    path = Path(path)
    stat = path.stat()
    return _read_cached(str(path.absolute()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _read_cached(name: str, size: int, mtime_ns: int) -> ArrowRecords:
    return _read(Path(name))


def _read(path: Path) -> ArrowRecords:
    try:
        return _read_checked(path)
    except RecordsError:
        raise
    except (pa.ArrowException, OSError, ValueError, KeyError, IndexError, TypeError) as error:
        # what the checks below do not name (e.g. a field name that is not UTF-8) is damage all the same
        raise RecordsError(f"'{path}' is damaged: {_first_line(error)}") from None


def _read_checked(path: Path) -> ArrowRecords:
    if path.suffix == ".parquet":
        return _read_parquet(path)
    # read into memory, not memory-mapped: a resume truncates the file, and a mapped page
    # past the new end would crash a reader still holding it
    with pa.BufferReader(pa.py_buffer(path.read_bytes())) as source:
        size = source.size()
        if size == 0:
            return ArrowRecords(path, pa.table({}), np.zeros(0, np.int64), None, 0)
        head = _next_message(source, path, size)
        if head is None:  # the schema itself was cut short: nothing was recorded
            return ArrowRecords(path, pa.table({}), np.zeros(0, np.int64), None, size)
        if head.type != "schema":
            raise RecordsError(f"'{path}' is not a fadejax records file: it starts with a {head.type} message, not a schema")
        try:
            schema = pa.ipc.read_schema(head)
        except (pa.ArrowException, ValueError, OSError) as error:
            raise RecordsError(f"'{path}' is not a fadejax records file: its schema does not read ({_first_line(error)})") from None
        form = _checked_schema(path, schema)
        batches, ends = [], []
        while source.tell() < size:
            start = source.tell()
            message = _next_message(source, path, size)
            if message is None:
                break
            if message.type != "record batch":
                raise RecordsError(f"'{path}' is damaged at byte {start}: a {message.type} message where records belong")
            try:
                batch = pa.ipc.read_record_batch(message, schema)
                batch.validate(full=True)
            except (pa.ArrowException, ValueError, OSError) as error:
                raise RecordsError(f"'{path}' is damaged at byte {start}: {_first_line(error)}") from None
            batches.append(batch)
            ends.append(np.full(batch.num_rows, source.tell() - 1, np.int64))
        table = pa.Table.from_batches(batches, schema=schema).combine_chunks()
    _check_values(path, table, form)
    return ArrowRecords(path, table, np.concatenate(ends) if ends else np.zeros(0, np.int64), form, size)


def _read_parquet(path: Path) -> ArrowRecords:
    """A complete run's compacted records (:func:`compact_to_parquet`), checked as a stream's are.
    Its records have no byte offsets of their own: ``ends`` holds the file's last byte for each."""
    data = path.read_bytes()
    try:
        table = pq.read_table(pa.BufferReader(pa.py_buffer(data)))
    except (pa.ArrowException, OSError, ValueError) as error:
        raise RecordsError(f"'{path}' is not a Parquet records file: {_first_line(error)}") from None
    form = _checked_schema(path, table.schema)
    table = table.combine_chunks()
    table.validate(full=True)
    _check_values(path, table, form)
    return ArrowRecords(path, table, np.full(table.num_rows, len(data) - 1, np.int64), form, len(data))


def compact_to_parquet(stream: Path) -> Path:
    """Write a complete run's ``records.arrow`` as ``records.parquet`` beside it (the same
    columns, schema and metadata; about 3x smaller and faster to read) and return its path.
    The Parquet file appears whole or not at all; the stream is left for the caller to
    remove once the run's status names the new file."""
    records = read_arrow_records(stream)
    target = Path(stream).with_suffix(".parquet")
    partial = target.with_name(target.name + ".partial")
    try:
        pq.write_table(records.table, partial)
        with open(partial, "rb") as file:
            os.fsync(file.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _next_message(source: pa.NativeFile, path: Path, size: int) -> pa.ipc.Message | None:
    """The next message, or ``None`` where the file ends inside it (a write cut short)."""
    start = source.tell()
    try:
        message = pa.ipc.read_message(source)
    except (OSError, pa.ArrowInvalid) as error:
        if _cut_short(source, start, size, error):
            return None
        raise RecordsError(f"'{path}' is damaged at byte {start}: {_first_line(error)}") from None
    return message


def _cut_short(source: pa.NativeFile, start: int, size: int, error: Exception) -> bool:
    """Whether the message at ``start`` is sound as far as the file goes and the file ends
    inside it: what a kill during its write leaves. Anything else is damage."""
    source.seek(start)
    header = source.read(min(8, size - start))
    if len(header) < 8:
        return _CONTINUATION.startswith(header[:4])
    length = int.from_bytes(header[4:], "little", signed=True)
    if header[:4] != _CONTINUATION or not 0 < length <= _MAX_METADATA:
        return False
    # the metadata is cut, or whole with the body cut (pyarrow says which)
    return start + 8 + length > size or "message body" in str(error)


def _checked_schema(path: Path, schema: pa.Schema) -> JsonlFormat:
    """The JSON-lines form in a records schema's metadata, once the schema is fadejax's."""
    for field in schema:
        if not any(test(field.type) for test in _PLAIN):
            raise RecordsError(f"'{path}' has a field '{field.name}' of type {field.type}; fadejax records hold numbers, flags and texts only")
    missing = [f for f in ("iteration", "env", "sample", *CORE_FIELDS) if f not in schema.names]
    if missing:
        raise RecordsError(f"'{path}' is not a fadejax records file: it has no {', '.join(missing)} field")
    if not all(safe_field_name(name) for name in schema.names):
        raise RecordsError(f"'{path}' is not a fadejax records file: a field name holds characters outside letters, digits, '_', '.' and '-'")
    if len(set(schema.names)) != len(schema.names):
        raise RecordsError(f"'{path}' is not a fadejax records file: a field name repeats")
    raw = (schema.metadata or {}).get(META_KEY)
    try:
        meta = json.loads(raw) if raw is not None else None
        if not isinstance(meta, dict) or meta.get("version") != VERSION:
            raise ValueError(f"its metadata is not fadejax records version {VERSION}")
        return JsonlFormat.from_description(meta)
    except ValueError as error:
        raise RecordsError(f"'{path}' is not a fadejax records file: {error}") from None


def _check_values(path: Path, table: pa.Table, form: JsonlFormat) -> None:
    """Cells and class-name indices in range: what the JSON-lines form looks up."""
    limits = {"cell": form.num_actions, **{field: len(names) for field, names in form.named.items()}}
    for field, limit in limits.items():
        if field not in table.column_names:
            continue
        values = table.column(field).to_numpy(zero_copy_only=False)
        if not np.issubdtype(values.dtype, np.integer):
            raise RecordsError(f"'{path}' has a '{field}' field of type {table.column(field).type}; it must be integers")
        bad = np.flatnonzero((values < 0) | (values >= limit))
        if bad.size:
            raise RecordsError(f"'{path}' record {int(bad[0]) + 1} has {field} {int(values[bad[0]])}; the run's lie in 0..{limit - 1}")


def _first_line(error: Exception) -> str:
    """The error's first line, control characters (from a hostile file's bytes) shown as ``?``."""
    text = str(error).strip().splitlines()
    return "".join(c if c.isprintable() else "?" for c in text[0][:200]) if text else type(error).__name__
