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

ENVS = 16


def _config(seed: int = 0):
    return load_config(ROOT / "configs/digits.yaml", ["recording=recordings/digits.npz", "run.iterations=6", f"run.num_envs={ENVS}",
                                                      "run.checkpoint_every=2", "run.tensorboard=false", f"run.seed={seed}"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    discover(_config(0), base / "run", progress=False)
    discover(_config(1), base / "other", progress=False)
    return base


def _copy(runs: Path, tmp_path: Path, edit=None) -> Path:
    run = tmp_path / "run"
    shutil.copytree(runs / "run", run)
    if edit is not None:
        lines = (run / "records.jsonl").read_bytes().splitlines(keepends=True)
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
    other = (runs / "other" / "records.jsonl").read_bytes().splitlines(keepends=True)
    run = _copy(runs, tmp_path, lambda lines: lines[:20] + [other[20]] + lines[21:])
    assert other[20] != (runs / "run" / "records.jsonl").read_bytes().splitlines(keepends=True)[20]  # the edit changes a row
    problems = check_run(run)
    assert any("differ from those the complete run wrote" in p for p in problems), problems


def test_resume_refuses_rows_out_of_place_before_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    discover(_config(0), run, progress=False, stop_after=4)
    lines = (run / "records.jsonl").read_bytes().splitlines(keepends=True)
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
