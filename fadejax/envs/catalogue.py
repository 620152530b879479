"""Making a recorded JAX environment: a named one (:data:`fadejax.envs.names.NAMED`) or a
user's own recording with the config it was recorded from (:func:`make_from`)."""

from __future__ import annotations

from pathlib import Path

from fadejax.engine.config import ExperimentConfig, load_config
from fadejax.engine.ground_truth import landscape_key
from fadejax.engine.recording import load_recording
from fadejax.envs.names import NAMED, ROOT
from fadejax.envs.recorded import RecordedMacroEnv, RecordedMicroEnv, RecordedParams


class UnknownEnvironment(ValueError):
    """A name that is not one of the named environments (the message lists them)."""


def make(name: str, *, ledger: bool = False, informative: bool = False) -> tuple[RecordedMacroEnv | RecordedMicroEnv, RecordedParams]:
    """The named environment and its default parameters, as ``gymnax.make`` returns them.

    Raises:
      UnknownEnvironment: ``name`` is not one of :data:`NAMED`.
    """
    if name not in NAMED:
        raise UnknownEnvironment(f"unknown environment '{name}'; the named environments are {', '.join(NAMED)}")
    named = NAMED[name]
    return make_from(ROOT / named.config, ROOT / named.recording, name=name, ledger=ledger, informative=informative)


def make_from(config: str | Path | ExperimentConfig, recording: str | Path, *, name: str | None = None, ledger: bool = False,
              informative: bool = False) -> tuple[RecordedMacroEnv | RecordedMicroEnv, RecordedParams]:
    """A user's recording as an environment: ``config`` (a path or a loaded config) gives the
    concept space, the mode and the micro settings; ``recording`` must have been made from it
    (``fadejax landscape --config C --record R``), else :class:`fadejax.engine.recording.RecordingError`."""
    if not isinstance(config, ExperimentConfig):
        config = load_config(config)
    answers = load_recording(recording, expect_key=landscape_key(config))
    space = config.concept_space()
    name = name or f"{config.name}-{config.mode}"
    if config.mode == "micro":
        env = RecordedMicroEnv(answers, space, config.micro_space(), max_steps=config.micro.max_steps, alpha=config.micro_alpha,
                               name=name, ledger=ledger, informative=informative)
    else:
        env = RecordedMacroEnv(answers, space, name=name, ledger=ledger, informative=informative)
    return env, env.default_params
