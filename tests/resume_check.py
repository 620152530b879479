"""One check shared by every searcher's resume test: an interrupted run, resumed, ends
exactly as the uninterrupted one."""

import json
from pathlib import Path

from fadejax.run import discover


def assert_resumes_exactly(config, root: Path, oracle, stop_after: int) -> None:
    """Run ``config`` whole into ``root/whole``; run it again into ``root/cut``, stopped after
    ``stop_after`` iterations (between two checkpoints), then resumed: the records must be
    the same bytes and the summaries the same numbers."""
    whole = discover(config, root / "whole", oracle=oracle, progress=False)
    discover(config, root / "cut", oracle=oracle, progress=False, stop_after=stop_after)
    assert json.loads((root / "cut" / "run.json").read_text())["status"] == "running"
    resumed = discover(config, root / "cut", oracle=oracle, resume=True, progress=False)
    assert (root / "cut" / "records.jsonl").read_bytes() == (root / "whole" / "records.jsonl").read_bytes()
    assert (resumed.queries, resumed.failures, resumed.top_cells) == (whole.queries, whole.failures, whole.top_cells)
