"""Whole columns as JSON texts, and rows of them joined into JSON lines, by Arrow's kernels.

The record writer formats an iteration's ``B`` queries column by column. Python's float
``repr`` costs about 0.8 µs a value on a CPU like this one's, so two float columns of 2,048
queries took 3 ms an iteration; Arrow's cast to string writes the same shortest
round-trip digits for most values in a fraction of that, and joins the columns into lines
without a Python string per piece. The bytes are exactly what :func:`json_scalar` writes
value by value (tests/test_background_records.py checks both on many values).
"""

from __future__ import annotations

import functools
import json
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Arrow's float-to-string cast writes Python ``repr``'s digits for ``0`` and for
#: ``1e-4 <= |x| < 1e10`` (whole numbers without ``repr``'s ``.0``, added here); outside
#: that range it writes exponents differently (``1e-5`` where ``repr`` writes ``1e-05``),
#: so those few values are formatted by Python.
_ARROW_LOW, _ARROW_HIGH = 1e-4, 1e10


def json_scalar(value: Any) -> str:
    """One value as JSON text: bools, ints, floats (round-trip exact; NaN and infinities
    as ``null``) and strings."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value)) if np.isfinite(value) else "null"
    return json.dumps(str(value))


@functools.cache
def _arrow_writes_repr_digits() -> bool:
    """Whether this pyarrow's cast writes ``repr``'s digits inside the range used: checked
    once on values of every decade of it, so that another pyarrow version that formats
    differently makes the writer slower, never its records different."""
    rng = np.random.default_rng(0)
    decades = np.repeat(np.arange(-4, 10), 12)  # 1e-4 .. 1e10, twelve values in each decade
    probes = np.concatenate([
        rng.uniform(1.0, 10.0, decades.size) * 10.0**decades * rng.choice([-1.0, 1.0], decades.size),
        rng.random(64).astype(np.float32), [0.0, -0.0, 1.0, -2.0, 1e-4, 9999999999.5, 1234567.0, 0.1, 1.0 / 3.0],
    ])
    return _arrow_float_texts(probes).to_pylist() == [json_scalar(v) for v in probes.tolist()]


def _arrow_float_texts(x: np.ndarray) -> pa.Array:
    """Arrow's texts of ``x`` (float64, all in Arrow's range), ``.0`` added to whole numbers."""
    texts = pc.cast(pa.array(x), pa.string())
    whole = x == np.trunc(x)
    if whole.any():
        texts = pc.if_else(pa.array(whole), pc.binary_join_element_wise(texts, ".0", ""), texts)
    return texts


def _float_texts(values: np.ndarray) -> pa.Array:
    x = values.astype(np.float64)
    if not _arrow_writes_repr_digits():
        return pa.array([json_scalar(v) for v in x.tolist()], pa.string())
    magnitude = np.abs(x)
    by_arrow = ((magnitude >= _ARROW_LOW) & (magnitude < _ARROW_HIGH)) | (x == 0)
    texts = _arrow_float_texts(np.where(by_arrow, x, 0.0))
    if not by_arrow.all():
        by_python = np.flatnonzero(~by_arrow)
        fill = np.full(x.shape[0], None, dtype=object)
        fill[by_python] = [json_scalar(v) for v in x[by_python].tolist()]
        texts = pc.if_else(pa.array(~by_arrow), pa.array(fill, pa.string()), texts)
    return texts


def json_texts(values: np.ndarray | Sequence[Any]) -> pa.Array:
    """A ``(B,)`` column as a length-``B`` Arrow string array of JSON texts, each exactly
    what :func:`json_scalar` writes for its value. Numeric and bool arrays are formatted by
    Arrow; lists (e.g. a summarizer's texts) value by value."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        if values.dtype == np.bool_:
            return pc.if_else(pa.array(values), "true", "false")
        if np.issubdtype(values.dtype, np.integer):
            return pc.cast(pa.array(values), pa.string())
        if np.issubdtype(values.dtype, np.floating):
            return _float_texts(values)
    return pa.array([json_scalar(v) for v in values], pa.string())


def joined_lines(parts: Sequence[str | pa.Array]) -> memoryview:
    """The rows of ``parts`` (literal texts, the same in every row, and length-``B`` string
    arrays) concatenated, row after row: each row is its parts joined in order. Put the
    line end in the last part."""
    rows = pc.binary_join_element_wise(*parts, "")
    if rows.null_count:  # a null part nulls its row; it would vanish from the file silently
        raise ValueError(f"{rows.null_count} of {len(rows)} rows have a missing value")
    if len(rows) == 0:
        return memoryview(b"")
    width = np.int64 if pa.types.is_large_string(rows.type) else np.int32
    offsets = np.frombuffer(rows.buffers()[1], width, len(rows) + 1, offset=np.dtype(width).itemsize * rows.offset)
    return memoryview(rows.buffers()[2])[offsets[0] : offsets[-1]]
