"""Where a run's learning curves are mirrored: TensorBoard event files and Weights & Biases.

Both take the rows of :mod:`fadejax.learning_log` with the number of queries as the step.
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
from pathlib import Path
from typing import Any, Mapping

import numpy as np

TENSORBOARD_DIR = "tensorboard"


class TensorBoardSink:
    """Event files in ``logdir``; ``purge_step``: the first step this process writes, when
    it resumes a run (earlier files' events from that step on are then discarded)."""

    def __init__(self, logdir: Path, purge_step: int | None = None, text: Mapping[str, str] | None = None):
        from tensorboardX import SummaryWriter

        # The file name carries the process and the step, so a resume within the same
        # second as the run it continues does not overwrite that run's file.
        suffix = f".{os.getpid()}.{purge_step or 0}"
        self._writer = SummaryWriter(str(logdir), purge_step=purge_step, max_queue=1000, flush_secs=10, filename_suffix=suffix)
        for tag, body in (text or {}).items():
            self._writer.add_text(tag, body, global_step=purge_step or 0)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        from tensorboardX.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()])
        self._writer._get_file_writer().add_summary(summary, step)

    def image(self, step: int, tag: str, rgb: np.ndarray) -> None:
        self._writer.add_image(tag, rgb, step, dataformats="HWC")

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


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

    def close(self) -> None:
        self._run.finish()
