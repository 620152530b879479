"""One writer per run directory, with real processes: concurrent writers, kill -9, a stopped holder."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from subprocess_env import jax_subprocess_env

from fadejax.engine.store.dirlock import LOCK_FILE, DirectoryLock, DirectoryLockedError, LeaseLostError, holder_of
from fadejax.engine.store.records import read_records, records_path

ROOT = Path(__file__).resolve().parent.parent
ITERATIONS, ENVS = 160, 64  # a recorded run of a few seconds: long enough for the others to meet its lock


def _discover_argv(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fadejax.cli", "discover", "--config", "configs/digits.yaml", "--out", str(out), "--quiet",
            "--set", "recording=recordings/digits.npz", "--set", f"run.iterations={ITERATIONS}", "--set", f"run.num_envs={ENVS}",
            "--set", "run.checkpoint_every=20", *extra]


def _start(out: Path, *extra: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(_discover_argv(out, *extra), cwd=ROOT, env=jax_subprocess_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _rows(run_dir: Path) -> list[tuple[int, int]]:
    return [(r["iteration"], r["env"]) for r in read_records(records_path(run_dir))]


@pytest.fixture(scope="module")
def lone_run(tmp_path_factory) -> bytes:
    """The records of the run made alone."""
    from fadejax.engine.config import load_config
    from fadejax.stages.discover import discover

    out = tmp_path_factory.mktemp("lone") / "run"
    argv = _discover_argv(out)
    overrides = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    discover(load_config(ROOT / "configs/digits.yaml", overrides), out, progress=False)
    return records_path(out).read_bytes()


def _wait_for_records(run_dir: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    path = records_path(run_dir)
    while not (path.is_file() and path.stat().st_size > 8_000):
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "the holder wrote no records"
        time.sleep(0.05)


@pytest.mark.parametrize("writers", [4])
def test_of_concurrent_writers_exactly_one_runs_and_the_others_are_refused_in_one_line(tmp_path, lone_run, writers):
    out = tmp_path / "run"
    processes = [_start(out) for _ in range(writers)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in processes]
    codes = [code for code, _, _ in results]
    assert codes.count(0) == 1, results
    winner = processes[codes.index(0)].pid
    for code, _, err in results:
        if code != 0:
            lines = err.strip().splitlines()
            assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
            # it met the holder (named, or still writing its record: "just starting"), or it came
            # after the run was done and was told so
            assert (lines[0].startswith("error: run directory") and (f"process {winner} on host" in lines[0]
                                                                     or "another process that is just starting" in lines[0])
                    or "already holds this run; pass --resume" in lines[0]), lines[0]
    assert sum("is being written by" in err for _, _, err in results) >= 1  # the lock, not only the finished run, refused
    rows = _rows(out)
    assert len(rows) == ITERATIONS * ENVS == len(set(rows))
    assert records_path(out).read_bytes() == lone_run


def test_after_kill_9_of_the_holder_a_new_writer_starts_at_once(tmp_path, lone_run):
    out = tmp_path / "run"
    holder = _start(out)
    _wait_for_records(out, holder)
    assert holder_of(out)["pid"] == holder.pid
    holder.kill()  # SIGKILL: no handler runs, the lock file keeps its last holder record
    holder.wait()
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == holder.pid  # the record is stale, the lock is gone
    began = time.time()
    again = subprocess.run(_discover_argv(out, "--resume"), cwd=ROOT, env=jax_subprocess_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert time.time() - began < 120  # no lease to wait out: it started at once
    assert records_path(out).read_bytes() == lone_run


def test_a_holder_stopped_longer_than_its_lease_stops_without_writing_when_resumed(tmp_path, lone_run):
    out = tmp_path / "run"
    holder = _start(out, FADEJAX_LEASE_SECONDS="2")
    _wait_for_records(out, holder)
    os.kill(holder.pid, signal.SIGSTOP)
    time.sleep(1.0)
    sizes = {name: (out / name).stat().st_size for name in ("records.arrow", "metrics.jsonl")}
    time.sleep(4.0)  # twice the lease
    refused = subprocess.run(_discover_argv(out, "--resume"), cwd=ROOT, env=jax_subprocess_env(), capture_output=True, text=True)
    assert refused.returncode == 2 and "has not renewed its lease" in refused.stderr  # alive but stopped: named, not taken over
    os.kill(holder.pid, signal.SIGCONT)
    code, _, err = holder.wait(timeout=120), *holder.communicate()
    assert code == 1 and "lease lapsed" in err, err
    assert {name: (out / name).stat().st_size for name in sizes} == sizes  # nothing more written
    again = subprocess.run(_discover_argv(out, "--resume"), cwd=ROOT, env=jax_subprocess_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert records_path(out).read_bytes() == lone_run  # and the run resumes exactly


def test_a_lock_is_held_once_per_process_and_released(tmp_path):
    with DirectoryLock(tmp_path / "d", "run directory") as lock:
        with pytest.raises(DirectoryLockedError, match="already being written by this process"):
            DirectoryLock(tmp_path / "d").acquire()
        lock.check()
        assert holder_of(tmp_path / "d")["pid"] == os.getpid()
    assert (tmp_path / "d" / LOCK_FILE).read_bytes() == b""  # no holder once released
    with DirectoryLock(tmp_path / "d"):  # taken again after release
        pass


def test_a_lease_taken_over_is_noticed(tmp_path):
    lock = DirectoryLock(tmp_path / "d", lease=0.4).acquire()
    try:
        record = json.loads((tmp_path / "d" / LOCK_FILE).read_text())
        (tmp_path / "d" / LOCK_FILE).write_text(json.dumps({**record, "token": "someone else", "pid": 1}))  # as a writer where locks fail
        time.sleep(0.5)  # a heartbeat or two
        with pytest.raises(LeaseLostError, match="took it over"):
            lock.check()
    finally:
        lock.release()


def test_where_record_locks_are_not_supported_the_lease_decides(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_locks(fd, flags):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "lockf", no_locks)
    directory = tmp_path / "d"
    directory.mkdir()
    live = {"host": "elsewhere", "pid": 4242, "command": "fadejax discover", "started": "2026-12-05T10:00:00+00:00",
            "lease_seconds": 30.0, "token": "theirs", "renewed": time.time()}
    (directory / LOCK_FILE).write_text(json.dumps(live))
    with pytest.raises(DirectoryLockedError, match="process 4242 on host elsewhere"):
        DirectoryLock(directory).acquire()
    assert json.loads((directory / LOCK_FILE).read_text()) == live  # refused: nothing changed
    (directory / LOCK_FILE).write_text(json.dumps({**live, "renewed": time.time() - 60}))  # its lease lapsed
    with DirectoryLock(directory):
        assert holder_of(directory)["pid"] == os.getpid()
