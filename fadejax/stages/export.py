"""``fadejax export RUN_DIR --format jsonl|csv|parquet``: a run's records in another form.

* ``jsonl``: one JSON object a line, the bytes the JSON-lines writer writes for the same
  queries (``run.records: jsonl``), whichever format the run keeps.
* ``csv`` and ``parquet``: one row per query, one column per field, the ``concepts`` object
  spread into a column per axis (``concepts.rotation``, ...) and class names beside their
  numbers (``label_name``), for pandas, polars, DuckDB or a spreadsheet.

Only complete records are exported (a final record cut short by a kill is not one), so a
running or interrupted run exports what it holds so far. The run directory is read, never
written, unless the output is placed inside it (the default, ``RUN_DIR/export/``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from tqdm import tqdm

from fadejax.engine.store.arrow_records import read_arrow_records
from fadejax.engine.store.record_columns import CompleteLines, is_columnar
from fadejax.engine.store.record_fields import RecordsError, has_records, records_path
from fadejax.engine.store.rundir import RunDirError
from fadejax.engine.store.trust import refuse_links

FORMATS = ("jsonl", "csv", "parquet")
#: Records formatted and parsed at a time (bounds memory on million-query runs).
_CHUNK_ROWS = 1 << 18


def export_records(run_dir: str | Path, format: str, out: str | Path | None = None, *, progress: bool = False) -> tuple[Path, int]:
    """Write the records of ``run_dir`` as ``format`` to ``out`` (default
    ``RUN_DIR/export/records.FORMAT``); returns ``(the file written, records written)``.
    The file appears whole or not at all (written beside it, then renamed). ``progress``:
    a progress bar over the records."""
    run_dir = Path(run_dir)
    if format not in FORMATS:
        raise RunDirError(f"--format '{format}' is not one of {', '.join(FORMATS)}")
    if not run_dir.is_dir():
        raise RunDirError(f"run directory '{run_dir}' does not exist")
    if not has_records(run_dir):
        raise RunDirError(f"'{run_dir}' has no records (records.parquet, records.arrow or records.jsonl): nothing to export")
    target = Path(out) if out is not None else run_dir / "export" / f"records.{format}"
    source = records_path(run_dir)
    if target.is_dir():
        raise RunDirError(f"--out '{target}' is a directory; give the path of the file to write")
    if target.resolve() == source.resolve():
        raise RunDirError(f"--out '{target}' is the run's own records file; choose another path")
    refuse_links(target.parent)
    refuse_links(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")  # two exports to one file: each its own, the last renamed wins
    try:
        total, chunks = _jsonl_chunks(source)
        with tqdm(total=total, unit="records", disable=not progress, desc="export") as bar:
            rows = _write(source, chunks, format, partial, bar)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target, rows


def _jsonl_chunks(source: Path) -> tuple[int, Iterator[bytes]]:
    """How many complete records the file holds, and their JSON lines, a chunk of complete
    lines at a time (the file is read once)."""
    if is_columnar(source):
        records = read_arrow_records(source)
        starts = range(0, records.num_rows, _CHUNK_ROWS)
        return records.num_rows, (bytes(records.jsonl(np.arange(s, min(s + _CHUNK_ROWS, records.num_rows)))) for s in starts)
    lines = CompleteLines.of(source)
    ends = lines.ends

    def chunks() -> Iterator[bytes]:
        for start in range(0, ends.size, _CHUNK_ROWS):
            begin = 0 if start == 0 else int(ends[start - 1]) + 1
            yield lines.data[begin: int(ends[min(start + _CHUNK_ROWS, ends.size) - 1]) + 1]

    return int(ends.size), chunks()


def _write(source: Path, chunks: Iterator[bytes], format: str, path: Path, bar: tqdm) -> int:
    rows = 0
    if format == "jsonl":
        with open(path, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
                count = chunk.count(b"\n")
                rows += count
                bar.update(count)
        return rows
    writer, schema = None, None
    try:
        for chunk in chunks:
            table = _flat_table(source, chunk, schema)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(path, schema) if format == "parquet" else pa_csv.CSVWriter(path, schema)
            writer.write_table(table)
            rows += table.num_rows
            bar.update(table.num_rows)
        if writer is None:  # no complete record yet: an empty file with no columns
            path.write_bytes(b"")
    finally:
        if writer is not None:
            writer.close()
    return rows


def _flat_table(source: Path, chunk: bytes, schema: pa.Schema | None) -> pa.Table:
    """One chunk of JSON lines as a flat table (``concepts`` spread into a column per axis);
    later chunks take the first chunk's column types."""
    options = pa_json.ParseOptions(explicit_schema=_nested(schema)) if schema is not None else pa_json.ParseOptions()
    try:
        table = pa_json.read_json(pa.BufferReader(chunk), parse_options=options)
    except pa.ArrowInvalid as error:
        raise RecordsError(f"'{source}' cannot be exported: {str(error).splitlines()[0][:200]}") from None
    return table.flatten()


def _nested(flat: pa.Schema) -> pa.Schema:
    """The nested schema (``concepts`` a struct) a flattened one came from."""
    fields, concepts = [], []
    for field in flat:
        if field.name.startswith("concepts."):
            if not concepts:
                fields.append(None)  # where the struct goes
            concepts.append(pa.field(field.name[len("concepts."):], field.type))
        else:
            fields.append(field)
    return pa.schema([f if f is not None else pa.field("concepts", pa.struct(concepts)) for f in fields])
