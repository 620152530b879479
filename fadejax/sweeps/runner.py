"""``fadejax sweep``: an experiment grid run as Ray tasks, durable and resumable.

Each point of a spec (:mod:`fadejax.sweeps.spec`) is an ordinary run directory,
``OUT/points/NNNN-HASH/``, made by :func:`fadejax.stages.discover.discover` in a Ray task that
reserves the spec's resources. Without an address a local Ray starts and stops with the
command; with one, the sweep joins that cluster (every node must see ``OUT`` and the
configs' files at the same paths, e.g. a shared file system).

``OUT/sweep.json`` (the manifest) records the spec, and per point its varied values,
config hash, directory and status: ``pending``, ``submitted`` (handed to Ray; its log
file appears once it runs), ``complete`` (with its counts) or ``failed`` (with the
error), and the attempts at it (``attempts``: each attempt's host, pid and events, from
``points/NNNN-HASH.attempts.jsonl``). Each point's progress bar and messages go to
``points/NNNN-HASH.sweep.log``. It is rewritten atomically whenever a point changes.

One driver per sweep directory and one writer per point: the sweep holds the lock on
``OUT`` and each point's discovery the lock on its run directory (:mod:`fadejax.engine.store.dirlock`).
An attempt that finds its point held by a live attempt (a Ray retry of a task whose first
attempt still runs, e.g. on a node Ray believed lost) waits for it and then resumes the
point (finding it complete if the first attempt finished it); a holder whose lease has
lapsed is refused, and a dead one's lock is gone with it, so the new attempt takes over.

Running the same command again with ``--resume`` skips complete points and
resumes the others from their checkpoints (discovery resumes exactly), so a killed
sweep finishes without repeating or duplicating anything; a spec whose points differ
from the manifest's is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import sys
import time
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fadejax.engine.store.dirlock import LOCK_FILE, DirectoryLock, DirectoryLockedError, describe_holder, holder_of, lease_live, refuse_if_held
from fadejax.engine.store.rundir import read_status, write_json_atomic
from fadejax.sweeps.spec import Point, SweepError, SweepSpec, expand, read_spec

MANIFEST = "sweep.json"
POINTS = "points"
LOG = "sweep.log"
ATTEMPTS = "attempts.jsonl"
COMPILATION_CACHE = "jax-cache"


def run_point(config_data: dict[str, Any], run_dir: str, cwd: str, plugins: tuple[str, ...] = ()) -> dict[str, Any]:
    """One point, inside its Ray task (or inline): discovery into ``run_dir`` (resumed if
    it was started), its progress written to ``NNNN-HASH.sweep.log`` beside it; returns
    the run's counts and the process's peak resident memory so far (the point's own with
    ``resources.fresh_worker``). ``plugins``: searcher files to import first (``--plugin``)."""
    from fadejax.engine.config import parse_config
    from fadejax.stages.discover import discover
    from fadejax.searchers.plugins import import_plugins

    os.chdir(cwd)  # the configs' relative paths (a recording, data) are the driver's
    directory = Path(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    import_plugins(list(plugins))
    _share_compilations(directory.parent.parent / COMPILATION_CACHE)
    config = parse_config(data=config_data)
    note = _attempt_writer(directory)
    note("started")
    waited = False
    while True:
        try:
            with open(log_path(directory), "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                summary = discover(config, directory, resume=True, progress=True)
            break
        except DirectoryLockedError as exc:
            # another attempt of this point (a Ray retry whose first attempt lives on) holds it: wait
            # while its lease runs, then resume (it may have finished the point); refuse a stalled one
            holder = holder_of(directory)
            if not lease_live(holder):
                note("refused", str(exc))
                raise
            if not waited:
                note("waiting", f"for {describe_holder(holder)}")
                waited = True
            time.sleep(1.0)
        except BaseException as exc:
            note("failed", f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
            raise
    note("complete")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"iterations": summary.iterations, "queries": summary.queries, "failures": summary.failures, "peak_rss_mb": peak_mb}


def attempts_path(run_dir: Path) -> Path:
    """Where each attempt at a point is noted: beside its run directory, ``NNNN-HASH.attempts.jsonl``."""
    return run_dir.parent / f"{run_dir.name}.{ATTEMPTS}"


def _attempt_writer(run_dir: Path):
    """``note(event, detail="")``: append one line about this attempt (host, pid, time) to the
    point's attempts file. Lines are short single writes in append mode, so attempts on one
    machine never interleave within a line."""
    attempt = {"host": socket.gethostname(), "pid": os.getpid(), "attempt": uuid.uuid4().hex[:8]}

    def note(event: str, detail: str = "") -> None:
        line = {**attempt, "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "event": event}
        if detail:
            line["detail"] = detail
        with open(attempts_path(run_dir), "a") as file:
            file.write(json.dumps(line) + "\n")

    return note


def read_attempts(run_dir: Path) -> list[dict[str, Any]]:
    """Each attempt at a point, in order of its first line: ``{"attempt", "host", "pid",
    "events": [[time, event, detail], ...]}`` (an unreadable line is skipped)."""
    attempts: dict[str, dict[str, Any]] = {}
    path = attempts_path(run_dir)
    if not path.is_file():
        return []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
            key = str(row["attempt"])
            entry = attempts.setdefault(key, {"attempt": key, "host": row.get("host"), "pid": row.get("pid"), "events": []})
            entry["events"].append([row.get("time"), row.get("event"), row.get("detail", "")])
        except (ValueError, KeyError, TypeError):
            continue
    return list(attempts.values())


def _share_compilations(path: Path) -> None:
    """Point this process's JAX at the sweep's persistent compilation cache (once): the
    points of a searcher compile the same programs, so all but the first on each worker
    (and on every worker of a cluster that shares the directory) skip compiling."""
    import jax

    if jax.config.jax_compilation_cache_dir:  # already set (by the user, or an earlier point)
        return
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def log_path(run_dir: Path) -> Path:
    """Where a point's progress goes: beside its run directory, ``NNNN-HASH.sweep.log``."""
    return run_dir.parent / f"{run_dir.name}.{LOG}"


