"""Columnar records (records.arrow): the same records as the JSON-lines writer's, exported
byte for byte; old JSON-lines runs still open and resume as JSON lines; a damaged or
hostile file is one clear error; CSV and Parquet exports hold every field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from records_tee import assert_columns_hold_the_lines, both_formats
from resume_check import drop_latest_checkpoint
from fadejax.cli import EXIT_BAD_INPUT, main
from fadejax.engine.config import parse_config
from fadejax.engine.store.arrow_records import META_KEY, compact_to_parquet, read_arrow_records
from fadejax.engine.store.record_fields import ARROW_RECORDS_FILE, RECORDS_FILE, RecordsError, records_path
from fadejax.engine.store.records import ArrowRecordWriter, cell_statistics, query_columns, read_records
from fadejax.engine.store.run_check import check_run
from fadejax.stages.discover import discover
from fadejax.stages.summarize import SummarizeError, _read_records

MAIN_JOB = {"run": {"iterations": 6, "num_envs": 64, "checkpoint_every": 2, "seed": 5, "tensorboard": False}}


def _config(records: str = "arrow", **sections):
    data = json.loads(json.dumps(MAIN_JOB))
    data["run"]["records"] = records
    data.update(sections)
    return parse_config(data)


@pytest.fixture(scope="module")
def main_job(tmp_path_factory, digits_task):
    """The embedded default (the main job's audit and searcher, a small budget), written
    once as columns and once as JSON lines."""
    root = tmp_path_factory.mktemp("main_job")
    discover(_config("arrow"), root / "arrow", oracle=digits_task.oracle, progress=False)
    discover(_config("jsonl"), root / "jsonl", oracle=digits_task.oracle, progress=False)
    return root


def test_the_main_job_s_jsonl_export_is_the_json_lines_writer_s_bytes(main_job, tmp_path):
    assert not (main_job / "arrow" / RECORDS_FILE).exists() and not (main_job / "jsonl" / ARROW_RECORDS_FILE).exists()
    assert main(["export", str(main_job / "arrow"), "--format", "jsonl", "--out", str(tmp_path / "r.jsonl"), "--quiet"]) == 0
    written = (main_job / "jsonl" / RECORDS_FILE).read_bytes()
    assert (tmp_path / "r.jsonl").read_bytes() == written and written.count(b"\n") == 6 * 64
    # every reader gives the same figures from either file
    for read in (query_columns, cell_statistics):
        for a, b in zip(read(records_path(main_job / "arrow")), read(records_path(main_job / "jsonl"))):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    assert check_run(main_job / "arrow") == [] and check_run(main_job / "jsonl") == []
    # and the columnar file is the smaller by far (benchmarks/records_speed.py measures how much)
    assert records_path(main_job / "arrow").name == "records.parquet"  # compacted when the run completed
    assert records_path(main_job / "arrow").stat().st_size * 4 < len(written)


def test_csv_and_parquet_exports_hold_every_field_and_a_column_per_axis(main_job, tmp_path):
    records = list(read_records(records_path(main_job / "arrow")))
    assert main(["export", str(main_job / "arrow"), "--format", "parquet", "--out", str(tmp_path / "r.parquet"), "--quiet"]) == 0
    table = pq.read_table(tmp_path / "r.parquet")
    axes = list(records[0]["concepts"])
    assert table.num_rows == len(records)
    assert {f"concepts.{a}" for a in axes} | {"iteration", "env", "sample", "cell", "failed", "label"} <= set(table.column_names)
    assert table.column("failed").to_pylist() == [r["failed"] for r in records]
    assert table.column(f"concepts.{axes[0]}").to_pylist() == [r["concepts"][axes[0]] for r in records]
    assert main(["export", str(main_job / "arrow"), "--format", "csv", "--quiet"]) == 0  # default: RUN_DIR/export/
    csv = (main_job / "arrow" / "export" / "records.csv").read_text().splitlines()
    assert len(csv) == len(records) + 1 and f'"concepts.{axes[0]}"' in csv[0]
    assert check_run(main_job / "arrow") == []  # the export beside it disturbs nothing


def test_a_micro_run_s_columns_hold_its_json_lines(tmp_path, digits_task):
    config = _config(mode="micro", micro={"start": [2, 0, 0], "max_steps": 3}, searcher={"kind": "posterior_walk"})
    with both_formats():
        discover(config, tmp_path / "micro", oracle=digits_task.oracle, progress=False)
    assert_columns_hold_the_lines(tmp_path / "micro", tmp_path)
    assert {"step", "done"} <= set(read_arrow_records(records_path(tmp_path / "micro")).table.column_names)


def test_a_json_lines_run_opens_and_resumes_as_json_lines(main_job, tmp_path, digits_task):
    """A run written before columnar records (JSON lines) resumes in its own format, exactly,
    under a config that would start a new run as columns."""
    import yaml

    config = _config("jsonl")
    discover(config, tmp_path / "old", oracle=digits_task.oracle, progress=False, stop_after=3)
    drop_latest_checkpoint(tmp_path / "old")
    stored = yaml.safe_load((tmp_path / "old" / "config.yaml").read_text())
    del stored["run"]["records"]  # as a version before columnar records wrote it
    (tmp_path / "old" / "config.yaml").write_text(yaml.safe_dump(stored))
    discover(_config("arrow"), tmp_path / "old", oracle=digits_task.oracle, resume=True, progress=False)
    assert not (tmp_path / "old" / ARROW_RECORDS_FILE).exists()
    assert (tmp_path / "old" / RECORDS_FILE).read_bytes() == (main_job / "jsonl" / RECORDS_FILE).read_bytes()
    assert check_run(tmp_path / "old") == []  # (summarize reads JSON-lines runs in tests/test_run_check.py)


def test_a_record_cut_short_by_a_kill_is_not_read_and_a_resume_cuts_it_off(main_job, tmp_path, digits_task):
    cut = tmp_path / "cut"
    discover(_config("arrow"), cut, oracle=digits_task.oracle, progress=False, stop_after=5)  # last checkpoint: 4
    stream = cut / ARROW_RECORDS_FILE
    ends = np.unique(read_arrow_records(stream).ends)
    assert ends.size == 5
    data = stream.read_bytes()
    stream.write_bytes(data + data[int(ends[3]) + 1: int(ends[3]) + 101])  # a batch's first 100 bytes: iteration 5 begun, cut short
    assert read_arrow_records(stream).num_rows == 5 * 64
    discover(_config("arrow"), cut, oracle=digits_task.oracle, resume=True, progress=False)
    # complete: the stream is compacted to Parquet, the same records as the uninterrupted run's
    assert not stream.exists() and records_path(cut).name == "records.parquet"
    assert records_path(cut).read_bytes() == records_path(main_job / "arrow").read_bytes()
    assert check_run(cut) == []


def _small_file(tmp_path: Path) -> Path:
    space = parse_config({}).concept_space()
    writer = ArrowRecordWriter(tmp_path / ARROW_RECORDS_FILE, space, "macro", names={"label": [str(d) for d in range(10)]})
    rng = np.random.default_rng(0)
    for iteration in range(3):
        cells = rng.integers(0, space.num_actions, 8).astype(np.int32)
        writer.write(iteration, {"sample": rng.integers(0, 50, 8).astype(np.int32), "action": cells, "cell": cells,
                                 "reward": rng.random(8).astype(np.float32), "failed": rng.random(8) < 0.4,
                                 "label": rng.integers(0, 10, 8).astype(np.int32)})
    writer.close()
    return tmp_path / ARROW_RECORDS_FILE


def _stream(schema: pa.Schema, batch: pa.RecordBatch) -> bytes:
    return schema.serialize().to_pybytes() + batch.serialize().to_pybytes()


def test_hostile_columnar_files_are_one_clear_error(tmp_path):
    good = read_arrow_records(_small_file(tmp_path))
    meta, n = good.table.schema.metadata, good.num_rows
    hostile = {
        "garbage": b"{not arrow at all}" * 10,
        "a file that is not records": _stream(pa.schema([("x", pa.int64())]), pa.record_batch([pa.array([1])], names=["x"])),
        "a nested column": _stream(pa.schema([*good.table.schema, ("extra", pa.list_(pa.int64()))], metadata=meta),
                                   pa.record_batch([*good.table.to_batches()[0].columns, pa.array([[1]] * n)],
                                                   schema=pa.schema([*good.table.schema, ("extra", pa.list_(pa.int64()))], metadata=meta))),
        "metadata of another kind": _stream(good.table.schema.with_metadata({META_KEY: b'{"version": 1, "mode": "macro", "axes": "x"}'}),
                                            good.table.to_batches()[0].replace_schema_metadata({META_KEY: b'{"version": 1, "mode": "macro", "axes": "x"}'})),
        "a cell outside the space": _stream(good.table.schema, good.table.to_batches()[0].set_column(
            good.table.schema.get_field_index("cell"), "cell", pa.array(np.full(n, 10**6, np.int32)))),
        "a class beyond the names": _stream(good.table.schema, good.table.to_batches()[0].set_column(
            good.table.schema.get_field_index("label"), "label", pa.array(np.full(n, 10, np.int32)))),
    }
    for what, data in hostile.items():
        path = tmp_path / what / ARROW_RECORDS_FILE
        path.parent.mkdir()
        path.write_bytes(data)
        with pytest.raises(RecordsError, match="records.arrow") as error:
            query_columns(path)
        assert "\n" not in str(error.value), what


def test_a_damaged_run_is_refused_by_the_commands_in_one_line(main_job, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(main_job / "arrow", broken)
    data = bytearray(records_path(broken).read_bytes())
    data[len(data) // 2: len(data) // 2 + 8] = b"\x00\xff" * 4
    records_path(broken).write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in broken.iterdir() if p.is_file()}
    assert main(["summarize", str(broken), "--out", str(tmp_path / "report")]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "records.parquet' is not a Parquet records file" in error[0]
    assert main(["check", str(broken)]) == 1
    assert "records:" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in broken.iterdir() if p.is_file()} == before


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(min_value=0, max_value=10**6), st.binary(min_size=1, max_size=8)), min_size=1, max_size=4),
       cut=st.integers(min_value=0, max_value=10**6), compacted=st.booleans())
def test_fuzzed_columnar_files_read_or_are_one_records_error(tmp_path_factory, edits, cut, compacted):
    directory = tmp_path_factory.mktemp("fuzz")
    path = _small_file(directory)
    if compacted:  # a complete run's Parquet file
        path = compact_to_parquet(path)
        (directory / ARROW_RECORDS_FILE).unlink()
    data = bytearray(path.read_bytes())
    for position, replacement in edits:
        at = position % len(data)
        data[at: at + len(replacement)] = replacement
    path.write_bytes(bytes(data[: len(data) - cut % 64]))
    for read in (lambda: _read_records(directory, 125, 3), lambda: cell_statistics(path), lambda: list(read_records(path))):
        try:
            read()
        except (RecordsError, SummarizeError) as error:
            assert path.name in str(error) and "\n" not in str(error)


def test_the_readme_s_python_reads_a_run_s_records(main_job):
    import re

    from readme import ROOT

    block = next(b for b in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S) if "records.parquet" in b)
    scope: dict = {}
    exec(block.replace("runs/digits", str(main_job / "arrow")).replace("records.groupby", "top = records.groupby"), scope)
    records, top = scope["records"], scope["top"]
    assert len(records) == 6 * 64 and len(top) == 5 and top.iloc[0] == records.groupby("cell").failed.mean().max()


def test_export_refuses_bad_input_in_one_line_and_writes_nothing(main_job, tmp_path, capsys):
    before = sorted(p.name for p in (main_job / "arrow").iterdir())
    (tmp_path / "empty").mkdir()
    for argv, words in [
        ([str(tmp_path / "nope"), "--format", "csv"], "does not exist"),
        ([str(tmp_path / "empty"), "--format", "csv"], "has no records"),
        ([str(main_job / "arrow"), "--format", "parquet", "--out", str(records_path(main_job / "arrow"))], "the run's own records file"),
        ([str(main_job / "arrow"), "--format", "csv", "--out", str(tmp_path)], "is a directory"),
    ]:
        assert main(["export", *argv, "--quiet"]) == EXIT_BAD_INPUT
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and words in error[0], error
    assert sorted(p.name for p in (main_job / "arrow").iterdir()) == before
