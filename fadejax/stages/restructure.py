"""Stage 3, for every audit: fade chosen failure modes, rediscover, and measure the shift.

``restructure(run_dir, modes)`` checks the request, reuses a finished restructure of the
same modes and settings, and otherwise hands the work to the run's audit
(:meth:`fadejax.engine.audit.Audit.restructure`): fine-tune on data the audit never evaluated,
rediscover with the same config, seed and budget (:func:`link_rediscovery`), and report
the shift on the held-out data. The report is written last (``shift_report.json``): its
presence means the restructure is complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fadejax.engine import registry
from fadejax.engine.audit import AuditError, RestructureRequest
from fadejax.engine.store.dirlock import DirectoryLock
from fadejax.engine.config import ExperimentConfig
from fadejax.stages.discover import discover
from fadejax.engine.store.rundir import STATUS_FILE, read_status, write_json_atomic
from fadejax.engine.store.rundir import RunReadError, note_outside_paths, read_run_config
from fadejax.engine.store.trust import refuse_links

SHIFT_REPORT = "shift_report.json"


def link_rediscovery(new_config: ExperimentConfig, new_task: Any, run_dir: Path, out: Path, progress: bool) -> Path:
    """Discovery again on the fine-tuned model (same config, seed and budget) into
    ``out/rediscovery``, its ``run.json`` linking back to the original run."""
    rediscovery = out / "rediscovery"
    discover(new_config, rediscovery, resume=True, oracle=getattr(new_task, "oracle", None), progress=progress)
    status = read_status(rediscovery)
    status["restructured_from"] = str(run_dir)
    write_json_atomic(rediscovery / STATUS_FILE, status)
    return rediscovery


def settings_of(request: RestructureRequest) -> dict[str, Any]:
    """The fine-tuning settings a shift report states."""
    return {"failure_weight": request.failure_weight if request.use_clean else None, "epochs": request.epochs,
            "learning_rate": request.learning_rate, "scope": request.scope,
            "data": None if request.data == "modes" else request.data,
            "cell_weights": None if request.cell_weights is None else _digest(request.cell_weights)}


def _digest(weights: tuple[float, ...]) -> str:
    """A short fingerprint of a weight vector: a finished restructure is reused only for the same one."""
    import hashlib

    return hashlib.sha256(np.asarray(weights, np.float64).tobytes()).hexdigest()[:16]


def check_cell_weights(weights: Any, num_actions: int) -> tuple[float, ...]:
    """``weights`` as a probability per cell (normalised); :class:`RunReadError` naming what is wrong."""
    w = np.asarray(weights, np.float64)
    if w.shape != (num_actions,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise RunReadError(f"cell weights must be {num_actions} finite non-negative numbers (one per cell) with a positive sum")
    return tuple(float(x) for x in w / w.sum())


def restructure(run_dir: str | Path, modes: list[int], out_dir: str | Path | None = None, *, failure_weight: float = 0.5,
                use_clean: bool = True, epochs: int | None = None, learning_rate: float | None = None, radius: int = 3,
                options: dict[str, Any] | None = None, progress: bool = True, trust_code: bool = False,
                scope: str | None = None, data: str = "modes", cell_weights: Any = None) -> dict[str, Any]:
    """Fade ``modes`` (cell indices) of the run in ``run_dir``; see the module docstring.

    ``scope``, ``data`` and ``cell_weights`` (``(num_actions,)``, with ``data="weighted"``
    only): see :class:`~fadejax.engine.audit.RestructureRequest` (what ``fadejax fade``
    varies; ``None`` and ``"modes"`` are the paper's restructure).

    ``epochs`` and ``learning_rate`` default to the audit's fine-tuner's (the paper's
    values); ``options`` are the audit's own settings (e.g. ``{"lora_data": DIR}`` for a
    text-to-image run, ``{"train_articles": N}`` for a summarizer), named by its
    :attr:`~fadejax.engine.audit.Audit.restructure_options`. ``trust_code``: open a run directory
    whose config names code to import (see :mod:`fadejax.engine.store.trust`).
    """
    run_dir = Path(run_dir)
    config = read_run_config(run_dir, trust_code)
    audit = config.audit
    if config.mode != "macro":
        raise RunReadError("restructure works on macroscopic runs (modes are cells)")
    if config.recording is not None:
        raise RunReadError("this run replayed a recording: there is no model to fine-tune. Run discovery on the live "
                             "config (without `recording`) and restructure that run")
    if audit.restructure_defaults is None:
        raise AuditError(f"the '{audit.name}' audit has no restructure (no fine-tuner); summarize the run and act on its modes yourself")
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(options) - set(audit.restructure_options))
    if unknown:
        takers = {name: sorted(a.name for a in registry.loaded() if name in a.restructure_options) for name in unknown}
        named = "; ".join(f"--{n.replace('_', '-')} applies to {takers[n] or 'no'} runs" for n in unknown)
        raise RunReadError(f"{named}; this run's task is '{audit.name}'")
    if not modes:
        raise RunReadError("choose at least one failure mode to fade")
    if scope is not None and scope not in audit.fade_scopes:
        raise AuditError(f"--scope {scope}: the '{audit.name}' audit fine-tunes "
                         + (" or ".join(audit.fade_scopes) if audit.fade_scopes else "with its own fixed scope"))
    if data not in audit.fade_data:
        raise AuditError(f"the '{audit.name}' audit cannot build '{data}' fine-tune data; it builds {', '.join(audit.fade_data)}")
    if (data == "weighted") != (cell_weights is not None):
        raise RunReadError("'weighted' fine-tune data needs cell weights, and only it takes them")
    if cell_weights is not None:
        cell_weights = check_cell_weights(cell_weights, config.concept_space().num_actions)
    default_epochs, default_lr = audit.restructure_defaults
    request = RestructureRequest(epochs=default_epochs if epochs is None else epochs,
                                 learning_rate=default_lr if learning_rate is None else learning_rate,
                                 failure_weight=failure_weight, use_clean=use_clean, radius=radius, options=options, progress=progress,
                                 scope=scope, data=data, cell_weights=cell_weights)
    audit.check_restructure(config, request)
    note_outside_paths(run_dir, config)
    out = Path(out_dir) if out_dir else run_dir.parent / f"{run_dir.name}-restructured"
    refuse_links(out)
    settings = {**settings_of(request), **{name: options.get(name) for name in audit.restructure_options}}
    with DirectoryLock(out, "restructure directory"):  # one writer (fadejax.engine.store.dirlock)
        return _restructure_locked(audit, run_dir, config, list(modes), out, request, settings, progress)


def _restructure_locked(audit, run_dir: Path, config, modes: list[int], out: Path, request, settings: dict[str, Any],
                        progress: bool) -> dict[str, Any]:
    """:func:`restructure` once this process holds ``out``'s lock."""
    done = out / SHIFT_REPORT
    if done.is_file():
        try:
            previous = json.loads(done.read_bytes())
            same = [m["cell"] for m in previous["modes"]] == list(modes) and _given(previous["request"]) == _given(settings)
        except (ValueError, KeyError, TypeError, AttributeError):  # not a shift report fadejax wrote
            same = False
        if not same:
            raise RunReadError(f"'{out}' holds a restructure of other modes or settings; choose another --out")
        if progress:
            print(f"'{out}' already holds this restructure; its shift report is reused")
        return previous
    report = audit.restructure(run_dir, config, modes, out, request)
    report["task"] = audit.name
    report["request"] = settings
    write_json_atomic(out / SHIFT_REPORT, report)  # last: its presence means the restructure is complete
    return report


def _given(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that were set: an option an audit gained later is ``None`` in a new
    request and absent from an earlier report, and means the same in both."""
    return {k: v for k, v in settings.items() if v is not None}


def render_markdown(report: dict[str, Any]) -> str:
    """A shift report as Markdown, by the audit that wrote it."""
    return registry.get(report["task"]).render_shift_report(report)
