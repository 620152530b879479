"""Where a run's learning curves are mirrored: TensorBoard event files and Weights & Biases.

Both take the rows of :mod:`fadejax.engine.store.learning_log` with the number of queries as the step.
The run directory's ``metrics.jsonl`` stays the record of truth; these are views of it.

* :class:`TensorBoardSink` writes standard event files with tensorboardX (no TensorFlow):
  one event per iteration holding all its scalars, so logging costs one small write per
  iteration. A resumed run opens a new event file whose first event purges the steps at
  and after the resume point (TensorBoard's own mechanism for restarted jobs), so the
  iterations a killed run wrote past its last checkpoint are not shown twice.
* :class:`WandbSink` logs to Weights & Biases (the optional ``wandb`` extra; off unless a
  config's ``run.wandb`` names a project).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

TENSORBOARD_DIR = "tensorboard"


class TensorBoardSink:
    """Event files in ``logdir``; ``purge_step``: the first step this process writes, when
    it resumes a run (earlier files' events from that step on are then discarded);
    ``text``: tag -> Markdown logged once (e.g. the resolved config).

    Writes synchronously with tensorboardX's ``EventsWriter`` on the caller's thread (the
    record writer's), rather than through ``SummaryWriter``'s queue and thread of its own,
    which cost the loop more than the writing itself.
    """

    def __init__(self, logdir: Path, purge_step: int | None = None, text: Mapping[str, str] | None = None):
        summary, EventsWriter, Event, SessionLog = _tensorboardx()

        self._summary, self._event = summary, Event
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        # The file name carries the process and the step, so a resume within the same
        # second as the run it continues does not overwrite that run's file.
        self._events = EventsWriter(str(logdir / "events"), filename_suffix=f".{os.getpid()}.{purge_step or 0}")
        if purge_step is not None:  # TensorBoard drops earlier files' events from this step on
            self._events.write_event(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START), wall_time=time.time()))
        for tag, body in (text or {}).items():
            self._write(purge_step or 0, summary.text(tag, body))

    def _write(self, step: int, summary: Any) -> None:
        self._events.write_event(self._event(step=int(step), summary=summary, wall_time=time.time()))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        value = self._summary.Summary.Value
        self._write(step, self._summary.Summary(value=[value(tag=tag, simple_value=float(v)) for tag, v in values.items()]))

    def image(self, step: int, tag: str, rgb: np.ndarray) -> None:
        self._write(step, self._summary.image(tag, rgb, dataformats="HWC"))

    def flush(self) -> None:
        self._events.flush()

    def close(self, failed: bool = False) -> None:
        self._events.close()


def _tensorboardx():
    """tensorboardX's summary module, ``EventsWriter``, ``Event`` and ``SessionLog``, imported
    without torch: tensorboardX's package imports torch, when it is installed, only to accept
    torch tensors, which fadejax never passes; in a process without torch (a recorded run)
    that import alone cost 2.4 s of its start (measured on this CPU)."""
    import sys

    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None  # `import torch` raises ImportError, which tensorboardX handles
    try:
        from tensorboardX import summary
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event, SessionLog
    finally:
        if blocked and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return summary, EventsWriter, Event, SessionLog


class WandbSink:
    """A Weights & Biases run; ``settings``: the config's ``run.wandb`` (project, entity,
    mode, tags); ``run_id`` stays the same across resumes of one run directory."""

    def __init__(self, settings: Any, run_id: str, name: str, directory: Path, config: Mapping[str, Any]):
        try:
            import wandb
        except ImportError:
            raise ImportError("run.wandb is set but the 'wandb' package is not installed: pip install 'fadejax[wandb]'") from None
        self._wandb = wandb
        self._run = wandb.init(
            project=settings.project, entity=settings.entity, mode=settings.mode, tags=list(settings.tags),
            id=run_id, name=name, resume="allow", dir=str(directory), config=dict(config),
        )

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self._run.log(dict(values), step=step)

    def image(self, step: int, tag: str, rgb: np.ndarray) -> None:
        self._run.log({tag: self._wandb.Image(rgb)}, step=step)

    def flush(self) -> None:
        pass  # wandb streams on its own process

    def close(self, failed: bool = False) -> None:
        self._run.finish(exit_code=1 if failed else 0)  # a crashed or interrupted run does not show as finished
