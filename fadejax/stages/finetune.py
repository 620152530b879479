"""The fine-tuner interface: a JSON spec handed to a separate PyTorch process.

Torch training never shares a process (or an accelerator's memory pool) with the JAX
engine. ``launch(spec)`` validates the spec here — a missing model or data file or a bad
hyper-parameter fails before any work — writes it to ``output_dir/spec.json`` and runs
``python -m bridges.finetune output_dir/spec.json``. The process shows progress,
checkpoints every epoch, resumes after being killed (launch the same spec again), and
reports its metrics in ``output_dir/metrics.json``.

Each fine-tuner is a *kind*: a pydantic spec model (validated here, in the engine's
process, without importing torch) and a ``run(spec)`` function in ``bridges/`` (run in
the child process). Each audit names its kinds' spec models (:func:`spec_kinds`) and
``bridges.finetune`` maps it to its runner, so a new fine-tuner is one spec model (named
in its audit's ``finetune_specs``), one bridge module and a line in ``bridges.finetune``.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic


#: the fine-tuning process's progress and errors, in its output directory
STDERR_LOG = "finetune.log"


class FineTuneError(RuntimeError):
    """A fine-tune spec is invalid or the fine-tuning process failed."""


def spec_kinds() -> dict[str, str]:
    """Fine-tuner kind -> ``"module:SpecModel"``, gathered from the audits
    (:attr:`fadejax.engine.audit.Audit.finetune_specs`); the models are imported only when used."""
    from fadejax.engine import registry

    kinds: dict[str, str] = {}
    for audit in registry.loaded():
        kinds.update(audit.finetune_specs)
    return kinds


def spec_model(kind: str) -> type[pydantic.BaseModel]:
    """The spec model of a fine-tuner kind; :class:`FineTuneError` lists the kinds if unknown."""
    kinds = spec_kinds()
    if kind not in kinds:
        raise FineTuneError(f"unknown fine-tuner kind '{kind}'; known: {sorted(kinds)}")
    module, _, name = kinds[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def validate_spec(data: dict[str, Any]) -> pydantic.BaseModel:
    """The spec as a typed model of its ``kind`` (default ``classifier``); :class:`FineTuneError` names every wrong field."""
    if not isinstance(data, dict):
        raise FineTuneError(f"a fine-tune spec must be a mapping, got {type(data).__name__}")
    model = spec_model(str(data.get("kind", "classifier")))
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '(spec)'}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        raise FineTuneError("invalid fine-tune spec\n  " + "\n  ".join(lines)) from None


def launch(spec: pydantic.BaseModel | dict[str, Any], *, quiet: bool = False) -> dict[str, Any]:
    """Run (or resume) the fine-tune in its own process; return its ``metrics.json``.

    ``spec`` is a validated spec model or a mapping with a ``kind``; it needs an ``output_dir``.
    """
    return launch_all([spec], quiet=quiet)[0]


def launch_all(specs: list[pydantic.BaseModel | dict[str, Any]], *, quiet: bool = False, parallel: int = 1) -> list[dict[str, Any]]:
    """Run (or resume) several fine-tunes, each in its own process, at most ``parallel`` at
    a time (e.g. every model of a family at once on a machine with the cores for it);
    return their ``metrics.json`` in order. Every spec is validated and every output
    directory checked before any process starts."""
    specs = [spec if isinstance(spec, pydantic.BaseModel) else validate_spec(spec) for spec in specs]
    paths = []
    for spec in specs:
        out = Path(spec.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        spec_path = out / "spec.json"
        existing = json.loads(spec_path.read_text()) if spec_path.is_file() else None
        wanted = spec.model_dump(mode="json")
        if existing is not None and existing != wanted:
            raise FineTuneError(f"'{out}' holds a fine-tune with a different spec; choose another output_dir")
        spec_path.write_text(json.dumps(wanted, indent=2))
        paths.append(spec_path)
    step = max(parallel, 1)
    for start in range(0, len(paths), step):
        running = []
        for path in paths[start : start + step]:
            with open(path.parent / STDERR_LOG, "w") as log:  # a file, not a pipe: a chatty process never blocks on it
                running.append((path, subprocess.Popen([sys.executable, "-m", "bridges.finetune", str(path)],
                                                       stdout=subprocess.DEVNULL if quiet else None, stderr=log)))
        failed = [(path, process.wait()) for path, process in running]
        for path, code in failed:
            if code != 0:
                err = (path.parent / STDERR_LOG).read_text(errors="replace")
                raise FineTuneError(f"the fine-tuning process failed (exit {code}; its output: {path.parent / STDERR_LOG}): {err.strip()[-2000:]}")
    return [json.loads((path.parent / "metrics.json").read_text()) for path in paths]
