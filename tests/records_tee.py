"""A run that writes its records in both formats at once, to check that the columnar
file holds exactly what the JSON-lines writer writes for the same queries.

``with both_formats():`` makes every ``discover`` in the block keep, beside its
``records.arrow``, the JSON lines its outcomes give (``RUN_DIR.reference.jsonl``, outside
the run directory); :func:`assert_columns_hold_the_lines` then compares ``fadejax export
--format jsonl`` of the run with them, byte for byte. Runs in the block must not resume.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

import fadejax.stages.discover as discover_stage
from fadejax.engine.store.records import ArrowRecordWriter, RecordWriter, open_record_writer
from fadejax.stages.export import export_records


def reference_lines(run_dir: Path) -> Path:
    return Path(run_dir).with_name(Path(run_dir).name + ".reference.jsonl")


class _BothFormats(ArrowRecordWriter):
    def __init__(self, path, space, mode, truncate_to=0, names=None):
        super().__init__(path, space, mode, truncate_to, names)
        self._lines_writer = RecordWriter(reference_lines(Path(path).parent), space, mode, truncate_to, names)

    def _append(self, iterations):
        super()._append(iterations)
        self._lines_writer._append(iterations)

    def close(self):
        super().close()
        self._lines_writer.close()


@contextlib.contextmanager
def both_formats():
    def opened(run_dir, space, mode, *, record_format, truncate_to=0, names=None):
        assert record_format == "arrow" and not truncate_to, "both_formats() is for fresh columnar runs"
        return _BothFormats(Path(run_dir) / "records.arrow", space, mode, truncate_to, names)

    assert open_record_writer is discover_stage.open_record_writer
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(discover_stage, "open_record_writer", opened)
        yield


def assert_columns_hold_the_lines(run_dir: Path, tmp_path: Path) -> None:
    """``fadejax export --format jsonl`` of the run equals the lines written beside it."""
    path, rows = export_records(run_dir, "jsonl", tmp_path / "export.jsonl")
    reference = reference_lines(run_dir).read_bytes()
    assert rows == reference.count(b"\n") > 0
    assert path.read_bytes() == reference
