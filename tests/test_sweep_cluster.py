"""Sweeps on a cluster as README says (a real `ray start --head`, token authentication on), one
driver per sweep directory, and a point's retried attempt that meets its first attempt alive."""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from readme import ROOT
from subprocess_env import jax_subprocess_env

from fadejax.engine.config import parse_config
from fadejax.sweeps.runner import attempts_path, read_attempts
from fadejax.engine.store.records import read_records, records_path

RECORDING = str(ROOT / "recordings" / "digits.npz")
RAY = str(Path(sys.executable).with_name("ray"))
SETTINGS = {"searcher.kind": "random", "run.num_envs": 32, "run.checkpoint_every": 2, "run.tensorboard": False, "recording": RECORDING}


def _spec(tmp_path: Path, iterations: int, seeds: list[int]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"base": str(ROOT / "configs" / "digits.yaml"), "set": {**SETTINGS, "run.iterations": iterations},
                                    "vary": {"run.seed": seeds}}))
    return path


@pytest.fixture(scope="module")
def ray_head():
    """One head for the module's tests (each runs its own sweep against it), started as README says, ``ray start --head`` (on loopback, its own temp dir,
    token authentication on as Ray 2.60 turns it on where a token exists), stopped by its pid;
    yields its address and the environment of a client on "another machine": its own home
    with the head's token copied to ``~/.ray/auth_token`` as README says, no RAY_AUTH_MODE."""
    temp = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))  # short: Ray's unix sockets live under it
    head_home, client_home = temp / "head", temp / "client"
    token = secrets.token_hex(32)
    for home in (head_home, client_home):
        (home / ".ray").mkdir(parents=True)
        (home / ".ray" / "auth_token").write_text(token)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    with open(temp / "head.err", "w") as err:
        head = subprocess.Popen([RAY, "start", "--head", "--block", "--port=0", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                                 "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}/ray"],
                                env={**env, "HOME": str(head_home)}, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    address_file = temp / "ray" / "ray_current_cluster"
    began = time.time()
    while not address_file.exists():
        assert head.poll() is None, (temp / "head.err").read_text()[-2000:]
        assert time.time() - began < 90, "the Ray head did not start"
        time.sleep(0.1)
    assert "Token authentication is enabled" in (temp / "head.err").read_text() + _wait_text(temp / "head.err")
    client = {k: v for k, v in jax_subprocess_env().items() if not k.startswith("RAY_")}
    yield address_file.read_text().strip(), {**client, "HOME": str(client_home)}
    head.send_signal(signal.SIGTERM)  # `ray start --block` stops its own processes (never `ray stop`: it stops every Ray here)
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


def _wait_text(path: Path, timeout: float = 10.0) -> str:
    """The head logs its auth warning soon after it writes its address."""
    deadline = time.time() + timeout
    while "Token authentication" not in path.read_text() and time.time() < deadline:
        time.sleep(0.1)
    return path.read_text()


def test_a_sweep_completes_against_a_head_started_as_readme_says(tmp_path, ray_head):
    address, env = ray_head
    spec = _spec(tmp_path, 8, [0, 1, 2, 3])
    done = subprocess.run([sys.executable, "-m", "fadejax.cli", "sweep", str(spec), "--address", address, "--out", str(tmp_path / "out"),
                           "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [p["status"] for p in manifest["points"]] == ["complete"] * 4
    for point in manifest["points"]:
        assert [a["events"][-1][1] for a in point["attempts"]] == ["complete"]  # each attempt is recorded


def test_without_the_heads_token_the_sweep_says_how_to_get_it(tmp_path, ray_head):
    address, env = ray_head
    home = tmp_path / "home"  # a client whose ~/.ray holds no token (the shared head's own client keeps its copy)
    (home / ".ray").mkdir(parents=True)
    env = {**env, "HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "fadejax.cli", "sweep", str(_spec(tmp_path, 4, [0])), "--address", address,
                           "--out", str(tmp_path / "out"), "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "ray get-auth-token" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


_POINT = """
import sys
from fadejax.sweeps.runner import run_point
print(run_point(__import__("json").loads(sys.argv[1]), sys.argv[2], sys.argv[3]))
"""


def test_a_retried_point_waits_for_its_live_first_attempt_and_nothing_is_written_twice(tmp_path):
    """As Ray retries a task whose node it believes lost while the first attempt still runs:
    two attempts at one point, real processes. The second waits, then finds the point done."""
    # long enough that the second attempt, which starts a Python and imports jax (about 5 s
    # here), meets the first still running: 400 iterations once left it under 5 s to go
    iterations = 1600
    config = parse_config({"recording": RECORDING, "searcher": {"kind": "random"},
                           "run": {"iterations": iterations, "num_envs": 32, "checkpoint_every": 50, "tensorboard": False}})
    point = tmp_path / "out" / "points" / "0000-abc"
    argv = [sys.executable, "-c", _POINT, json.dumps(config.model_dump(mode="json")), str(point), str(ROOT)]
    first = subprocess.Popen(argv, cwd=ROOT, env=jax_subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not records_path(point).is_file():
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.05)
    second = subprocess.run(argv, cwd=ROOT, env=jax_subprocess_env(), capture_output=True, text=True, timeout=300)
    assert first.wait(timeout=300) == 0 and second.returncode == 0, second.stderr
    rows = [(r["iteration"], r["env"]) for r in read_records(records_path(point))]
    assert len(rows) == len(set(rows)) == iterations * 32
    attempts = read_attempts(point)
    assert len(attempts) == 2 and attempts_path(point).is_file()
    events = [[e[1] for e in a["events"]] for a in attempts]
    assert events[0] == ["started", "complete"] and events[1] == ["started", "waiting", "complete"], events


def test_two_drivers_on_one_sweep_directory_one_is_refused(tmp_path):
    spec = _spec(tmp_path, 100, [0, 1])  # about ten seconds of sweep: the second driver meets the first
    argv = [sys.executable, "-m", "fadejax.cli", "sweep", str(spec), "--inline", "--out", str(tmp_path / "out"), "--quiet"]
    first = subprocess.Popen(argv, cwd=ROOT, env=jax_subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "out" / "sweep.json").is_file():
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.05)
    second = subprocess.run([*argv, "--resume"], cwd=ROOT, env=jax_subprocess_env(), capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and f"process {first.pid} on host" in second.stderr, second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert first.wait(timeout=300) == 0, first.communicate()