def _manifest(spec_path: Path, spec: SweepSpec, points: list[Point]) -> dict[str, Any]:
    return {
        "spec": str(spec_path), "spec_contents": spec.model_dump(mode="json"),
        "points": [{"index": p.index, "values": p.values, "key": p.key, "dir": f"{POINTS}/{p.directory}", "status": "pending"} for p in points],
    }


def prepare(spec_path: str | Path, out: Path, resume: bool) -> tuple[SweepSpec, list[Point], dict[str, Any]]:
    """The spec's points and the manifest to run them under; refuses an ``out`` that holds
    another sweep, or one already started unless ``resume``."""
    spec, base = read_spec(spec_path)
    points = expand(spec, base)
    path = out / MANIFEST
    if path.is_file():
        try:
            manifest = json.loads(path.read_bytes())
            stored = [(p["index"], p["key"]) for p in manifest["points"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise SweepError(f"'{path}' is not a sweep manifest ({exc}); choose another --out") from None
        if stored != [(p.index, p.key) for p in points]:
            changed = sum(a != b for a, b in zip(stored, [(p.index, p.key) for p in points])) + abs(len(stored) - len(points))
            raise SweepError(f"'{out}' holds a sweep of another spec ({changed} of its points differ from this spec's); "
                             "results would mix. Choose another --out, or restore the spec it was run with")
        if not resume:
            raise SweepError(f"'{out}' already holds this sweep; add --resume to finish it (complete points are kept)")
        return spec, points, manifest
    if out.exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
        raise SweepError(f"'{out}' exists and is not a sweep directory; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(Path(spec_path), spec, points)
    write_json_atomic(path, manifest)
    return spec, points, manifest


def run_sweep(spec_path: str | Path, out: str | Path, *, address: str | None = None, resume: bool = False,
              cpus: int | None = None, progress: bool = True, plugins: list[str] | tuple[str, ...] = (),
              inline: bool = False) -> dict[str, Any]:
    """Run every point of the spec not yet complete; returns the manifest.

    ``address``: an existing Ray cluster (``ray://...`` or ``HOST:PORT``); without it a
    local Ray starts with ``cpus`` CPUs (default: all of this machine's) and stops at the
    end. ``inline``: no Ray; the points run one after another in this process (the same
    run directories, manifest and resume). ``plugins``: searcher files to import (the
    driver's and every worker's process). A point that raises is recorded ``failed`` with
    its error; the others go on.
    """
    from fadejax.searchers.plugins import import_plugins

    out = Path(out)
    plugins = tuple(str(Path(p).resolve()) for p in plugins)
    import_plugins(list(plugins))  # before the spec's points are validated: they may name the plugins' searchers
    refuse_if_held(out, "sweep directory")  # a live driver is named first
    if not (out / MANIFEST).is_file() and out.exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
        raise SweepError(f"'{out}' exists and is not a sweep directory; choose another --out")  # before a lock file lands in it
    spec, base = read_spec(spec_path)
    expand(spec, base)  # a bad spec is refused before anything is written
    with DirectoryLock(out, "sweep directory"):  # one driver per sweep (fadejax.engine.store.dirlock); each point's run takes its own
        return _run_sweep_locked(spec_path, out, address, resume, cpus, progress, plugins, inline)


def _run_sweep_locked(spec_path: str | Path, out: Path, address: str | None, resume: bool, cpus: int | None, progress: bool,
                      plugins: tuple[str, ...], inline: bool) -> dict[str, Any]:
    """:func:`run_sweep` once this process holds the sweep directory's lock."""
    from tqdm import tqdm

    spec, points, manifest = prepare(spec_path, out, resume)
    entries = {e["index"]: e for e in manifest["points"]}
    todo = [p for p in points if not _finished(out, entries[p.index])]
    for p in points:
        if p not in todo:
            entries[p.index]["status"] = "complete"
    if not todo:
        write_json_atomic(out / MANIFEST, manifest)
        return manifest
    bar = tqdm(total=len(points), initial=len(points) - len(todo), disable=not progress, desc="sweep", unit="point")
    failures = [0]

    def settle(p: Point, result: dict[str, Any] | None, error: BaseException | None) -> None:
        entry = entries[p.index]
        entry["attempts"] = read_attempts(out / entry["dir"])
        if error is None:
            entry.update(status="complete", result=result, error=None)
        else:
            failures[0] += 1
            entry.update(status="failed", error=f"{type(error).__name__}: {error}".strip().splitlines()[0][:500])
            print(f"point {p.index} ({p.label}) failed: {entry['error']}", file=sys.stderr)
        write_json_atomic(out / MANIFEST, manifest)
        bar.update(1)

    def directory(p: Point) -> str:
        return str((out / entries[p.index]["dir"]).resolve())

    if inline:
        for p in todo:
            entries[p.index].update(status="submitted", error=None)
            write_json_atomic(out / MANIFEST, manifest)
            bar.set_postfix(running=1, waiting=len(todo) - 1 - todo.index(p), failed=failures[0], refresh=False)
            try:
                result, error = run_point(p.config.model_dump(mode="json"), directory(p), os.getcwd(), plugins), None
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # noqa: BLE001 - a failing point is recorded; the others go on
                result, error = None, exc
            settle(p, result, error)
    else:
        _run_on_ray(spec, todo, entries, manifest, out, address, cpus, plugins, bar, failures, settle, directory)
    bar.set_postfix(running=0, waiting=0, failed=failures[0])
    bar.close()
    return manifest


def _run_on_ray(spec: SweepSpec, todo: list[Point], entries: dict[int, dict[str, Any]], manifest: dict[str, Any], out: Path,
                address: str | None, cpus: int | None, plugins: tuple[str, ...], bar, failures: list[int], settle, directory) -> None:
    """Each point of ``todo`` as a Ray task with the spec's resources; ``settle`` records each as it ends."""
    import ray

    options: dict[str, Any] = {"num_cpus": spec.resources.cpus, "num_gpus": spec.resources.gpus, "max_retries": 0}
    if spec.resources.memory_gb is not None:
        options["memory"] = int(spec.resources.memory_gb * 2**30)
    started_here = not ray.is_initialized()
    if started_here:
        if address is not None:
            _match_ray_auth(address)
        with warnings.catch_warnings():  # Ray starts its processes by fork + exec: nothing of JAX's runs in them
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            ray.init(address=address, num_cpus=None if address else cpus, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
    try:
        _check_feasible(spec, ray.cluster_resources(), address)
        # fresh_worker: the worker exits after its point (max_calls is a remote() setting, not an option)
        task = (ray.remote(max_calls=1)(run_point) if spec.resources.fresh_worker else ray.remote(run_point)).options(**options)
        cwd = os.getcwd()
        running = {}
        for p in todo:
            running[task.remote(p.config.model_dump(mode="json"), directory(p), cwd, plugins)] = p
            entries[p.index].update(status="submitted", error=None)
        write_json_atomic(out / MANIFEST, manifest)
        began = time.time()
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            started = sum(_written_since(log_path(out / entries[p.index]["dir"]), began) for p in running.values())
            bar.set_postfix(running=started, waiting=len(running) - started, failed=failures[0], refresh=False)
            if not ready:
                continue
            p = running.pop(ready[0])
            try:
                result, error = ray.get(ready[0]), None
            except ray.exceptions.RayError as exc:  # the point raised, or its worker died (killed, out of memory)
                result, error = None, exc.cause if getattr(exc, "cause", None) is not None else exc
            settle(p, result, error)
    finally:
        if started_here:
            ray.shutdown()


def _match_ray_auth(address: str, timeout: float = 10.0) -> None:
    """Give this driver the Ray head's authentication mode before ``ray.init(address=...)``.

    Ray 2.60's ``ray start --head`` turns token authentication on whenever a token exists on
    the head (``~/.ray/auth_token``, which any local ``ray.init()`` creates, or
    ``RAY_AUTH_TOKEN[_PATH]``), but a driver connecting to ``HOST:PORT`` never turns it on by
    itself, and a driver in token mode cannot serve a head without it. So ask the head: its GCS
    answers ``GetClusterId`` without a token unless token auth is on. Ray reads
    ``RAY_AUTH_MODE`` when it is imported, hence the re-initialised config. A head that does
    not answer is refused at once (``ray.init`` would retry for minutes)."""
    if "://" in address or address in ("auto", "local"):
        return
    import grpc
    from ray._raylet import AuthenticationTokenLoader, Config
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout)
            mode = "disabled"
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                raise SweepError(f"no Ray head answers at {address}: start one there (ray start --head) or fix --address") from None
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                return  # let ray.init say what is wrong
            mode = "token"
    if mode == "token" and not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                                or (Path.home() / ".ray" / "auth_token").is_file()):
        raise SweepError(f"the Ray head at {address} uses token authentication and this machine has no token: copy the "
                         "output of `ray get-auth-token` on the head to ~/.ray/auth_token here (or set RAY_AUTH_TOKEN)")
    if os.environ.get("RAY_AUTH_MODE") != mode:
        os.environ["RAY_AUTH_MODE"] = mode
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()  # forget a token an earlier local ray.init loaded


def _check_feasible(spec: SweepSpec, cluster: dict[str, float], address: str | None) -> None:
    """Refuse a point that no node could run (Ray would wait for it for ever)."""
    where = f"the Ray cluster at {address}" if address else "the local Ray"
    for name, key, want in (("cpus", "CPU", spec.resources.cpus), ("gpus", "GPU", spec.resources.gpus)):
        have = cluster.get(key, 0.0)
        if want > have:
            raise SweepError(f"each point asks for resources.{name}: {want:g}, but {where} has {have:g} in all; "
                             f"lower resources.{name}" + ("" if address or name == "gpus" else " or raise --cpus"))


def _written_since(path: Path, moment: float) -> bool:
    """Whether ``path`` exists and was written at or after ``moment`` (a point's log: it has begun)."""
    return path.is_file() and path.stat().st_mtime >= moment


def _finished(out: Path, entry: dict[str, Any]) -> bool:
    """Whether a point's run is complete on disk (the manifest may lag behind a kill)."""
    return read_status(out / entry["dir"]).get("status") == "complete"

