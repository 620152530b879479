"""``fadejax discover``: run discovery into a run directory, with checkpoints and resume."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orbax.checkpoint as ocp
from tqdm import tqdm

from fadejax import __version__
from fadejax.engine.config import ConfigError, ExperimentConfig
from fadejax.engine.checkpoints import build_discovery, checkpoint_manager, restore_latest, save_checkpoint
from fadejax.engine.loop import Discovery, LoopState
from fadejax.engine.store.dirlock import DirectoryLock, refuse_if_held
from fadejax.engine.store.learning_log import METRICS_FILE, LearningLog, Sink, StageTimes
from fadejax.engine.store.records import BackgroundRecordWriter, RecordWriter, open_record_writer, query_columns, query_drawn, records_path
from fadejax.engine.store.arrow_records import compact_to_parquet
from fadejax.engine.store.record_fields import ARROW_RECORDS_FILE
from fadejax.engine.store.run_check import RECORDS_DIGEST, file_sha256, records_damage
from fadejax.engine.store.rundir import STATUS_FILE, SUMMARY_FILE, RunDirError, check, create, read_status, write_json_atomic
from fadejax.engine.store.sinks import TENSORBOARD_DIR, TensorBoardSink, WandbSink
from fadejax.core.spaces import format_value
from fadejax.engine.task import AuditTask, Oracle
from fadejax.engine.build import build_task
from fadejax.engine.store.trust import trust_own_run


def _usable_metrics_length(path: Path, checkpointed: int, iteration: int, progress: bool) -> int:
    """The learning-curve length to resume from: the checkpoint's, or, if the file was
    shortened outside fadejax, its complete rows (the records, not the curves, are the
    run's record of truth: a gap in the curves does not stop a resume)."""
    size = path.stat().st_size if path.exists() else 0
    if size >= checkpointed:
        return checkpointed
    if size == 0:
        whole = 0
    else:
        with open(path, "rb") as f:
            whole = f.read().rfind(b"\n") + 1
    if progress:
        print(f"note: '{path}' is shorter than its checkpoint recorded; its learning curves go on from iteration {iteration}, "
              "with a gap before it")
    return whole


def _open_sinks(config: ExperimentConfig, run_dir: Path, status: dict[str, Any], purge_step: int | None) -> list[Sink]:
    """The config's learning-curve sinks; ``purge_step``: the first step (queries) this
    process logs when it resumes a run, from which on earlier processes' events are dropped."""
    sinks: list[Sink] = []
    if config.run.tensorboard:
        text = {"config": "    " + config.to_yaml().replace("\n", "\n    ")}  # a Markdown code block
        sinks.append(TensorBoardSink(run_dir / TENSORBOARD_DIR, purge_step, text=text))
    if config.run.wandb is not None:
        sinks.append(WandbSink(config.run.wandb, status["wandb_id"], f"{config.name}:{run_dir.name}", run_dir, config.model_dump(mode="json")))
    return sinks


def log_landscape(writer: BackgroundRecordWriter, discovery: Discovery, state: LoopState, iteration: int) -> None:
    """Queue eq. 10's policy landscape over the first two axes (the mean of ``P(a|s)`` over
    the audit's samples) as an image; computed now, drawn on the writer's thread."""
    space = discovery.task.space
    keep = list(range(min(2, space.num_axes)))
    grid = np.asarray(discovery.searcher.policy_view(state.searcher, discovery.task.observations, keep), np.float64).mean(axis=0)

    def draw() -> np.ndarray:
        from fadejax.stages.figures import landscape_image

        return landscape_image(grid, space, keep, f"eq. 10 landscape after {iteration + 1} iterations")

    writer.add_image("landscape/policy", draw)


def _save_policy(run_dir: Path, searcher_state: Any) -> None:
    """The final policy: the searcher's network parameters (its whole state if it has none)."""
    policy = {"params": searcher_state.params} if hasattr(searcher_state, "params") else searcher_state
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save((run_dir / "policy").absolute(), policy, force=True)
    checkpointer.wait_until_finished()


def iterate(discovery: Discovery, state: LoopState, writer: RecordWriter | BackgroundRecordWriter, stop: int, *, log: bool = False,
            pipeline_every: int = 0) -> Iterator[tuple[int, LoopState, dict[str, Any]]]:
    """Run iterations until ``state.iteration == stop``, writing each one's records.

    Yields ``(iteration, state after it, its outcome)``; the outcome's arrays may still be
    on the device (``np.asarray`` fetches one). Nothing here waits for the device: with a
    :class:`BackgroundRecordWriter` the records are fetched and written on its thread, and
    the host's only wait per iteration is the audited model's for its inputs.

    ``log``: also hand the writer (a :class:`BackgroundRecordWriter` with a learning log)
    the searcher's figures and each stage's time (:class:`StageTimes`) for its
    learning-curve row; the stage boundaries then wait for the device.

    ``pipeline_every``: pipeline the loop (``run.pipeline``; :meth:`Discovery.step_ahead`),
    proposing every iteration but those at multiples of ``pipeline_every`` (the checkpoint
    interval) ahead, while the model answers the one before; 0: never.
    """
    last = time.perf_counter()
    proposed = None
    for iteration in range(int(state.iteration), stop):
        times = StageTimes() if log else None
        if pipeline_every:
            # Which iterations are proposed ahead depends on the iteration number only, so a
            # run resumed from a checkpoint (a multiple of pipeline_every) repeats the same steps.
            ahead = iteration + 1 < stop and (iteration + 1) % pipeline_every != 0
            if times is not None:
                times.lag = int(proposed is not None)
            state, outcome, learner, proposed = discovery.step_ahead(state, proposed, ahead=ahead, times=times)
        else:
            state, outcome, learner = discovery.step(state, times)
        if not log:
            writer.write(iteration, outcome)
        else:
            now = time.perf_counter()
            times.seconds, last = now - last, now
            writer.write(iteration, outcome, learner, times)
        yield iteration, state, outcome


@dataclass
class RunSummary:
    run_dir: Path
    iterations: int
    queries: int
    failures: int
    top_cells: list[dict[str, Any]]
    seconds: float
    held_out_samples: int | None = None  # the N every estimated rate is over

    def as_dict(self) -> dict[str, Any]:
        return {
            "iterations": self.iterations, "queries": self.queries, "failures": self.failures,
            "failure_rate": self.failures / max(self.queries, 1), "held_out_samples": self.held_out_samples, "top_cells": self.top_cells,
        }

    def render(self) -> str:
        lines = [
            f"run {self.run_dir}: {self.iterations} iterations, {self.queries} queries, "
            f"{self.failures} failures ({100 * self.failures / max(self.queries, 1):.1f}%)",
            "top failure cells (estimated failure rate over every held-out sample, 95% interval; distinct samples asked;"
            " the ranks its interval allows where it allows more than one):",
        ]
        for row in self.top_cells:
            concepts = ", ".join(f"{k}={format_value(v)}" for k, v in row["concepts"].items())
            lo, hi = row["interval"]
            drawn = f", {row['samples_drawn']} drawn at random" if row.get("samples_drawn") else ""
            first, last = row.get("ranks", (0, 0))
            ranks = f"  ranks {first}-{last}" if last > first else ""
            lines.append(f"  cell {row['cell']:>7}  {concepts:<45} {row['estimate']:6.1%} [{lo:.1%}, {hi:.1%}]"
                         f"  ({row['samples_failed']}/{row['samples_asked']} failed{drawn}){ranks}")
        if self.top_cells and not self.top_cells[0].get("checked", False):
            lines.append("  (model-based estimates: this searcher asked no uniformly drawn samples to check them on; "
                         "see fadejax.analysis.estimates)")
        return "\n".join(lines)


def top_cells(run_dir: Path, config: ExperimentConfig, num_samples: int, k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` cells with the highest estimated failure rate over the ``num_samples`` held-out
    samples, with 95% intervals (:func:`fadejax.analysis.estimates.top_estimated_cells`)."""
    from fadejax.analysis.estimates import top_estimated_cells

    path = records_path(run_dir)
    if not path.is_file() or path.stat().st_size == 0:
        return []
    space = config.concept_space()
    rows = top_estimated_cells(*query_columns(path), num_samples, space.sizes, k, drawn=query_drawn(path))
    return [{**row, "concepts": space.describe(row["cell"])} for row in rows]


def discover(config: ExperimentConfig, run_dir: str | Path, *, resume: bool = False, oracle: Oracle | None = None, progress: bool = True, stop_after: int | None = None) -> RunSummary:
    """Run (or continue) discovery into ``run_dir``.

    Args:
      config: the validated experiment.
      run_dir: output directory (created; must not hold another run).
      resume: continue the run already in ``run_dir`` from its latest checkpoint.
      oracle: audit this callable instead of building the configured torch model.
      progress: show a progress bar and messages.
      stop_after: stop (without completing) after this many iterations of this call;
        used to simulate interruptions in tests.
    """
    run_dir = Path(run_dir)
    refuse_if_held(run_dir, "run directory")  # a live writer is named first, whatever else the directory says
    resuming = check(run_dir, config, resume)  # touches nothing
    if resuming and read_status(run_dir).get("status") == "complete":
        return _completed(run_dir, progress)
    if config.run.wandb is not None and importlib.util.find_spec("wandb") is None:
        raise ConfigError("run.wandb is set but the 'wandb' package is not installed; install it with: pip install 'fadejax[wandb]'")
    task = build_task(config, oracle=oracle, progress=progress)  # bad data or model fail here, before any write or lock file
    with DirectoryLock(run_dir, "run directory"):
        resuming = check(run_dir, config, resume)  # again: another writer may have started or finished it meanwhile
        if resuming and read_status(run_dir).get("status") == "complete":
            return _completed(run_dir, progress)
        return _discover_locked(config, run_dir, resuming, task, progress, stop_after)


def _completed(run_dir: Path, progress: bool) -> RunSummary:
    """The summary of a run that is already complete."""
    status = read_status(run_dir)
    done = json.loads((run_dir / SUMMARY_FILE).read_text()) if (run_dir / SUMMARY_FILE).is_file() else {}
    if progress:
        print(f"run '{run_dir}' is already complete.")
    return RunSummary(run_dir, status["iterations"], status["queries"], status["failures"], done.get("top_cells", []), 0.0, done.get("held_out_samples"))


def _discover_locked(config: ExperimentConfig, run_dir: Path, resuming: bool, task: AuditTask, progress: bool,
                     stop_after: int | None) -> RunSummary:
    """:func:`discover` once this process holds the run directory's lock."""
    status = read_status(run_dir)
    if not resuming:
        create(run_dir, config)
        trust_own_run(run_dir, config.model_dump(mode="json"))  # the user's own run, pinned to what it holds (SECURITY.md)
    if hasattr(task, "attach_run_dir"):  # tasks that keep files per query (generated images, ratings)
        task.attach_run_dir(run_dir)
    discovery = build_discovery(config, task)
    state = discovery.init(config.run.seed)
    manager = checkpoint_manager(run_dir)
    records_bytes, metrics_bytes = 0, 0
    restored = restore_latest(manager, state) if resuming else None
    if restored is not None:
        state, records_bytes, metrics_bytes = restored
        damage = records_damage(run_dir, discovery.num_envs, upto_bytes=records_bytes)
        if damage:  # rows the checkpoint vouches for are out of place: resuming would build on them
            raise RunDirError(f"{damage} (fadejax check '{run_dir}' lists every problem)")
        metrics_bytes = metrics_bytes or 0  # a checkpoint from before learning curves: they start here
    elif resuming and progress:
        print(f"no checkpoint in '{run_dir}' yet; starting it from the beginning")
    if config.run.wandb is not None and "wandb_id" not in status:
        status["wandb_id"] = uuid.uuid4().hex[:16]
    records = open_record_writer(run_dir, task.space, config.mode, record_format=config.run.records, truncate_to=records_bytes,
                                 names=getattr(task, "record_names", None))  # refuses shortened records before any write
    metrics_bytes = _usable_metrics_length(run_dir / METRICS_FILE, metrics_bytes, int(state.iteration), progress)
    log = LearningLog(run_dir / METRICS_FILE, num_envs=discovery.num_envs, queries=int(state.queries), failures=int(state.failures), truncate_to=metrics_bytes)
    writer = BackgroundRecordWriter(records, log=log)

    total = config.run.iterations
    start = int(state.iteration)
    bar = tqdm(total=total, initial=start, disable=not progress, unit="it", dynamic_ncols=True, desc="discover")
    began = time.perf_counter()
    queries_this_call = 0
    failures_before = int(state.failures)
    try:
        log.sinks = _open_sinks(config, run_dir, status, int(state.queries) + 1 if resuming else None)
        if resuming:
            create(run_dir, config)  # the config may differ in logging settings only (rundir.check): keep the new ones
            trust_own_run(run_dir, config.model_dump(mode="json"))
        status.update({"status": "running", "fadejax_version": __version__, "model": task.info, "iterations_planned": total})
        write_json_atomic(run_dir / STATUS_FILE, status)
        every = config.run.landscape_every if config.mode == "macro" and log.sinks else 0
        stop = total if stop_after is None else min(total, start + stop_after)
        pipeline_every = config.run.checkpoint_every if config.run.pipeline else 0
        for iteration, state, _ in iterate(discovery, state, writer, stop, log=True, pipeline_every=pipeline_every):
            failures = failures_before + writer.failures  # as fetched by the writer so far: a few iterations behind at most
            queries_this_call += discovery.num_envs
            if every and (iteration + 1) % every == 0:
                log_landscape(writer, discovery, state, iteration)
            if (iteration + 1) % config.run.checkpoint_every == 0:
                save_checkpoint(manager, state, writer)
            elapsed = time.perf_counter() - began
            rate = queries_this_call / max(elapsed, 1e-9)
            speed = f"{rate:.0f} q/s" if rate >= 10 else f"{1 / rate:.2f} s/query"  # slow audits (diffusion) read better per query
            bar.set_postfix(speed=speed, failures=failures, refresh=False)
            bar.update(1)
    except KeyboardInterrupt:
        # No checkpoint here: the interrupt may fall between an iteration's records and
        # its state. Resume restarts from the last periodic checkpoint and replays the rest.
        bar.close()
        manager.wait_until_finished()
        writer.close(failed=True)
        print(f"\ninterrupted; continue with: fadejax discover --config ... --out {run_dir} --resume")
        raise
    except BaseException:
        bar.close()
        with contextlib.suppress(Exception):  # the loop's own error is the one to report
            writer.close(failed=True)
        raise
    finally:
        if hasattr(task, "close"):  # e.g. stop a rating page
            task.close()
    bar.close()
    finished = int(state.iteration) >= total
    if finished or not config.run.pipeline or int(state.iteration) % config.run.checkpoint_every == 0:
        # (a pipelined run stopped between checkpoints resumes from the last one: its next
        # iteration was to be proposed ahead, from a state no checkpoint keeps)
        save_checkpoint(manager, state, writer, force=True)
    manager.wait_until_finished()
    manager.close()
    writer.close()
    seconds = time.perf_counter() - began
    summary = RunSummary(run_dir, int(state.iteration), int(state.queries), int(state.failures), top_cells(run_dir, config, task.num_samples), seconds,
                         task.num_samples)
    status.update({"iterations": summary.iterations, "queries": summary.queries, "failures": summary.failures})
    stream = run_dir / ARROW_RECORDS_FILE
    if finished:
        _save_policy(run_dir, state.searcher)
        write_json_atomic(run_dir / SUMMARY_FILE, summary.as_dict())
        if stream.is_file():  # a complete run's records, compacted (a crash before the status below redoes it on resume)
            compact_to_parquet(stream)
        status["status"] = "complete"
        status[RECORDS_DIGEST] = file_sha256(records_path(run_dir))  # what fadejax check compares the records with
    write_json_atomic(run_dir / STATUS_FILE, status)
    if finished and stream.is_file():
        stream.unlink()  # the status now names the Parquet file's digest
    return summary
