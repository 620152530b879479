"""One check shared by every searcher's resume test: an interrupted run, resumed, ends
exactly as the uninterrupted one."""

import json
from pathlib import Path

from fadejax.engine.store.learning_log import TIMING_COLUMNS, read_metrics
from fadejax.stages.discover import discover
from fadejax.engine.checkpoints import checkpoint_manager
from fadejax.engine.store.record_fields import records_path


def reproducible_rows(run_dir: Path) -> list[dict]:
    """A run's learning-curve rows without the wall-clock columns."""
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in read_metrics(run_dir / "metrics.jsonl")]


def drop_latest_checkpoint(run_dir: Path) -> int:
    """Delete a stopped run's last checkpoint (the one taken when it stopped), as if it had
    been killed after its last periodic one; returns the iteration it now resumes from."""
    manager = checkpoint_manager(run_dir)
    try:
        manager.delete(manager.latest_step())
        return manager.latest_step() or 0
    finally:
        manager.close()


def assert_resumes_exactly(config, root: Path, oracle, stop_after: int) -> None:
    """Run ``config`` whole into ``root/whole``; run it again into ``root/cut``, stopped after
    ``stop_after`` iterations (between two checkpoints) and its last checkpoint dropped, as
    if killed, then resumed: the records must be the same bytes, the summaries the same
    numbers, and the learning curves one row per iteration with the same reproducible
    figures (the rows written after the periodic checkpoint are cut back, not repeated)."""
    whole = discover(config, root / "whole", oracle=oracle, progress=False)
    discover(config, root / "cut", oracle=oracle, progress=False, stop_after=stop_after)
    assert json.loads((root / "cut" / "run.json").read_text())["status"] == "running"
    assert drop_latest_checkpoint(root / "cut") < stop_after
    resumed = discover(config, root / "cut", oracle=oracle, resume=True, progress=False)
    assert records_path(root / "cut").read_bytes() == records_path(root / "whole").read_bytes()
    assert (resumed.queries, resumed.failures, resumed.top_cells) == (whole.queries, whole.failures, whole.top_cells)
    rows = reproducible_rows(root / "cut")
    assert [row["iteration"] for row in rows] == list(range(config.run.iterations))
    assert rows == reproducible_rows(root / "whole")
