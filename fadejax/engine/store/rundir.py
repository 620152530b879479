"""Run directories: everything needed to summarise, resume or reproduce a run.

Layout::

    RUN_DIR/
      config.yaml      the resolved config (every field, defaults filled in)
      run.json         status ("running" / "complete"), progress, model facts
      records.arrow    one record per audited-model query, as columns (records.jsonl: as JSON lines;
                       see fadejax.engine.store.records)
      metrics.jsonl    the learning curves: one row per iteration (see fadejax.engine.store.learning_log)
      tensorboard/     the same as TensorBoard event files (see fadejax.engine.store.sinks)
      checkpoints/     orbax snapshots of the loop state (agent, optimiser, replay, rng, counters)
      policy/          orbax snapshot of the final policy (the Q-network parameters)
      summary.json     top failure cells, totals (written at the end)
      ground_truth.json  exhaustive failure landscape, if `fadejax landscape` was run
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from fadejax.engine import registry
from fadejax.engine.config import ConfigError, ExperimentConfig, parse_config
from fadejax.engine.store.dirlock import LOCK_FILE, check_held
from fadejax.engine.store.trust import UntrustedCodeError, paths_outside, refuse_untrusted_code


class RunReadError(ValueError):
    """A run directory is missing, unreadable or corrupt; the message says which file.
    (``fadejax.stages.summarize.SummarizeError`` is this class.)"""


class RunDirError(ValueError):
    """A run directory cannot be used as asked (it holds another run, or is not a run)."""


CONFIG_FILE = "config.yaml"
#: Fields that say where a run's learning curves are mirrored, not what the run does: a
#: resume may change them (and the run directory's config then records the new values).
#: Fields a resume may change: how the run is logged, not what it does (``run.records``
#: only picks a new run's format: a run's records keep the format its file has).
LOGGING_FIELDS = ("run.tensorboard", "run.landscape_every", "run.wandb", "run.records")
STATUS_FILE = "run.json"
SUMMARY_FILE = "summary.json"
# Files that may be in a run directory before its run starts: the exhaustive landscape, and
# stored human ratings (a prompt run replays them instead of asking again), and the lock
# of the writer that is about to start it (fadejax.engine.store.dirlock).
PRE_RUN_FILES = {"ground_truth.json", "ratings.sqlite", "ratings.sqlite-wal", "ratings.sqlite-shm", LOCK_FILE}


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temporary file and rename, so readers never see half a file (never
    after this process's lease on the directory lapsed: :func:`fadejax.engine.store.dirlock.check_held`)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=float))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` as :func:`write_json_atomic` writes JSON: whole or not at all, and
    never after this process's lease on the directory lapsed."""
    check_held(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_status(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / STATUS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _resolved(stored: Any, config: ExperimentConfig) -> Any:
    """A stored config with the fields added since it was written filled in with their
    defaults, so a run made by an earlier version resumes. Only for the audit ``config``
    itself names: parsing imports the audit's code, which must be the user's own."""
    if not isinstance(stored, dict) or stored.get("task", registry.DEFAULT) != config.task:
        return stored
    try:
        return parse_config(stored).model_dump(mode="json")
    except ConfigError:
        return stored


def check(run_dir: Path, config: ExperimentConfig, resume: bool) -> bool:
    """Check, touching nothing, that ``run_dir`` can take this run; return True if it resumes one.

    Raises :class:`RunDirError` when the directory holds a run with a different
    config, holds a run and ``resume`` is False, or is a non-empty directory that is
    not a fadejax run.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"output path '{run_dir}' exists and is not a directory")
    if config_path.is_file():
        stored = _resolved(yaml.safe_load(config_path.read_text()), config)
        wanted = config.model_dump(mode="json")
        fields = [f for f in _differences(stored, wanted) if not any(f == g or f.startswith(g + ".") for g in LOGGING_FIELDS)]
        if fields:
            raise RunDirError(
                f"output directory '{run_dir}' holds another run (its config differs in: {', '.join(fields[:8])}); "
                "choose another --out"
            )
        if not resume:
            raise RunDirError(
                f"output directory '{run_dir}' already holds this run; pass --resume to continue it or choose another --out"
            )
        return True
    if run_dir.is_dir() and any(p.name not in PRE_RUN_FILES for p in run_dir.iterdir()):
        raise RunDirError(f"output directory '{run_dir}' is not empty and is not a fadejax run; choose another --out")
    return False


def create(run_dir: Path, config: ExperimentConfig) -> None:
    """Make a new run directory holding the resolved config (after :func:`check` passed)."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = config_path.with_name(CONFIG_FILE + ".tmp")
    tmp.write_text(config.to_yaml())
    os.replace(tmp, config_path)


def read_run_config(run_dir: Path, trust_code: bool = False) -> ExperimentConfig:
    """The config of a run directory, with a clear error if it is missing or corrupt.

    A run directory may come from someone else: a config naming code to import (an
    audit or model class by import path) is refused unless ``trust_code``
    (:mod:`fadejax.engine.store.trust`), before anything is imported. Commands list the paths it names
    outside the run directory before reading them (:func:`note_outside_paths`)."""
    if not run_dir.is_dir():
        raise RunReadError(f"run directory '{run_dir}' does not exist")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise RunReadError(f"'{run_dir}' is not a fadejax run directory (no {CONFIG_FILE})")
    try:
        data = yaml.safe_load(path.read_text())
        refuse_untrusted_code(data, f"run directory '{run_dir}'", trust_code, run_dir=run_dir)
        config = parse_config(data, source=str(path))
    except UntrustedCodeError as exc:
        raise RunReadError(str(exc)) from None
    except (yaml.YAMLError, ConfigError, UnicodeDecodeError) as exc:
        raise RunReadError(f"'{path}' is corrupt: {exc}") from None
    return config


def note_outside_paths(run_dir: Path, config: ExperimentConfig) -> None:
    """List on stderr the files outside ``run_dir`` that its config makes fadejax read
    (weights, data, models, a recording): called once a command has checked its request
    and is about to read them, since a shared run directory may point anywhere."""
    outside = paths_outside(config.model_dump(mode="json"), run_dir)
    if outside:
        listing = "; ".join(f"{field}: {value}" for field, value in outside)
        print(f"note: run directory '{run_dir}' reads files outside it: {listing}", file=sys.stderr)
