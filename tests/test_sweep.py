"""`fadejax sweep`: a grid of runs as Ray tasks on a local Ray of two workers, durable and
resumable, with a tidy CSV; points replay the shipped digits recording (no model)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from fadejax.cli import main
from fadejax.engine.config import parse_config
from fadejax.engine.ground_truth import save_ground_truth
from fadejax.engine.recording import replay
from fadejax.stages.discover import discover
from fadejax.sweeps.spec import expand, read_spec
from readme import ROOT
from subprocess_env import jax_subprocess_env
from fadejax.engine.store.records import read_records, records_path

RECORDING = str(ROOT / "recordings" / "digits.npz")
#: the random searcher: its loop compiles in seconds (what is tested is the sweep, not a searcher)
SETTINGS = {"searcher.kind": "random", "run.num_envs": 32, "run.checkpoint_every": 2, "run.tensorboard": False}


def _spec(tmp_path: Path, name: str, **fields) -> Path:
    spec = {"base": str(ROOT / "configs" / "digits.yaml"), "set": {**SETTINGS, **fields.pop("set", {})}, **fields}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _sweep(*argv: str, cwd: Path, **popen):
    command = [sys.executable, "-m", "fadejax.cli", "sweep", *argv, "--quiet"]
    return subprocess.Popen(command, cwd=cwd, env=jax_subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _records(run_dir: Path) -> list[dict]:
    return list(read_records(records_path(run_dir)))


def _csv(path: Path) -> list[dict]:
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_killed_sweep_resumes_without_repeats_reports_failing_points_and_matches_points_run_alone(tmp_path):
    """One sweep on a local Ray: three points replay the recording, three name a missing one
    (they fail, the others go on). The driver is killed after the first point completes;
    --resume finishes the rest without re-running it or duplicating a record, and the
    report's CSV and a point's records equal the same points run one at a time."""
    config = parse_config({"recording": RECORDING})
    truth = tmp_path / "truth"
    task = replay(config, RECORDING)
    rates = task.recording.failure_rates()
    save_ground_truth(config, truth, rates, task)
    spec = _spec(tmp_path, "grid", set={"run.iterations": 16}, ground_truth="truth/ground_truth.json",
                 vary={"recording": [RECORDING, str(tmp_path / "missing.npz")], "run.seed": [0, 1, 2]})
    sweep = _sweep(str(spec), "--out", "out", "--cpus", "1", cwd=tmp_path, start_new_session=True)
    manifest_path = tmp_path / "out" / "sweep.json"
    deadline = time.monotonic() + 240
    complete = []
    while time.monotonic() < deadline and not complete:
        time.sleep(0.5)
        if manifest_path.is_file():
            complete = [p for p in json.loads(manifest_path.read_text())["points"] if p["status"] == "complete"]
    assert complete, "no point finished in time"
    os.kill(sweep.pid, signal.SIGKILL)  # the driver, mid-sweep
    sweep.wait()
    os.killpg(sweep.pid, signal.SIGKILL)  # and whatever of its local Ray is left
    finished = {p["dir"]: records_path(tmp_path / "out" / p["dir"]).stat().st_mtime_ns for p in complete}
    assert len(finished) < 3, "the sweep ended before it could be interrupted"

    again = _sweep(str(spec), "--out", "out", "--resume", "--cpus", "2", cwd=tmp_path)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 1  # three points failed; the others finished
    manifest = json.loads(manifest_path.read_text())
    by_status = {s: [p for p in manifest["points"] if p["status"] == s] for s in ("complete", "failed")}
    assert len(by_status["complete"]) == 3 and len(by_status["failed"]) == 3
    assert all("missing.npz" in p["error"] for p in by_status["failed"]) and err.count("failed:") == 3
    for p in by_status["complete"]:
        run_dir = tmp_path / "out" / p["dir"]
        pairs = [(r["iteration"], r["env"]) for r in _records(run_dir)]
        assert len(pairs) == len(set(pairs)) == 16 * 32  # nothing lost, nothing twice
        if p["dir"] in finished:  # not run again
            assert records_path(run_dir).stat().st_mtime_ns == finished[p["dir"]]

    rows = {int(r["index"]): r for r in _csv(tmp_path / "out" / "sweep.csv")}
    points = expand(*read_spec(spec))
    resumed = next(p for p in by_status["complete"] if p["dir"] not in finished)  # one is enough: all ran in the same workers
    point = points[resumed["index"]]
    summary = discover(point.config, tmp_path / "alone", progress=False)  # the same point, one at a time, here
    assert records_path(tmp_path / "out" / resumed["dir"]).read_bytes() == records_path(tmp_path / "alone").read_bytes()
    assert int(rows[point.index]["failures"]) == summary.failures and int(rows[point.index]["queries"]) == summary.queries
    for entry in by_status["complete"]:
        row = rows[entry["index"]]
        status = json.loads((tmp_path / "out" / entry["dir"] / "run.json").read_text())
        assert int(row["failures"]) == status["failures"] and int(row["queries"]) == 16 * 32
        assert 0.0 <= float(row["recall@10"]) <= 1.0 and float(row["queries_per_s"]) > 0
        # distinct failing pairs and the re-asked share, as the records count them
        records = _records(tmp_path / "out" / entry["dir"])
        pairs = [(r["sample"], r["cell"]) for r in records]
        assert int(float(row["distinct"])) == len({(r["sample"], r["cell"]) for r in records if r["failed"]})
        assert float(row["reasked"]) == pytest.approx(1 - len(set(pairs)) / len(pairs))
        assert 0.0 <= float(row["coverage"]) <= 1.0
        # captured gain: random search's expected rate (the mean cell) is 0, the worst cell's is 1
        expected = (status["failures"] / status["queries"] - rates.mean()) / (rates.max() - rates.mean())
        assert float(row["gain"]) == pytest.approx(expected)
    for entry in by_status["failed"]:
        assert rows[entry["index"]]["status"] == "failed" and "missing.npz" in rows[entry["index"]]["error"]
    summary_md = (tmp_path / "out" / "summary.md").read_text()
    assert "recording" in summary_md and "± " in summary_md and (tmp_path / "out" / "summary.png").stat().st_size > 0


@pytest.mark.parametrize("spec, message", [
    ({"vary": {"run.seed": [0]}, "colour": 1}, "colour: Extra inputs are not permitted"),
    ({"vary": {"run.seed": []}}, "'run.seed' has no values: an empty grid"),
    ({"vary": {}}, "vary: Dictionary should have at least 1 item"),
    ({"vary": {"run.bogus": [1, 2]}}, "run.bogus: unknown field; allowed here"),
    ({"vary": {"searcher.kind": ["random", "nope"]}}, "unknown searcher kind 'nope'"),
    ({"vary": {"run.seed": [0]}, "draws": 5}, "draws: 5 points asked from a grid of 1"),
    ({"vary": {"run.seed": [0, 1]}, "exclude": [{"run.iterations": 3}]}, "exclude[0] names 'run.iterations', which is not varied"),
    ({"vary": {"run.seed": [0, 1]}, "exclude": [{"run.seed": 7}]}, "exclude[0]: 7 is not a value of 'run.seed'"),
    ({"vary": {"run.seed": [0]}, "exclude": [{"run.seed": 0}]}, "exclude leaves no point of the grid"),
    ({"vary": {"searcher": {"a": {"kind": "random"}, "b": {"kind": "nope"}}}}, "unknown searcher kind 'nope'"),
])
def test_a_bad_spec_is_refused_in_one_line_before_anything_runs(tmp_path, capsys, spec, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"base": str(ROOT / "configs" / "digits.yaml"), **spec}))
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_changed_spec_is_refused_on_an_existing_sweep(tmp_path, capsys):
    first = _spec(tmp_path, "first", set={"recording": RECORDING}, vary={"run.seed": [0, 1]})
    from fadejax.sweeps.runner import prepare

    prepare(first, tmp_path / "out", resume=False)  # the manifest, as a started sweep leaves it
    changed = _spec(tmp_path, "changed", set={"recording": RECORDING}, vary={"run.seed": [0, 2]})
    before = (tmp_path / "out" / "sweep.json").read_bytes()
    assert main(["sweep", str(changed), "--out", str(tmp_path / "out"), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds a sweep of another spec (1 of its points differ" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "out" / "sweep.json").read_bytes() == before
    assert main(["sweep", str(first), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "add --resume" in capsys.readouterr().err


def test_labelled_values_exclusions_and_a_plugin_searcher_run_inline_and_resume(tmp_path, capsys, monkeypatch):
    """Values with labels name the points; an excluded combination is not run; a searcher
    from the user's --plugin file runs; --inline needs no Ray; --resume re-runs nothing."""
    from fadejax.searchers import REGISTRY

    saved = dict(REGISTRY)
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "labelled.yaml"
    settings = {k: v for k, v in SETTINGS.items() if k != "searcher.kind"}  # the searcher is what varies
    spec.write_text(yaml.safe_dump({
        "base": str(ROOT / "configs" / "digits.yaml"), "set": {**settings, "recording": RECORDING, "run.iterations": 2},
        "vary": {"searcher": {"coin flip": {"kind": "random"}, "mine": {"kind": "uniform"}}, "run.seed": [0, 1]},
        "exclude": [{"searcher": "mine", "run.seed": 1}],
    }, sort_keys=False))
    try:
        argv = ["sweep", str(spec), "--out", "out", "--inline", "--quiet", "--plugin", str(ROOT / "examples" / "uniform_searcher.py")]
        assert main(argv) == 0
        manifest = json.loads((tmp_path / "out" / "sweep.json").read_text())
        assert [p["values"] for p in manifest["points"]] == [
            {"searcher": "coin flip", "run.seed": 0}, {"searcher": "coin flip", "run.seed": 1}, {"searcher": "mine", "run.seed": 0}]
        assert [p["status"] for p in manifest["points"]] == ["complete"] * 3
        mine = tmp_path / "out" / manifest["points"][2]["dir"]
        assert yaml.safe_load((mine / "config.yaml").read_text())["searcher"]["kind"] == "uniform"
        assert {r["searcher"] for r in _csv(tmp_path / "out" / "sweep.csv")} == {"coin flip", "mine"}
        assert "| coin flip | 2/2 |" in capsys.readouterr().out
        written = {p["dir"]: records_path(tmp_path / "out" / p["dir"]).stat().st_mtime_ns for p in manifest["points"]}
        assert main([*argv, "--resume"]) == 0
        assert {d: records_path(tmp_path / "out" / d).stat().st_mtime_ns for d in written} == written
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)


def test_a_point_no_node_could_run_is_refused_instead_of_waiting_for_ever(tmp_path):
    from fadejax.sweeps.runner import _check_feasible
    from fadejax.sweeps.spec import SweepError, SweepSpec

    spec = SweepSpec.model_validate({"base": "x.yaml", "vary": {"run.seed": [0]}, "resources": {"cpus": 4, "gpus": 1}})
    with pytest.raises(SweepError, match=r"resources.cpus: 4, but the local Ray has 2 in all; lower resources.cpus or raise --cpus"):
        _check_feasible(spec, {"CPU": 2.0}, None)
    with pytest.raises(SweepError, match=r"resources.gpus: 1, but the Ray cluster at head:6379 has 0 in all"):
        _check_feasible(spec, {"CPU": 64.0}, "head:6379")
    _check_feasible(spec, {"CPU": 4.0, "GPU": 1.0}, None)  # enough: no error
