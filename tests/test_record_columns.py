"""Reading a run's records through Arrow's JSON parser (fadejax.engine.store.record_columns) gives what
the line-by-line readers give, and defers to them wherever a file is not plainly sound, so
a bad line is still named in the error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fadejax.stages import compare, summarize
from fadejax.engine.config import parse_config
from fadejax.engine.store.record_columns import CompleteLines, read_columns
from fadejax.engine.store.records import RecordsError, RecordWriter, cell_statistics
from fadejax.stages.summarize import SummarizeError

NAMES = {"label": [str(d) for d in range(10)], "predicted": [str(d) for d in range(10)]}


def _outcome(batch: int, rng: np.random.Generator, cells: int) -> dict:
    failed = rng.random(batch) < 0.3
    action = rng.integers(0, cells, batch).astype(np.int32)
    return {
        "action": action, "cell": action, "sample": rng.integers(0, 540, batch).astype(np.int32),
        "reward": np.where(failed, 3.0 * rng.random(batch), -1.0).astype(np.float32), "failed": failed,
        "label": rng.integers(0, 10, batch).astype(np.int32), "predicted": rng.integers(0, 10, batch).astype(np.int32),
        "a.failed": rng.random(batch) < 0.5, "b.failed": rng.random(batch) < 0.2,
    }


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    """A records file as discovery writes it: 12 iterations of 64 queries, two family members' answers."""
    space = parse_config({}).concept_space()
    writer = RecordWriter(tmp_path / "records.jsonl", space, "macro", names=NAMES)
    rng = np.random.default_rng(3)
    for iteration in range(12):
        writer.write(iteration, _outcome(64, rng, space.num_actions))
    writer.close()
    return tmp_path


def _line_by_line(monkeypatch, module, function, *args):
    """``module.function(*args)`` with the Arrow path switched off."""
    with monkeypatch.context() as patched:
        patched.setattr(module, "read_columns", lambda *_: None)
        return getattr(module, function)(*args)


def _assert_same(a, b) -> None:
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)  # the same keys in the same order (examples by first failure)
        for key in a:
            _assert_same(a[key], b[key])
    else:
        assert a == b


@pytest.mark.parametrize("per_cell", [0, 1, 3])
def test_summarize_reads_the_same_statistics_and_examples_either_way(run_dir, monkeypatch, per_cell):
    members = ["a", "b"]
    fast = summarize._read_records(run_dir, 125, per_cell, members)
    slow = _line_by_line(monkeypatch, summarize, "_read_records", run_dir, 125, per_cell, members)
    _assert_same(fast, slow)
    examples = fast[3]
    assert sum(len(v) for v in examples.values()) > 0 or per_cell == 0
    assert all(len(v) <= per_cell for v in examples.values())


def test_compare_and_cell_statistics_read_the_same_queries_either_way(run_dir, monkeypatch):
    _assert_same(compare._queries_of(run_dir), _line_by_line(monkeypatch, compare, "_queries_of", run_dir))
    import fadejax.engine.store.records as records

    _assert_same(cell_statistics(run_dir / "records.jsonl"), _line_by_line(monkeypatch, records, "cell_statistics", run_dir / "records.jsonl"))


def test_a_final_line_cut_off_by_a_kill_is_not_read(run_dir):
    path = run_dir / "records.jsonl"
    whole = read_columns(path, {"cell": "int64"})[0]["cell"]
    with open(path, "ab") as f:
        f.write(b'{"iteration": 12, "env": 0, "sample": 1, "cell": 3, "fai')
    columns, lines = read_columns(path, {"cell": "int64"})
    assert np.array_equal(columns["cell"], whole)
    assert lines.data.endswith(b"\n") and lines.ends.size == whole.size
    assert json.loads(lines.lines([whole.size - 1])[0])["cell"] == whole[-1]


GOOD = b'{"iteration": 0, "env": 0, "sample": 1, "cell": 2, "failed": true}\n'

