"""A records file's columns parsed by Arrow's JSON reader: the fast way to read a run.

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

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json


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


def read_columns(path: Path, fields: Mapping[str, str]) -> tuple[dict[str, np.ndarray], CompleteLines] | None:
    """Every complete record's ``fields`` (name -> Arrow type name: ``"int64"``, ``"bool"``)
    as ``(Q,)`` NumPy arrays, and the file's complete lines (to read some records whole);
    ``None`` where the line-by-line reading must decide (see the module docstring),
    including an empty file."""
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
