"""The record writer's background thread: the same bytes as writing in the loop, exact
offsets at checkpoints, and errors that reach the loop."""

import json
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fadejax.engine.store.records import BackgroundRecordWriter, RecordWriter, read_records
from fadejax.core.spaces import Axis, ConceptSpace
from fadejax.engine.store.record_fields import records_path

SPACE = ConceptSpace([Axis("rotation", (-10.0, 0.0, 10.0)), Axis("edit", ("none", "typo"))])


def _outcome(iteration: int, batch: int = 8, on_device: bool = False) -> dict:
    rng = np.random.default_rng(iteration)
    outcome = {
        "action": rng.integers(0, SPACE.num_actions, batch).astype(np.int32),
        "sample": rng.integers(0, 100, batch).astype(np.int32),
        "reward": rng.normal(size=batch).astype(np.float32),
        "failed": rng.random(batch) < 0.3,
        "score": rng.random(batch).astype(np.float32),
        "summary": [f"text {iteration}-{i} \u00e9" for i in range(batch)],
    }
    outcome["cell"] = outcome["action"]
    if on_device:
        outcome = {k: v if isinstance(v, list) else jnp.asarray(v) for k, v in outcome.items()}
    return outcome


def test_background_writing_gives_the_same_bytes_as_writing_in_the_loop(tmp_path: Path):
    direct = RecordWriter(tmp_path / "direct.jsonl", SPACE, "macro")
    background = BackgroundRecordWriter(RecordWriter(tmp_path / "background.jsonl", SPACE, "macro"), depth=2)
    for iteration in range(12):
        direct.write(iteration, _outcome(iteration))
        background.write(iteration, _outcome(iteration, on_device=True))  # device arrays are fetched on the thread
    direct.close()
    background.close()
    assert (tmp_path / "background.jsonl").read_bytes() == (tmp_path / "direct.jsonl").read_bytes()
    assert background.failures == sum(int(np.sum(_outcome(i)["failed"])) for i in range(12))
    assert [r["iteration"] for r in read_records(tmp_path / "background.jsonl")] == sorted(list(range(12)) * 8)


def test_offset_and_sync_cover_everything_submitted(tmp_path: Path):
    path = tmp_path / "records.jsonl"
    writer = BackgroundRecordWriter(RecordWriter(path, SPACE, "macro"))
    for iteration in range(5):
        writer.write(iteration, _outcome(iteration))
    offset = writer.offset  # what a checkpoint would store
    assert offset == path.stat().st_size and sum(1 for _ in open(path)) == 5 * 8
    writer.write(5, _outcome(5))
    writer.sync()
    assert sum(1 for _ in open(path)) == 6 * 8
    writer.close()
    # resuming from the first offset drops iteration 5 exactly, and writes it again once
    again = BackgroundRecordWriter(RecordWriter(path, SPACE, "macro", truncate_to=offset))
    again.write(5, _outcome(5))
    again.close()
    assert [r["iteration"] for r in read_records(path)].count(5) == 8


def test_an_error_on_the_writer_thread_is_raised_in_the_loop(tmp_path: Path):
    writer = BackgroundRecordWriter(RecordWriter(tmp_path / "records.jsonl", SPACE, "macro"))
    broken = _outcome(0)
    del broken["reward"]
    writer.write(0, broken)
    with pytest.raises(KeyError, match="reward"):
        writer.drain()
    writer.write(1, _outcome(1))  # the error was reported once; the writer goes on
    writer.close()
    assert [r["iteration"] for r in read_records(records_path(tmp_path))] == [1] * 8


@pytest.mark.parametrize(
    "column",
    [
        np.array([0.0, -0.0, 1e-5, 1.0 / 3.0, 3e38, np.nan, np.inf, -np.inf], np.float32),
        np.array([0.1, 2.5e-300, np.nan, 123456789.125], np.float64),
        np.array([0, -1, 2**31 - 1, -(2**31)], np.int32),
        np.array([2**62, 7], np.int64),
        np.array([200, 3], np.uint8),
        np.array([True, False]),
        np.array([], np.float32),
        np.array([-1.0, -1.0, 0.0, -0.0, -1.0, np.nan, 2.5, -1.0, -1.0, -0.0, -1.0, np.nan, -1.0], np.float32),  # repeated values, -0.0 beside 0.0
        ["plain", 'with "quotes" and \\ backslash', "caf\u00e9 \u2603", "line\nbreak"],
        [3, 1.5, True, None, "mixed"],
    ],
)
def test_column_formatting_writes_what_value_by_value_formatting_writes(column):
    from fadejax.engine.store.json_columns import json_scalar, json_texts

    values = column.tolist() if isinstance(column, np.ndarray) else column
    expected = [json_scalar(v) for v in (column if isinstance(column, np.ndarray) else values)]
    assert json_texts(column).to_pylist() == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=64),
       st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=64))
def test_arrow_formats_every_float_as_python_does(singles, doubles):
    """Arrow's digits where they equal repr's, Python's elsewhere (tiny, huge, whole, -0.0, NaN)."""
    from fadejax.engine.store.json_columns import json_scalar, json_texts

    for column in (np.asarray(singles, np.float32), np.asarray(doubles, np.float64)):
        assert json_texts(column).to_pylist() == [json_scalar(v) for v in column]