# corruption -> the line it sits on (1-based) in a file of GOOD, BAD, GOOD
CORRUPTIONS = {
    "not JSON": b'{"iteration": 0, "sample": 1, "cell": 2, "failed": tr\n',
    "not an object": b"[1, 2, 3]\n",
    "a field missing": b'{"iteration": 0, "sample": 1, "failed": true}\n',
    "a null field": b'{"iteration": 0, "sample": 1, "cell": null, "failed": true}\n',
    "a float cell": b'{"iteration": 0, "sample": 1, "cell": 2.0, "failed": true}\n',
    "a text cell": b'{"iteration": 0, "sample": 1, "cell": "2", "failed": true}\n',
    "a number for failed": b'{"iteration": 0, "sample": 1, "cell": 2, "failed": 1}\n',
    "a blank line": b"\n",
    "two objects on a line": b'{"iteration": 0, "sample": 1, "cell": 2, "failed": true}{"cell": 1}\n',
    "bytes that are not UTF-8": b'{"iteration": 0, "sample": 1, "cell": 2, "failed": true, "summary": "\xff\xfe"}\n',
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_a_corrupt_line_is_left_to_the_line_by_line_reader_which_names_it(tmp_path, kind):
    path = tmp_path / "records.jsonl"
    path.write_bytes(GOOD + CORRUPTIONS[kind] + GOOD)
    assert read_columns(path, {"iteration": "int64", "sample": "int64", "cell": "int64", "failed": "bool"}) is None
    with pytest.raises(SummarizeError, match="line 2 is corrupt"):
        summarize._read_records(tmp_path, 125, 5)
    with pytest.raises((compare.CompareError, RecordsError), match="(line|record) 2 (is not a record|lacks a valid)"):
        compare._queries_of(tmp_path)
    with pytest.raises(RecordsError, match="(line|record) 2 (is not a record|has no valid)"):
        cell_statistics(path)


def test_values_out_of_range_are_refused_as_before(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_bytes(GOOD + GOOD.replace(b'"cell": 2', b'"cell": 125'))
    with pytest.raises(SummarizeError, match="line 2 names cell 125, outside this run's 125 cells"):
        summarize._read_records(tmp_path, 125, 5)
    path.write_bytes(GOOD + GOOD.replace(b'"cell": 2', b'"cell": -1'))
    with pytest.raises(compare.CompareError, match="record 2 lacks a valid"):
        compare._queries_of(tmp_path)
    with pytest.raises(RecordsError, match="record 2 has no valid cell"):
        cell_statistics(path)


def test_lines_json_reads_and_arrow_refuses_are_still_read(tmp_path, monkeypatch):
    """A key given twice (JSON keeps the last) and an integer beyond 64 bits in a field not
    used: Arrow refuses them, the line-by-line reader reads them."""
    path = tmp_path / "records.jsonl"
    twice = b'{"iteration": 0, "sample": 1, "cell": 4, "cell": 2, "failed": true}\n'
    huge = b'{"iteration": 0, "sample": 1, "cell": 2, "failed": false, "env": 99999999999999999999999}\n'
    path.write_bytes(GOOD + twice + huge)
    assert read_columns(path, {"cell": "int64", "failed": "bool"}) is None
    cells, visits, failures = cell_statistics(path)
    assert cells.tolist() == [2] and visits.tolist() == [3] and failures.tolist() == [2]
    assert summarize._read_records(tmp_path, 125, 5)[4] == 3


def test_an_empty_records_file_reads_as_before(tmp_path):
    (tmp_path / "records.jsonl").write_bytes(b"")
    assert read_columns(tmp_path / "records.jsonl", {"cell": "int64"}) is None
    assert [a.size for a in cell_statistics(tmp_path / "records.jsonl")] == [0, 0, 0]
    with pytest.raises(SummarizeError, match="holds no records yet"):
        summarize._read_records(tmp_path, 125, 5)


def test_complete_lines_finds_each_record(tmp_path):
    path = tmp_path / "records.jsonl"
    rows = [{"cell": c, "text": "é" * c} for c in range(5)]
    path.write_bytes(b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows))
    lines = CompleteLines.of(path)
    assert [json.loads(t) for t in lines.lines([4, 0, 2])] == [rows[4], rows[0], rows[2]]


def test_lines_are_found_across_the_scans_slices(run_dir, monkeypatch):
    import fadejax.engine.store.record_columns as record_columns

    whole = CompleteLines.of(run_dir / "records.jsonl")
    monkeypatch.setattr(record_columns, "_SCAN_BYTES", 7)  # lines of ~300 bytes: every line end in another slice
    sliced = CompleteLines.of(run_dir / "records.jsonl")
    assert np.array_equal(sliced.ends, whole.ends) and whole.ends.size == 12 * 64
    assert whole.ends[-1] == len(whole.data) - 1
