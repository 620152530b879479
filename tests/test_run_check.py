"""`fadejax check` and the checks readers run first: damaged records are named, never counted."""

import shutil
from pathlib import Path

import pytest

from fadejax.cli import EXIT_BAD_INPUT, EXIT_FAILED, main
from fadejax.engine.config import load_config
from fadejax.engine.store.rundir import RunDirError
from fadejax.stages.discover import discover
from fadejax.engine.store.run_check import check_run
from readme import ROOT
from fadejax.engine.store.record_fields import records_path

ENVS = 16


def _config(seed: int = 0, records: str = "jsonl"):
    """JSON lines by default: most edits below are of lines (the columnar file's own are at the end)."""
    return load_config(ROOT / "configs/digits.yaml", ["recording=recordings/digits.npz", "run.iterations=6", f"run.num_envs={ENVS}",
                                                      "run.checkpoint_every=2", "run.tensorboard=false", f"run.seed={seed}",
                                                      f"run.records={records}"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    discover(_config(0), base / "run", progress=False)
    discover(_config(1), base / "other", progress=False)
    discover(_config(0, "arrow"), base / "columns", progress=False, stop_after=4)  # not complete: still a stream
    return base


def _copy(runs: Path, tmp_path: Path, edit=None) -> Path:
    run = tmp_path / "run"
    shutil.copytree(runs / "run", run)
    if edit is not None:
        lines = records_path(run).read_bytes().splitlines(keepends=True)
        (run / "records.jsonl").write_bytes(b"".join(edit(lines)))
    return run


def test_a_sound_run_checks_clean(runs, tmp_path, capsys):
    run = _copy(runs, tmp_path)
    assert check_run(run) == []
    assert main(["check", str(run)]) == 0 and "sound" in capsys.readouterr().out


@pytest.mark.parametrize("name, edit, words", [
    ("duplicated", lambda lines: lines[:10] + [lines[9]] + lines[10:], "line 11 holds (iteration 0, env 9) where (iteration 0, env 10) belongs: it repeats"),
    ("dropped", lambda lines: lines[:10] + lines[11:], "line 11 holds (iteration 0, env 11) where (iteration 0, env 10) belongs: a row before it is missing"),
    ("interleaved", lambda lines: lines[:40] + lines[:8] + lines[40:], "line 41 holds (iteration 0, env 0)"),
])
def test_rows_out_of_place_are_named_by_check_and_refused_by_summarize(runs, tmp_path, capsys, name, edit, words):
    run = _copy(runs, tmp_path, edit)
    problems = check_run(run)
    assert any(words in p for p in problems), problems
    assert main(["check", str(run)]) == EXIT_FAILED
    capsys.readouterr()
    assert main(["summarize", str(run), "--out", str(tmp_path / "report")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # (a note names the shared recording)
    assert len(errors) == 1 and words in errors[0], err
    assert not (tmp_path / "report").exists()


def test_a_row_from_another_run_is_named(runs, tmp_path):
    other = records_path(runs / "other").read_bytes().splitlines(keepends=True)
    run = _copy(runs, tmp_path, lambda lines: lines[:20] + [other[20]] + lines[21:])
    assert other[20] != records_path(runs / "run").read_bytes().splitlines(keepends=True)[20]  # the edit changes a row
    problems = check_run(run)
    assert any("differ from those the complete run wrote" in p for p in problems), problems


def test_resume_refuses_rows_out_of_place_before_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    discover(_config(0), run, progress=False, stop_after=4)
    lines = records_path(run).read_bytes().splitlines(keepends=True)
    (run / "records.jsonl").write_bytes(b"".join(lines[:5] + [lines[4]] + lines[5:]))
    with pytest.raises(RunDirError, match=r"line 6 holds \(iteration 0, env 4\)"):
        discover(_config(0), run, resume=True, progress=False)


def test_curves_and_status_that_disagree_with_the_records_are_named(runs, tmp_path):
    run = _copy(runs, tmp_path, lambda lines: lines[:-ENVS])  # the last iteration's rows cut off
    metrics = (run / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    (run / "metrics.jsonl").write_bytes(b"".join(metrics[:2] + metrics[3:]))
    problems = check_run(run)
    assert any(p.startswith("records:") and f"{5 * ENVS} rows, but run.json says the complete run made {6 * ENVS}" in p for p in problems), problems
    assert any(p.startswith("curves:") and "iteration 3 where iteration 2 belongs" in p for p in problems), problems


def test_a_columnar_batch_written_twice_is_named_and_refused(runs, tmp_path, capsys):
    from fadejax.engine.store.arrow_records import read_arrow_records

    run = tmp_path / "columns"
    shutil.copytree(runs / "columns", run)
    data = records_path(run).read_bytes()
    ends = sorted(set(read_arrow_records(records_path(run)).ends.tolist()))
    batch = data[ends[0] + 1: ends[1] + 1]  # iteration 1's message
    records_path(run).write_bytes(data[: ends[1] + 1] + batch + data[ends[1] + 1:])
    words = f"record {2 * ENVS + 1} holds (iteration 1, env 0) where (iteration 2, env 0) belongs: it repeats"
    assert any(words in p for p in check_run(run)), check_run(run)
    assert main(["discover", "--config", str(run / "config.yaml"), "--out", str(run), "--resume", "--quiet"]) == EXIT_BAD_INPUT
    assert words in capsys.readouterr().err
    assert main(["summarize", str(run), "--out", str(tmp_path / "report")]) == EXIT_BAD_INPUT
    assert words in capsys.readouterr().err
