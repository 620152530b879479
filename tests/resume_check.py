"""One check shared by every searcher's resume test: an interrupted run, resumed, ends
exactly as the uninterrupted one."""

import json
from pathlib import Path

from fadejax.learning_log import TIMING_COLUMNS, read_metrics
from fadejax.run import discover


def reproducible_rows(run_dir: Path) -> list[dict]:
    """A run's learning-curve rows without the wall-clock columns."""
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in read_metrics(run_dir / "metrics.jsonl")]


def assert_resumes_exactly(config, root: Path, oracle, stop_after: int) -> None:
    """Run ``config`` whole into ``root/whole``; run it again into ``root/cut``, stopped after
    ``stop_after`` iterations (between two checkpoints), then resumed: the records must be
    the same bytes, the summaries the same numbers, and the learning curves one row per
    iteration with the same reproducible figures."""
    whole = discover(config, root / "whole", oracle=oracle, progress=False)
    discover(config, root / "cut", oracle=oracle, progress=False, stop_after=stop_after)
    assert json.loads((root / "cut" / "run.json").read_text())["status"] == "running"
    resumed = discover(config, root / "cut", oracle=oracle, resume=True, progress=False)
    assert (root / "cut" / "records.jsonl").read_bytes() == (root / "whole" / "records.jsonl").read_bytes()
    assert (resumed.queries, resumed.failures, resumed.top_cells) == (whole.queries, whole.failures, whole.top_cells)
    rows = reproducible_rows(root / "cut")
    assert [row["iteration"] for row in rows] == list(range(config.run.iterations))
    assert rows == reproducible_rows(root / "whole")
