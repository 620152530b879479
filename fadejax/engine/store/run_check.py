"""Is a run directory what its writer left? ``fadejax check RUN_DIR`` and the checks readers run first.

A run's records are ``iterations x num_envs`` rows in order: row ``k`` holds iteration
``k // num_envs`` and environment ``k % num_envs``. Two writers interleaving, a row pasted
twice or one deleted break that order, and every figure computed from the file would be
wrong without a word. :func:`records_damage` names the first row out of place in one line;
:func:`digest_damage` catches what keeps the order (a row replaced by another run's) in a
complete run, whose ``run.json`` keeps the SHA-256 of the records its writer left; :func:`check_run` checks the whole directory: its config, its records,
their agreement with the run's status and latest checkpoint, its learning curves and its
report. ``summarize`` refuses damaged records before reporting a figure.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from fadejax.engine.store.learning_log import METRICS_FILE
from fadejax.engine.store.record_columns import RecordRows, is_columnar, read_columns, record_rows
from fadejax.engine.store.records import RecordsError, read_records, records_path
from fadejax.engine.store.rundir import STATUS_FILE, read_status


def _positions(path: Path) -> tuple[np.ndarray, np.ndarray, RecordRows]:
    """Every complete record's ``(iteration, env)``, ``(Q,)`` int64 each, and the file's lines."""
    fast = read_columns(path, {"iteration": "int64", "env": "int64"})
    if fast is not None:
        return fast[0]["iteration"], fast[0]["env"], fast[1]
    iteration, env = [], []
    for number, record in enumerate(read_records(path), 1):
        values = (record.get("iteration"), record.get("env"))
        if not all(type(v) is int and v >= 0 for v in values):
            raise RecordsError(f"'{path}' record {number} lacks a valid iteration or env")
        iteration.append(values[0])
        env.append(values[1])
    return np.asarray(iteration, np.int64), np.asarray(env, np.int64), record_rows(path)


def records_damage(run_dir: Path, num_envs: int, upto_bytes: int | None = None) -> str | None:
    """One line naming the first record of ``run_dir`` (up to byte ``upto_bytes``, e.g. a
    checkpoint's length) whose ``(iteration, env)`` is not where the run wrote it, or ``None``.
    A short last iteration (a run killed while writing it) is not damage."""
    path = records_path(Path(run_dir))
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        iteration, env, lines = _positions(path)
    except RecordsError:  # an unreadable record: each reader names it in its own words (check_run too)
        return None
    if upto_bytes is not None:
        rows = int(np.searchsorted(lines.ends, upto_bytes))  # lines ending before the checkpoint's length
        iteration, env = iteration[:rows], env[:rows]
    k = np.arange(iteration.size)
    bad = np.flatnonzero((iteration != k // num_envs) | (env != k % num_envs))
    if not bad.size:
        return None
    i = int(bad[0])
    seen = np.any((iteration[:i] == iteration[i]) & (env[:i] == env[i]))
    kind = ("it repeats an earlier row (two writers, or a row copied)" if seen
            else "a row before it is missing" if (iteration[i], env[i]) > (k[i] // num_envs, k[i] % num_envs)
            else "it is out of place (a row from another run?)")
    unit = "record" if is_columnar(path) else "line"
    return (f"'{path}' is damaged: {unit} {i + 1} holds (iteration {iteration[i]}, env {env[i]}) where (iteration "
            f"{k[i] // num_envs}, env {k[i] % num_envs}) belongs: {kind}. Its figures would be wrong; restore the run "
            f"from a copy or run it again")


#: ``run.json``'s field holding the SHA-256 of a complete run's records, as its writer left them
RECORDS_DIGEST = "records_sha256"


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for piece in iter(lambda: file.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def digest_damage(run_dir: Path, status: dict) -> str | None:
    """One line if a complete run's records differ from the bytes its writer left (``run.json``
    keeps their SHA-256: a row replaced by another run's, which keeps the order, shows here)."""
    path = records_path(Path(run_dir))
    wanted = status.get(RECORDS_DIGEST)
    if status.get("status") != "complete" or not isinstance(wanted, str) or not path.is_file():
        return None
    if file_sha256(path) != wanted:
        return (f"'{path}' is damaged: its bytes differ from those the complete run wrote (SHA-256 in {STATUS_FILE}); "
                "its figures would be wrong; restore the run from a copy or run it again")
    return None


def _checkpoint_lengths(run_dir: Path) -> tuple[int, int] | None:
    """The latest checkpoint's ``(iteration, records length in bytes)``, or ``None`` without one."""
    import orbax.checkpoint as ocp

    directory = (Path(run_dir) / "checkpoints").absolute()
    if not directory.is_dir():
        return None
    with ocp.CheckpointManager(directory, item_handlers=ocp.StandardCheckpointHandler()) as manager:
        step = manager.latest_step()
        if step is None:
            return None
        tree = manager.restore(step)
    return int(step), int(np.asarray(tree["records_bytes"]))


def check_run(run_dir: str | Path, trust_code: bool = False) -> list[str]:
    """Every problem found in ``run_dir``, one line each (empty: the run is sound)."""
    from fadejax.engine.store.rundir import RunReadError, read_run_config

    run_dir = Path(run_dir)
    try:
        config = read_run_config(run_dir, trust_code=trust_code)
    except RunReadError as exc:
        return [f"config: {exc}"]
    num_envs = config.run.num_envs
    problems = []
    status = read_status(run_dir)
    path = records_path(run_dir)
    if path.is_file():
        try:
            _positions(path)
        except RecordsError as exc:
            problems.append(f"records: {exc}")
    damage = records_damage(run_dir, num_envs) or digest_damage(run_dir, status)
    if damage:
        problems.append(f"records: {damage}")
    try:
        rows = record_rows(path).ends.size if path.is_file() else 0
    except RecordsError:  # named above
        rows = 0
    if status.get("status") == "complete":
        planned = int(status.get("iterations", -1)) * num_envs
        if rows != planned or rows != status.get("queries"):
            problems.append(f"records: {rows} rows, but {STATUS_FILE} says the complete run made {status.get('queries')} queries "
                            f"({status.get('iterations')} iterations x {num_envs} environments)")
        elif not damage:
            failed = read_columns(path, {"failed": "bool"})
            count = int(failed[0]["failed"].sum()) if failed is not None else sum(bool(r.get("failed")) for r in read_records(path))
            if count != status.get("failures"):
                problems.append(f"records: {count} failing rows, but {STATUS_FILE} says {status.get('failures')} failures")
    try:
        checkpoint = _checkpoint_lengths(run_dir)
    except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is a finding, not a crash
        problems.append(f"checkpoint: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
        checkpoint = None
    if checkpoint is not None and path.suffix == ".parquet":  # compacted when complete: rows, not bytes, to compare
        step, _ = checkpoint
        if rows != step * num_envs:
            problems.append(f"checkpoint: iteration {step}, but the compacted records hold {rows} rows, not {step * num_envs}")
    elif checkpoint is not None:
        step, length = checkpoint
        size = path.stat().st_size if path.is_file() else 0
        try:
            lines = record_rows(path) if path.is_file() else None
        except RecordsError:
            lines = None
        covered = int(np.searchsorted(lines.ends, length)) if lines is not None else 0
        if size < length:
            problems.append(f"checkpoint: iteration {step} recorded {length} bytes of records, but the file holds {size}: shortened")
        elif covered != step * num_envs or (length and lines is not None and (covered == 0 or lines.ends[covered - 1] + 1 != length)):
            problems.append(f"checkpoint: iteration {step} ends its records at byte {length}, which is not the end of row "
                            f"{step * num_envs} ({covered} rows end before it)")
    problems += _curve_problems(run_dir, rows // num_envs)
    problems += _report_problems(run_dir, rows, status)
    return problems


def _curve_problems(run_dir: Path, iterations: int) -> list[str]:
    """The learning curves: one row per iteration, 0, 1, 2, ... (a run killed after its last
    checkpoint may have a few more rows than whole iterations of records, never fewer)."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    numbers = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            numbers.append(int(json.loads(line)["iteration"]))
        except (ValueError, KeyError, TypeError):
            return [f"curves: '{path}' line {number} is not a learning-curve row"]
    if numbers != list(range(len(numbers))):
        first = next(i for i, n in enumerate(numbers) if n != i)
        return [f"curves: '{path}' line {first + 1} is iteration {numbers[first]} where iteration {first} belongs"]
    if len(numbers) < iterations:
        return [f"curves: {len(numbers)} rows for {iterations} iterations of records"]
    return []


def _report_problems(run_dir: Path, rows: int, status: dict) -> list[str]:
    """A report written by ``summarize`` into the run (``report/summary.json``) counts the records' queries."""
    path = run_dir / "report" / "summary.json"
    if not path.is_file() or status.get("status") != "complete":
        return []
    try:
        queries = json.loads(path.read_bytes())["counts"]["queries"]
    except (ValueError, KeyError, TypeError):
        return [f"report: '{path}' is not a report's summary"]
    if queries != rows:
        return [f"report: '{path}' counts {queries} queries, the records {rows}: summarize the run again"]
    return []
