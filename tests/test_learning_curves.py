"""Learning curves: metrics.jsonl (one row per iteration, exact under resume), TensorBoard
event files holding the same numbers, Weights & Biases through its API, and ``fadejax
compare`` on several runs."""

import importlib.machinery
import csv
import json
import math
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fadejax.cli import main
from fadejax.stages.compare import compare, differing_fields, labels_for, load_curves
from fadejax.engine.config import parse_config
from fadejax.analysis.estimates import report_recall
from fadejax.engine.ground_truth import landscape_key
from fadejax.engine.store.learning_log import TIMING_COLUMNS, LearningLog, read_metrics, tag_of
from fadejax.engine.store.records import read_records
from fadejax.engine.build import build_task
from fadejax.stages.discover import discover
from fadejax.engine.checkpoints import checkpoint_manager, restore_latest, build_discovery
from fadejax.searchers import REGISTRY
from resume_check import drop_latest_checkpoint, reproducible_rows
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto.event_pb2 import SessionLog
from fadejax.engine.store.record_fields import records_path

ITERATIONS, NUM_ENVS = 12, 32
SMALL = {
    "name": "curves",
    "data": {"limit": 120},
    "searcher": {"kind": "dqn", "hidden_sizes": [32], "batch_size": 32, "min_replay": 64, "replay_capacity": 1024},
    "run": {"iterations": ITERATIONS, "num_envs": NUM_ENVS, "checkpoint_every": 4, "seed": 3, "landscape_every": 5},
}


def _config(**run):
    data = json.loads(json.dumps(SMALL))
    data["run"].update(run)
    return parse_config(data)


def _events(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits_task):
    out = tmp_path_factory.mktemp("curves") / "seed3"
    discover(_config(), out, oracle=digits_task.oracle, progress=False)
    return out


def test_one_row_per_iteration_with_the_loop_and_the_searchers_figures(run):
    rows = list(read_metrics(run / "metrics.jsonl"))
    records = list(read_records(records_path(run)))
    assert [row["iteration"] for row in rows] == list(range(ITERATIONS))
    assert [row["queries"] for row in rows] == [NUM_ENVS * (i + 1) for i in range(ITERATIONS)]
    per_iteration = [sum(r["failed"] for r in records if r["iteration"] == i) for i in range(ITERATIONS)]
    assert [row["failures"] for row in rows] == per_iteration
    assert [row["failures_total"] for row in rows] == list(np.cumsum(per_iteration))
    assert rows[-1]["failures_total"] == json.loads((run / "run.json").read_text())["failures"]
    for row in rows:
        assert {k for k in row if k.startswith("searcher.")} == {f"searcher.{n}" for n in REGISTRY["dqn"][1].reports}
        assert all(row[k] >= 0 for k in TIMING_COLUMNS if k != "queries_per_s")
        assert row["queries_per_s"] == pytest.approx(NUM_ENVS / row["seconds"])
        assert row["seconds"] >= row["time.propose"] + row["time.model"] + row["time.learn"]
    # the DQN cannot learn before its replay holds min_replay (64) transitions: no loss, written as null
    assert rows[0]["searcher.loss"] is None and rows[-1]["searcher.loss"] > 0
    assert rows[0]["searcher.epsilon"] > rows[-1]["searcher.epsilon"]  # it anneals


def test_event_files_hold_the_same_numbers_as_the_metrics_file(run):
    rows = list(read_metrics(run / "metrics.jsonl"))
    events = _events(run)
    for column in ["failures", "failures_total", "searcher.epsilon", "searcher.q_max", "time.model"]:
        points = events.Scalars(tag_of(column))
        assert [p.step for p in points] == [row["queries"] for row in rows]  # the step axis is queries
        assert [p.value for p in points] == pytest.approx([row[column] for row in rows], rel=1e-6)
    assert all(math.isnan(p.value) for p in events.Scalars("searcher/loss")[:1])  # undefined, not 0
    # eq. 10's landscape every 5 iterations, and the resolved config as text
    assert [image.step for image in events.Images("landscape/policy")] == [5 * NUM_ENVS, 10 * NUM_ENVS]
    assert "config/text_summary" in events.Tags()["tensors"]


