"""Run directories: durable records, checkpoints, resume after kill -9 with nothing lost or duplicated."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from resume_check import reproducible_rows
from subprocess_env import jax_subprocess_env
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from fadejax.engine.config import parse_config
from fadejax.engine.store.learning_log import read_metrics
from fadejax.engine.store.records import read_records
from fadejax.stages.discover import discover
from fadejax.engine.store.arrow_records import read_arrow_records
from fadejax.engine.store.record_fields import records_path

ITERATIONS = 48  # long enough that the kill -9 test reliably catches the run mid-way (after 14, before 48)
SMALL = {
    "name": "small",
    "searcher": {"kind": "dqn", "hidden_sizes": [32], "batch_size": 64, "min_replay": 64, "replay_capacity": 4096},
    "run": {"iterations": ITERATIONS, "num_envs": 32, "checkpoint_every": 4, "seed": 3},
}


def _config(**changes):
    data = json.loads(json.dumps(SMALL))
    for section, values in changes.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return parse_config(data)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the small config."""
    out = tmp_path_factory.mktemp("reference") / "run"
    summary = discover(_config(), out, progress=False)
    return out, summary


def test_a_run_directory_holds_config_records_checkpoints_policy_and_summary(reference):
    out, summary = reference
    assert {"config.yaml", "run.json", "records.parquet", "metrics.jsonl", "tensorboard", "checkpoints", "policy", "summary.json"} <= {p.name for p in out.iterdir()}
    assert parse_config(yaml.safe_load((out / "config.yaml").read_text())) == _config()
    records = list(read_records(records_path(out)))
    assert len(records) == ITERATIONS * 32 == summary.queries
    assert [r["iteration"] for r in records[::32]] == list(range(ITERATIONS))
    first = records[0]
    assert set(first) == {"iteration", "env", "sample", "label", "action", "cell", "concepts", "reward", "failed", "reused", "predicted", "score"}
    assert set(first["concepts"]) == {"rotation", "darkness", "blur"}
    assert sum(r["failed"] for r in records) == summary.failures
    assert all((r["predicted"] != r["label"]) == r["failed"] for r in records)
    status = json.loads((out / "run.json").read_text())
    assert status["status"] == "complete" and status["iterations"] == ITERATIONS
    top = json.loads((out / "summary.json").read_text())["top_cells"]
    # estimated over every held-out sample, inside its 95% interval, from distinct samples asked
    assert top and all(row["interval"][0] <= row["estimate"] <= row["interval"][1] for row in top)
    assert all(0 <= row["samples_failed"] <= row["samples_asked"] for row in top)
    assert [row["estimate"] for row in top] == sorted((row["estimate"] for row in top), reverse=True)


def test_stopping_and_resuming_in_process_reproduces_the_uninterrupted_run(reference, tmp_path):
    ref_out, ref_summary = reference
    out = tmp_path / "run"
    discover(_config(), out, progress=False, stop_after=10)  # stops between checkpoints 8 and 12
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    summary = discover(_config(), out, resume=True, progress=False)
    assert records_path(out).read_bytes() == records_path(ref_out).read_bytes()
    assert (summary.iterations, summary.queries, summary.failures) == (ref_summary.iterations, ref_summary.queries, ref_summary.failures)


