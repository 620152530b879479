"""Append-only files a checkpoint can cut back to (the records, the learning curves).

A checkpoint stores each file's byte length after everything its state has done was
written and synced; resuming truncates the file to that length, so lines written after
the checkpoint by a run that was then killed are dropped and written again exactly once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from fadejax.engine.store.dirlock import covering


class AppendOnlyFile:
    """A binary file opened for appending, first cut back to ``truncate_to`` bytes.

    Args:
      path: the file (created if missing).
      truncate_to: the length a checkpoint recorded; the file must be at least this long.
      what: what the file holds, for the error message (e.g. ``"records"``).
      error: the exception class raised when the file is shorter than ``truncate_to``.
    """

    def __init__(self, path: Path, truncate_to: int = 0, *, what: str, error: type[Exception] = ValueError):
        self.path = Path(path)
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < truncate_to:
            raise error(
                f"'{self.path}' holds {size} bytes but the checkpoint recorded {truncate_to}; "
                f"the {what} were shortened outside fadejax, so this run cannot resume exactly"
            )
        self._lock = covering(self.path)  # the directory lock this process holds over the file, if any
        self._file = open(self.path, "a+b")
        self._file.truncate(truncate_to)
        self._file.seek(truncate_to)

    @property
    def offset(self) -> int:
        """Bytes written so far (complete lines only: each write is whole lines)."""
        return self._file.tell()

    def append(self, data: bytes) -> None:
        """Append ``data`` and flush it to the operating system (never after this process's
        lease on the directory lapsed: :meth:`fadejax.engine.store.dirlock.DirectoryLock.check`)."""
        if self._lock is not None:
            self._lock.check()
        self._file.write(data)
        self._file.flush()

    def sync(self) -> None:
        """Flush to stable storage (called at checkpoints)."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def json_lines(path: Path) -> Iterator[tuple[int, Any, bytes]]:
    """Each complete line of an append-only JSON-lines file: ``(line number, its JSON value
    or None if it is not JSON or not UTF-8, the raw line)``. A final line without its
    newline, cut off by a kill, ends the file."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                return
            try:
                value = json.loads(line)
            except ValueError:
                value = None
            yield number, value, line
