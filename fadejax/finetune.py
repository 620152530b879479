"""The fine-tuner interface: a JSON spec handed to a separate PyTorch process.

Torch training never shares a process (or an accelerator's memory pool) with the JAX
engine. ``launch(spec)`` validates the spec here — a missing model or data file or a bad
hyper-parameter fails before any work — writes it to ``output_dir/spec.json`` and runs
``python -m bridges.finetune output_dir/spec.json``. The process shows progress,
checkpoints every epoch, resumes after being killed (launch the same spec again), and
reports its metrics in ``output_dir/metrics.json``.

Each fine-tuner is a *kind*: a pydantic spec model (validated here, in the engine's
process, without importing torch) and a ``run(spec)`` function in ``bridges/`` (run in
the child process). ``SPEC_KINDS`` maps a kind to its spec model's import path and
``bridges.finetune`` maps it to its runner, so a new fine-tuner is one spec model, one
bridge module and a line in each table.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pydantic


class FineTuneError(RuntimeError):
    """A fine-tune spec is invalid or the fine-tuning process failed."""


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class ClassifierHyper(_Strict):
    """The paper's defaults: final layer only, SGD lr 1e-3, momentum 0.9."""

    learning_rate: pydantic.PositiveFloat = 1e-3
    momentum: float = pydantic.Field(0.9, ge=0.0, lt=1.0)
    epochs: pydantic.PositiveInt = 5
    batch_size: pydantic.PositiveInt = 64
    failure_weight: float = pydantic.Field(0.5, ge=0.0)  # lambda in L = L_clean + lambda * L_failure
    seed: int = 0


class ClassifierSpec(_Strict):
    """Fine-tune a torch classifier's final ``nn.Linear`` on perturbed failures.

    ``failure_data``: a .npz with ``images`` (N, H, W, C) in [0, 1] and ``labels`` (N,):
    training-split samples perturbed under the chosen modes, with their true labels.
    ``clean_data`` (optional): unperturbed training samples; with it the loss is
    ``L_clean + failure_weight * L_failure`` (Chegini & Feizi's remedy), without it
    ``L_failure`` alone.
    """

    kind: Literal["classifier"] = "classifier"
    architecture: str  # "package.module:Class"
    architecture_kwargs: dict[str, Any] = pydantic.Field(default_factory=dict)
    weights: str
    failure_data: str
    clean_data: str | None = None
    output_dir: str
    hyper: ClassifierHyper = pydantic.Field(default_factory=ClassifierHyper)

    @pydantic.model_validator(mode="after")
    def _files_exist(self) -> "ClassifierSpec":
        for field in ("weights", "failure_data", "clean_data"):
            path = getattr(self, field)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{field} '{path}' does not exist")
        if ":" not in self.architecture:
            raise ValueError(f"architecture '{self.architecture}' must be 'package.module:Class'")
        return self


#: kind -> "module:SpecModel"; the models are imported only when a spec of that kind is used.
SPEC_KINDS: dict[str, str] = {
    "classifier": "fadejax.finetune:ClassifierSpec",
    "seq2seq": "fadejax.text.finetune_spec:Seq2SeqSpec",
    "lora": "fadejax.diffusion.finetune_spec:LoraSpec",
}


def spec_model(kind: str) -> type[pydantic.BaseModel]:
    """The spec model of a fine-tuner kind; :class:`FineTuneError` lists the kinds if unknown."""
    if kind not in SPEC_KINDS:
        raise FineTuneError(f"unknown fine-tuner kind '{kind}'; known: {sorted(SPEC_KINDS)}")
    module, _, name = SPEC_KINDS[kind].partition(":")
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
    spec = spec if isinstance(spec, pydantic.BaseModel) else validate_spec(spec)
    out = Path(spec.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / "spec.json"
    existing = json.loads(spec_path.read_text()) if spec_path.is_file() else None
    wanted = spec.model_dump(mode="json")
    if existing is not None and existing != wanted:
        raise FineTuneError(f"'{out}' holds a fine-tune with a different spec; choose another output_dir")
    spec_path.write_text(json.dumps(wanted, indent=2))
    result = subprocess.run(
        [sys.executable, "-m", "bridges.finetune", str(spec_path)],
        stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE, text=True,
    )
    if result.returncode != 0:
        raise FineTuneError(f"the fine-tuning process failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
    return json.loads((out / "metrics.json").read_text())
