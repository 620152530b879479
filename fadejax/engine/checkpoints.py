"""Loop state on disk: the searcher and loop a config describes, and the orbax
checkpoints of a run directory that resume it (``RUN/checkpoints``).

Each checkpoint holds the loop state (searcher included) and the byte lengths of the
records and the learning curve it matches, so a resumed run truncates both to exactly
what the checkpoint saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from fadejax.engine.config import ExperimentConfig
from fadejax.engine.loop import Discovery, LoopState
from fadejax.engine.store.dirlock import check_held
from fadejax.engine.store.records import BackgroundRecordWriter
from fadejax.engine.store.rundir import RunDirError
from fadejax.engine.task import AuditTask, is_deterministic
from fadejax.searchers import REGISTRY as SEARCHERS
from fadejax.searchers.base import Walk


def build_discovery(config: ExperimentConfig, task: AuditTask) -> Discovery:
    """The searcher and loop a config describes, over an already built task."""
    micro = config.micro_space() if config.mode == "micro" else None
    num_actions = micro.num_actions if micro is not None else task.space.num_actions
    obs_dim = int(task.observations.shape[1]) + (task.space.num_axes + 1 if micro is not None else 0)  # see Discovery.observe
    _, searcher_cls = SEARCHERS[config.searcher["kind"]]
    searcher = searcher_cls(
        config.searcher_config(), num_actions=num_actions, obs_dim=obs_dim,
        num_samples=task.num_samples, total_iterations=config.run.iterations, num_envs=config.run.num_envs,
        sizes=task.space.sizes if micro is None else (num_actions,),
        walk=None if micro is None else Walk(task.space.sizes, micro.start, config.micro.max_steps),
        deterministic=is_deterministic(task),
    )
    return Discovery(
        task, searcher, mode=config.mode, num_envs=config.run.num_envs,
        micro=micro, max_steps=config.micro.max_steps, alpha=config.micro_alpha, devices=config.run.device_list(),
    )


def checkpoint_manager(run_dir: Path) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
    # The handler named here lets restore_latest read a checkpoint's tree before restoring it.
    return ocp.CheckpointManager((run_dir / "checkpoints").absolute(), options=options, item_handlers=ocp.StandardCheckpointHandler())


def restore_latest(manager: ocp.CheckpointManager, template: LoopState) -> tuple[LoopState, int, int | None] | None:
    """The latest checkpoint's ``(loop state, records length, learning-curve length)``;
    the last is None for a checkpoint written before runs kept learning curves."""
    step = manager.latest_step()
    if step is None:
        return None
    metadata = manager.item_metadata(step) or {}
    _check_state_layout(metadata, template, manager.directory)
    lengths = {"records_bytes": np.zeros((), np.int64)}
    if "metrics_bytes" in metadata:
        lengths["metrics_bytes"] = np.zeros((), np.int64)
    target = {"loop": template, **lengths}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    metrics_bytes = int(restored["metrics_bytes"]) if "metrics_bytes" in restored else None
    return restored["loop"], int(restored["records_bytes"]), metrics_bytes


def _leaf_names(tree: Any) -> set[str]:
    """Every leaf's path in ``tree`` as ``a.b.c`` (attribute and key paths alike)."""
    return {".".join(str(getattr(k, "name", getattr(k, "key", k))) for k in path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}


class CheckpointLayoutError(RunDirError):
    """A run's checkpoint holds a loop state of another layout than this version builds."""


def _check_state_layout(metadata: Any, template: LoopState, where: Path) -> None:
    """Refuse, in words, a checkpoint whose loop state has other fields than this version's
    (e.g. written before a searcher kept another array); orbax would only say the trees differ."""
    if "loop" not in metadata:
        return
    on_disk, expected = _leaf_names(metadata["loop"]), _leaf_names(template)
    if on_disk != expected:
        missing, extra = sorted(expected - on_disk), sorted(on_disk - expected)
        raise CheckpointLayoutError(
            f"the checkpoints in '{where}' hold a loop state of another layout than this fadejax's "
            f"(missing: {', '.join(missing) or 'none'}; not expected: {', '.join(extra) or 'none'}): they were written by "
            "another version of fadejax or of the run's searcher. Resume the run with the version that wrote it, "
            "or start it again in a new --out"
        )


def load_latest_state(run_dir: str | Path, discovery: Discovery) -> LoopState:
    """The loop state (searcher included) of a run directory's latest checkpoint."""
    manager = checkpoint_manager(Path(run_dir))
    try:
        restored = restore_latest(manager, discovery.init(0))
    finally:
        manager.close()
    if restored is None:
        raise FileNotFoundError(f"run directory '{run_dir}' has no checkpoint")
    return restored[0]


def save_checkpoint(manager: ocp.CheckpointManager, state: LoopState, writer: BackgroundRecordWriter, force: bool = False) -> None:
    writer.sync()
    check_held(Path(manager.directory))  # a holder whose lease lapsed saves nothing (fadejax.engine.store.dirlock)
    if int(state.iteration) in manager.all_steps():  # e.g. the final save right after a periodic one
        return
    # Save a copy: the next iteration donates the live state's buffers while orbax may still be writing.
    snapshot = jax.tree.map(jnp.copy, state)
    tree = {"loop": snapshot, "records_bytes": np.asarray(writer.offset, np.int64), "metrics_bytes": np.asarray(writer.log_offset, np.int64)}
    manager.save(int(state.iteration), args=ocp.args.StandardSave(tree), force=force)