def test_kill_minus_9_mid_run_then_resume_loses_and_duplicates_nothing(reference, tmp_path):
    ref_out, ref_summary = reference
    config_path = tmp_path / "small.yaml"
    config_path.write_text(yaml.safe_dump(SMALL))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "fadejax.cli", "discover", "--config", str(config_path), "--out", str(out), "--quiet"]
    env = jax_subprocess_env(PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = records_path(out)
    deadline = time.time() + 240
    while time.time() < deadline:  # wait until it is past a checkpoint, then kill it hard
        if records.exists() and records.stat().st_size and read_arrow_records(records).num_rows >= 32 * 14:
            break
        if process.poll() is not None:
            pytest.fail("the run finished before it could be killed")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_lines = read_arrow_records(records).num_rows
    assert 32 * 14 <= killed_lines < ITERATIONS * 32
    result = subprocess.run(command + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert records_path(out).read_bytes() == records_path(ref_out).read_bytes()
    status = json.loads((out / "run.json").read_text())
    assert (status["iterations"], status["queries"], status["failures"]) == (ref_summary.iterations, ref_summary.queries, ref_summary.failures)
    # the learning curves: one row per iteration, the reproducible figures as uninterrupted,
    # and TensorBoard showing each iteration once (the killed process's extra rows purged)
    assert reproducible_rows(out) == reproducible_rows(ref_out)
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    points = events.Scalars("loop/failures_total")
    assert [p.step for p in points] == [32 * (i + 1) for i in range(ITERATIONS)]
    assert [p.value for p in points] == [row["failures_total"] for row in read_metrics(ref_out / "metrics.jsonl")]


def test_resuming_a_complete_run_changes_nothing(reference):
    out, summary = reference
    before = records_path(out).read_bytes()
    again = discover(_config(), out, resume=True, progress=False)
    assert records_path(out).read_bytes() == before
    assert again.queries == summary.queries


def test_microscopic_episodes_walk_one_notch_per_step_and_end_at_failure_or_the_step_limit(tmp_path):
    config = _config(mode="micro", micro={"start": [2, 0, 0], "max_steps": 4, "alpha": 5.0}, run={"iterations": 12})
    space = config.concept_space()
    discover(config, tmp_path / "micro", progress=False)
    by_env: dict[int, list[dict]] = {}
    for record in read_records(records_path(tmp_path / "micro")):
        by_env.setdefault(record["env"], []).append(record)
    start = np.array([2, 0, 0])
    for trail in by_env.values():
        previous = start
        for record in trail:
            cell = np.asarray(space.cell_of(record["cell"]))
            assert np.abs(cell - previous).sum() <= 1  # one notch on one axis (or clipped at an edge)
            assert record["done"] == (record["failed"] or record["step"] == 4)
            assert record["reward"] == pytest.approx((-1.0 if not record["failed"] else record["reward"] + 5.0 * record["step"]) - 5.0 * record["step"])
            previous = start if record["done"] else cell
        steps = [r["step"] for r in trail]
        assert steps[0] == 1 and all(b == (1 if a_done else a + 1) for a, b, a_done in zip(steps, steps[1:], [r["done"] for r in trail]))


def test_a_checkpoint_of_another_state_layout_is_refused_in_words_and_summarize_still_reports(tmp_path):
    """A checkpoint written by another version of a searcher (here: one array fewer in its
    state) is refused by --resume with the fields named and nothing in the run touched;
    summarize reports the run without its policy landscape."""
    import orbax.checkpoint as ocp

    from fadejax.engine.checkpoints import CheckpointLayoutError
    from fadejax.stages.summarize import load_summary

    out = tmp_path / "run"
    config = parse_config({**SMALL, "data": {"limit": 64}, "searcher": {"kind": "posterior"},
                           "run": {**SMALL["run"], "iterations": 6, "checkpoint_every": 2, "tensorboard": False}})
    discover(config, out, progress=False, stop_after=4)
    manager = ocp.CheckpointManager((out / "checkpoints").absolute(), options=ocp.CheckpointManagerOptions(max_to_keep=2),
                                    item_handlers=ocp.StandardCheckpointHandler())
    step = manager.latest_step()
    tree = manager.restore(step)
    del tree["loop"]["searcher"]["pair_queries"]  # as a searcher written before it kept per-pair counts
    manager.save(step + 1, args=ocp.args.StandardSave(tree), force=True)
    manager.wait_until_finished()
    manager.close()
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    with pytest.raises(CheckpointLayoutError, match=r"missing: searcher\.pair_queries; not expected: none"):
        discover(config, out, resume=True, progress=False)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    summary = load_summary(out)
    assert summary.view_policy_mean is None and any("written by another version of its searcher" in n for n in summary.notes)
