"""``fadejax sweep``: an experiment grid run as Ray tasks, durable and resumable.

Each point of a spec (:mod:`fadejax.sweep_spec`) is an ordinary run directory,
``OUT/points/NNNN-HASH/``, made by :func:`fadejax.run.discover` in a Ray task that
reserves the spec's resources. Without an address a local Ray starts and stops with the
command; with one, the sweep joins that cluster (every node must see ``OUT`` and the
configs' files at the same paths, e.g. a shared file system).

``OUT/sweep.json`` (the manifest) records the spec, and per point its varied values,
config hash, directory and status: ``pending``, ``submitted`` (handed to Ray; its log
file appears once it runs), ``complete`` (with its counts) or ``failed`` (with the
error). Each point's progress bar and messages go to ``points/NNNN-HASH.sweep.log``. It is rewritten atomically whenever a point
changes. Running the same command again with ``--resume`` skips complete points and
resumes the others from their checkpoints (discovery resumes exactly), so a killed
sweep finishes without repeating or duplicating anything; a spec whose points differ
from the manifest's is refused.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from fadejax.rundir import read_status, write_json_atomic
from fadejax.sweep_spec import Point, SweepError, SweepSpec, expand, read_spec

MANIFEST = "sweep.json"
POINTS = "points"
LOG = "sweep.log"


def run_point(config_data: dict[str, Any], run_dir: str, cwd: str) -> dict[str, Any]:
    """One point, inside its Ray task: discovery into ``run_dir`` (resumed if it was
    started), its progress written to ``run_dir/sweep.log``; returns the run's counts."""
    from fadejax.config import parse_config
    from fadejax.run import discover

    os.chdir(cwd)  # the configs' relative paths (a recording, data) are the driver's
    directory = Path(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with open(log_path(directory), "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        summary = discover(parse_config(data=config_data), directory, resume=True, progress=True)
    return {"iterations": summary.iterations, "queries": summary.queries, "failures": summary.failures}


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
        import json

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
    if out.exists() and any(out.iterdir()):
        raise SweepError(f"'{out}' exists and is not a sweep directory; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(Path(spec_path), spec, points)
    write_json_atomic(path, manifest)
    return spec, points, manifest


def run_sweep(spec_path: str | Path, out: str | Path, *, address: str | None = None, resume: bool = False,
              cpus: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Run every point of the spec not yet complete; returns the manifest.

    ``address``: an existing Ray cluster (``ray://...`` or ``HOST:PORT``); without it a
    local Ray starts with ``cpus`` CPUs (default: all of this machine's) and stops at the
    end. A point that raises is recorded ``failed`` with its error; the others go on.
    """
    import ray
    from tqdm import tqdm

    out = Path(out)
    spec, points, manifest = prepare(spec_path, out, resume)
    entries = {e["index"]: e for e in manifest["points"]}
    todo = [p for p in points if not _finished(out, entries[p.index])]
    for p in points:
        if p not in todo:
            entries[p.index]["status"] = "complete"
    if not todo:
        write_json_atomic(out / MANIFEST, manifest)
        return manifest
    options: dict[str, Any] = {"num_cpus": spec.resources.cpus, "num_gpus": spec.resources.gpus, "max_retries": 0}
    if spec.resources.memory_gb is not None:
        options["memory"] = int(spec.resources.memory_gb * 2**30)
    started_here = not ray.is_initialized()
    if started_here:
        with warnings.catch_warnings():  # Ray starts its processes by fork + exec: nothing of JAX's runs in them
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            ray.init(address=address, num_cpus=None if address else cpus, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
    try:
        task = ray.remote(run_point).options(**options)
        cwd = os.getcwd()
        running = {}
        for p in todo:
            ref = task.remote(p.config.model_dump(mode="json"), str((out / entries[p.index]["dir"]).resolve()), cwd)
            running[ref] = p
            entries[p.index].update(status="submitted", error=None)
        write_json_atomic(out / MANIFEST, manifest)
        done, began = len(points) - len(todo), time.time()
        bar = tqdm(total=len(points), initial=done, disable=not progress, desc="sweep", unit="point")
        failed = 0
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            started = sum(_written_since(log_path(out / entries[p.index]["dir"]), began) for p in running.values())
            bar.set_postfix(running=started, waiting=len(running) - started, failed=failed)
            if not ready:
                continue
            p = running.pop(ready[0])
            entry = entries[p.index]
            try:
                entry.update(status="complete", result=ray.get(ready[0]), error=None)
            except ray.exceptions.RayError as exc:  # the point raised, or its worker died (killed, out of memory)
                failed += 1
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                entry.update(status="failed", error=f"{type(cause).__name__}: {cause}".strip().splitlines()[0][:500])
                print(f"point {p.index} ({p.label}) failed: {entry['error']}", file=sys.stderr)
            write_json_atomic(out / MANIFEST, manifest)
            bar.update(1)
        bar.set_postfix(running=0, waiting=0, failed=failed)
        bar.close()
    finally:
        if started_here:
            ray.shutdown()
    return manifest


def _written_since(path: Path, moment: float) -> bool:
    """Whether ``path`` exists and was written at or after ``moment`` (a point's log: it has begun)."""
    return path.is_file() and path.stat().st_mtime >= moment


def _finished(out: Path, entry: dict[str, Any]) -> bool:
    """Whether a point's run is complete on disk (the manifest may lag behind a kill)."""
    return read_status(out / entry["dir"]).get("status") == "complete"