def test_a_killed_and_resumed_run_shows_each_iteration_once_in_tensorboard(tmp_path, digits_task, run):
    out = tmp_path / "cut"
    discover(_config(), out, oracle=digits_task.oracle, progress=False, stop_after=10)
    assert drop_latest_checkpoint(out) == 8  # as if killed after iteration 10: iterations 8-9 are logged twice
    discover(_config(), out, oracle=digits_task.oracle, progress=False, resume=True)
    assert reproducible_rows(out) == reproducible_rows(run)
    files = sorted((out / "tensorboard").iterdir())
    assert len(files) == 2  # one event file per process
    # the second file starts with TensorBoard's restart marker at the first step it writes
    markers = [(e.step, e.session_log.status) for f in files for e in EventFileLoader(str(f)).Load() if e.HasField("session_log")]
    assert markers == [(8 * NUM_ENVS + 1, SessionLog.START)]
    points = _events(out).Scalars("loop/failures_total")
    assert [p.step for p in points] == [NUM_ENVS * (i + 1) for i in range(ITERATIONS)]
    assert [p.value for p in points] == [row["failures_total"] for row in read_metrics(run / "metrics.jsonl")]


def test_logging_settings_may_change_on_resume_and_shortened_curves_do_not_stop_it(tmp_path, digits_task, run, capsys):
    out = tmp_path / "cut"
    discover(_config(), out, oracle=digits_task.oracle, progress=False, stop_after=6)
    drop_latest_checkpoint(out)
    lines = (out / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    (out / "metrics.jsonl").write_bytes(b"".join(lines[:2]) + lines[2][:50])  # shortened behind fadejax's back, mid-row
    discover(_config(tensorboard=False, landscape_every=0), out, oracle=digits_task.oracle, progress=True, resume=True)
    assert "learning curves go on from iteration 4" in capsys.readouterr().out
    assert yaml.safe_load((out / "config.yaml").read_text())["run"]["tensorboard"] is False  # the new settings are kept
    assert records_path(out).read_bytes() == records_path(run).read_bytes()
    assert [row["iteration"] for row in read_metrics(out / "metrics.jsonl")] == [0, 1] + list(range(4, ITERATIONS))  # a gap, no repeats


def test_a_failing_sink_is_dropped_with_a_warning_and_the_rows_go_on(tmp_path):
    class Broken:
        def scalars(self, step, values):
            raise OSError("disk full")

        def close(self, failed=False):
            pass

    log = LearningLog(tmp_path / "metrics.jsonl", num_envs=4, sinks=[Broken()])
    with pytest.warns(UserWarning, match="logging to Broken stopped.*disk full"):
        log.add(0, 1, {"loss": np.float32(0.5)}, None, 0.001)
    log.add(1, 2, {"loss": np.float32(0.4)}, None, 0.001)
    log.add_image("landscape/policy", lambda: 1 / 0)  # nothing to draw on: no error, no sink
    with pytest.raises(ValueError, match="'loss' has shape \\(2,\\)"):
        log.add(2, 0, {"loss": np.zeros(2)}, None, 0.001)
    log.close()
    assert [row["failures_total"] for row in read_metrics(tmp_path / "metrics.jsonl")] == [1, 3]


def test_a_run_from_before_learning_curves_resumes_and_keeps_them_from_there(tmp_path, digits_task):
    out = tmp_path / "old"
    config = _config(landscape_every=50)  # every new field at its default, as in a run made before they existed
    discover(config, out, oracle=digits_task.oracle, progress=False, stop_after=6)  # a checkpoint after 6 iterations
    # make it look like an earlier version's run: no new config fields, no curves, a checkpoint without their length
    stored = yaml.safe_load((out / "config.yaml").read_text())
    for field in ("tensorboard", "landscape_every", "wandb"):
        del stored["run"][field]
    (out / "config.yaml").write_text(yaml.safe_dump(stored))
    (out / "metrics.jsonl").unlink()
    shutil.rmtree(out / "tensorboard")
    discovery = build_discovery(config, build_task(config, oracle=digits_task.oracle, progress=False))  # the run's own held-out set
    manager = checkpoint_manager(out)
    state, records_bytes, _ = restore_latest(manager, discovery.init(0))
    for step in manager.all_steps():
        manager.delete(step)
    manager.save(int(state.iteration), args=ocp.args.StandardSave({"loop": state, "records_bytes": np.asarray(records_bytes, np.int64)}), force=True)
    manager.wait_until_finished()
    manager.close()
    discover(config, out, oracle=digits_task.oracle, progress=False, resume=True)
    assert [row["iteration"] for row in read_metrics(out / "metrics.jsonl")] == list(range(6, ITERATIONS))
    assert len(list(read_records(records_path(out)))) == ITERATIONS * NUM_ENVS


def test_tensorboard_can_be_off_and_wandb_gets_every_row(tmp_path, digits_task, monkeypatch):
    calls: dict[str, list] = {"init": [], "log": [], "finish": []}

    class FakeRun:
        def log(self, values, step):
            calls["log"].append((step, values))

        def finish(self, exit_code=0):
            calls["finish"].append(exit_code)

    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    fake.init = lambda **kwargs: calls["init"].append(kwargs) or FakeRun()
    fake.Image = lambda rgb: ("image", rgb.shape)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    config = _config(tensorboard=False, wandb={"project": "audits", "mode": "offline", "tags": ["digits"]})
    out = tmp_path / "wandb"
    discover(config, out, oracle=digits_task.oracle, progress=False, stop_after=6)
    discover(config, out, oracle=digits_task.oracle, progress=False, resume=True)
    assert not (out / "tensorboard").exists()
    run_id = json.loads((out / "run.json").read_text())["wandb_id"]
    assert [c["id"] for c in calls["init"]] == [run_id, run_id]  # a resume continues the same W&B run
    assert all(c["project"] == "audits" and c["mode"] == "offline" and c["resume"] == "allow" and c["tags"] == ["digits"] for c in calls["init"])
    assert calls["finish"] == [0, 0]  # both processes ended normally (1 after an error or an interrupt)
    scalars = [(step, values) for step, values in calls["log"] if "loop/failures" in values]
    rows = list(read_metrics(out / "metrics.jsonl"))
    assert [step for step, _ in scalars] == [row["queries"] for row in rows] == [NUM_ENVS * (i + 1) for i in range(ITERATIONS)]
    assert [values["loop/failures_total"] for _, values in scalars] == [row["failures_total"] for row in rows]
    assert [step for step, values in calls["log"] if "landscape/policy" in values] == [5 * NUM_ENVS, 10 * NUM_ENVS]


def test_wandb_without_the_package_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as where the extra is not installed
    config = tmp_path / "wandb.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "run": {**SMALL["run"], "wandb": {"project": "audits"}}}))
    out = tmp_path / "out"
    assert main(["discover", "--config", str(config), "--out", str(out), "--quiet"]) == 2
    assert "fadejax[wandb]" in capsys.readouterr().err
    assert not out.exists()


# -- fadejax compare ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def second_run(tmp_path_factory, digits_task):
    out = tmp_path_factory.mktemp("curves") / "seed4"
    discover(_config(seed=4), out, oracle=digits_task.oracle, progress=False)
    return out


def test_compare_labels_two_runs_by_the_one_field_they_differ_in(run, second_run, tmp_path):
    files = compare([run, second_run], tmp_path / "cmp")
    assert {p.name for p in (tmp_path / "cmp").iterdir()} == {"compare.png", "compare.pdf", "compare.html", "compare.md", "compare.csv"}
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files["pdf"].read_bytes()[:5] == b"%PDF-"
    html = files["html"].read_text()
    assert "run.seed=3" in html and "run.seed=4" in html
    assert "<script src=" not in html.replace("<script src=\"data:", "")  # plotly inlined: opens offline
    for panel in ["distinct failing (sample, cell) pairs found", "share of queries that re-asked a pair", "failing queries",
                  "queries per second", "epsilon", "loss", "q_max"]:
        assert panel in html
    # the table leads with what each query taught: distinct failing pairs and re-asks, from the records
    rows = {r["run"]: r for r in csv.DictReader(open(tmp_path / "cmp" / "compare.csv"))}
    for run_dir in (run, second_run):
        records = list(read_records(records_path(run_dir)))
        failing = {(r["sample"], r["cell"]) for r in records if r["failed"]}
        assert int(float(rows[str(run_dir)]["distinct"])) == len(failing)
        assert float(rows[str(run_dir)]["reasked"]) == pytest.approx(1 - len({(r["sample"], r["cell"]) for r in records}) / len(records))
        assert int(float(rows[str(run_dir)]["failing_queries"])) == sum(r["failed"] for r in records)


def test_labels_leave_out_the_fields_a_differing_kind_brings():
    dqn = _config()
    random = parse_config({**json.loads(json.dumps(SMALL)), "searcher": {"kind": "random"}})
    assert differing_fields([dqn, random]) == ["searcher.kind"]
    assert labels_for([dqn, random], [Path("a"), Path("b")]) == ["searcher.kind=dqn", "searcher.kind=random"]
    assert labels_for([dqn, dqn], [Path("a"), Path("b")]) == ["a", "b"]  # nothing differs: the directories


def test_recall_curve_with_a_shared_ground_truth(run, tmp_path, digits_task):
    config = _config()
    rng = np.random.default_rng(0)
    truth = rng.random(digits_task.space.num_actions)
    path = tmp_path / "ground_truth.json"
    path.write_text(json.dumps({"key": landscape_key(config), "statistics": {"held_out_samples": digits_task.num_samples},
                                "failure_rates": truth.tolist()}))
    curves = load_curves(run, ground_truth=path, points=2)
    queries, recall = curves.recall
    assert queries.tolist() == [192, 384] and all(0.0 <= r <= 1.0 for r in recall)
    records = list(read_records(records_path(run)))
    sample, cell, failed = (np.asarray([r[k] for r in records]) for k in ("sample", "cell", "failed"))
    assert recall[-1] == report_recall(sample, cell, failed, truth, digits_task.space.sizes, digits_task.num_samples)[0]
    assert "recall@10" in compare([run], tmp_path / "one", ground_truth=path, points=2)["html"].read_text()


def test_a_run_without_curves_is_compared_from_its_records(run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "metrics.jsonl").unlink()
    curves = load_curves(old)
    assert curves.notes and curves.queries.tolist() == [NUM_ENVS * (i + 1) for i in range(ITERATIONS)]
    assert curves.columns["failures_total"].tolist() == [row["failures_total"] for row in read_metrics(run / "metrics.jsonl")]


@pytest.mark.parametrize("case", ["missing", "not a run", "no iterations", "corrupt curves", "another landscape", "twice"])
def test_bad_run_directories_get_one_clear_error(case, run, tmp_path, capsys):
    target = tmp_path / "target"
    runs = [str(target)]
    extra: list[str] = []
    expected = {"missing": "does not exist", "not a run": "not a fadejax run directory", "no iterations": "nothing to compare",
                "corrupt curves": "not a learning-curve row", "another landscape": "is not the ground truth", "twice": "more than once"}[case]
    if case == "not a run":
        target.mkdir()
    elif case == "no iterations":
        target.mkdir()
        shutil.copy(run / "config.yaml", target / "config.yaml")
    elif case in ("corrupt curves", "another landscape", "twice"):
        shutil.copytree(run, target)
        if case == "corrupt curves":
            with open(target / "metrics.jsonl", "ab") as f:
                f.write(b"{not json\n")
        elif case == "another landscape":
            (tmp_path / "gt.json").write_text(json.dumps({"key": "0" * 16, "statistics": {}, "failure_rates": []}))
            extra = ["--ground-truth", str(tmp_path / "gt.json")]
        else:
            runs = [str(target), str(target)]
    out = tmp_path / "cmp"
    assert main(["compare", *runs, "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and expected in err and len(err.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())
