"""The task a config describes: its audit's, or a recording replayed in its place."""

from __future__ import annotations

from typing import Any

from fadejax.engine.config import ExperimentConfig
from fadejax.engine.recording import replay
from fadejax.engine.task import AuditTask


def build_task(config: ExperimentConfig, oracle: Any = None, progress: bool = True) -> AuditTask:
    """The task of the config's audit: its data and audited model (``oracle`` replaces the
    model where the audit allows it). With ``config.recording`` set, neither is loaded: the
    recording answers every query."""
    if config.recording is not None:
        return replay(config, config.recording)
    return config.audit.build_task(config, oracle=oracle, progress=progress)