def test_floats_of_every_magnitude_format_as_python_does():
    """Values over the whole float range (float32's overflows to infinity included) and the
    decades either side of the bounds where Arrow and repr part ways (1e-4, 1e10), plus
    whole numbers near them."""
    from fadejax.engine.store.json_columns import json_scalar, json_texts

    rng = np.random.default_rng(0)
    spread = rng.standard_normal(60_000) * 10.0 ** rng.uniform(-45, 39, 60_000)
    near = np.concatenate([rng.uniform(0.5, 2.0, 20_000) * b for b in (1e-5, 1e-4, 1e-3, 1e9, 1e10, 1e11)])
    whole = np.concatenate([np.arange(-1000, 1000), np.arange(10**10 - 1000, 10**10 + 1000), 2.0 ** np.arange(-30, 40)])
    with np.errstate(over="ignore"):
        singles = spread.astype(np.float32)
    for column in (singles, spread, near, whole.astype(np.float64), near.astype(np.float32)):
        assert json_texts(column).to_pylist() == [json_scalar(v) for v in column.tolist()]


def test_this_pyarrow_formats_floats_on_the_fast_path_and_another_would_fall_back(monkeypatch):
    """The pinned pyarrow passes the writer's check (so records are formatted by Arrow); a
    pyarrow that failed it would get Python's texts, the same bytes."""
    from fadejax.engine.store import json_columns

    assert json_columns._arrow_writes_repr_digits()
    column = np.array([0.5, -1.0, 1e-7, 3.25e12, np.nan, 0.1], np.float64)
    expected = [json_columns.json_scalar(v) for v in column]
    monkeypatch.setattr(json_columns, "_arrow_writes_repr_digits", lambda: False)
    assert json_columns.json_texts(column).to_pylist() == expected


def test_joined_lines_refuse_a_missing_value():
    import pyarrow as pa

    from fadejax.engine.store.json_columns import joined_lines

    assert bytes(joined_lines(["{", pa.array(["1", "2"]), "}\n"])) == b"{1}\n{2}\n"
    with pytest.raises(ValueError, match="1 of 2 rows have a missing value"):
        joined_lines(["{", pa.array(["1", None]), "}\n"])


def test_iterations_written_together_give_the_bytes_of_writing_them_one_by_one(tmp_path: Path):
    """Coalesced writes (the background writer's several iterations in one pass), with batch
    sizes that change, texts, named classes and microscopic fields; an iteration whose fields
    differ from its neighbours' is written in a pass of its own."""
    names = {"label": ["zero", "one", "two"]}
    for mode in ("macro", "micro"):
        outcomes = []
        for iteration, batch in enumerate([8, 8, 3, 1, 8, 5]):
            outcome = _outcome(iteration, batch)
            outcome["label"] = np.arange(batch) % 3
            if mode == "micro":
                outcome["step"], outcome["done"] = np.arange(batch) + 1, np.arange(batch) % 2 == 0
            outcomes.append((iteration, outcome))
        outcomes[3][1]["extra"] = np.ones(1, np.float32)  # another field set: its own pass
        one_by_one = RecordWriter(tmp_path / f"one_{mode}.jsonl", SPACE, mode, names=names)
        together = RecordWriter(tmp_path / f"together_{mode}.jsonl", SPACE, mode, names=names)
        for iteration, outcome in outcomes:
            one_by_one.write(iteration, outcome)
        together.write_many(outcomes)
        assert together.offset == one_by_one.offset
        one_by_one.close()
        together.close()
        assert (tmp_path / f"together_{mode}.jsonl").read_bytes() == (tmp_path / f"one_{mode}.jsonl").read_bytes()


def test_held_iterations_reach_the_file_within_the_delay_bound_and_at_every_drain(tmp_path: Path):
    """The writer holds fetched iterations to write them together, but no longer than its
    delay bound, and never past a drain: records and learning-curve rows, in order."""
    from fadejax.engine.store.learning_log import LearningLog

    path = tmp_path / "records.jsonl"
    log = LearningLog(tmp_path / "metrics.jsonl", num_envs=8)
    holding = BackgroundRecordWriter(RecordWriter(path, SPACE, "macro"), log=log, coalesce_rows=10_000, max_delay=3600.0)
    for iteration in range(3):
        holding.write(iteration, _outcome(iteration))
    assert holding.offset == path.stat().st_size and sum(1 for _ in open(path)) == 3 * 8  # offset drains
    assert holding.failures == sum(int(np.sum(_outcome(i)["failed"])) for i in range(3))
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["iteration"] for r in rows] == [0, 1, 2] and all(r["time.records"] > 0 for r in rows)
    holding.close()

    prompt = BackgroundRecordWriter(RecordWriter(tmp_path / "prompt.jsonl", SPACE, "macro"), coalesce_rows=10_000, max_delay=0.2)
    prompt.write(0, _outcome(0))  # and nothing after it
    deadline = time.monotonic() + 30
    while (tmp_path / "prompt.jsonl").stat().st_size == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # no drain and no later iteration: the delay bound alone writes it
    assert sum(1 for _ in open(tmp_path / "prompt.jsonl")) == 8
    prompt.close()
