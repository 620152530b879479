"""``fadejax init``: a commented, validated config for your own model and data, with a
budget sized to the time you give it.

The audit writes the sections (:meth:`fadejax.engine.audit.Audit.starter_config`); this
stage builds the task once (so the audit's pre-flight checks the model against the data,
and the fixes it names, such as ``data.channels``, are applied and checked again), times
discovery iterations after their compilation, and sizes ``run.iterations`` to the minutes
asked. It never overwrites a file and downloads nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import yaml

from fadejax.engine import registry
from fadejax.engine.build import build_task
from fadejax.engine.checkpoints import build_discovery
from fadejax.engine.config import ConfigError, parse_config, set_dotted

#: timed iterations after the first (which compiles)
TIMED = 3
#: fixes tried before giving up (each names a different field)
MAX_FIXES = 3


def write_starter_config(out: str | Path, model: str, data: str, *, weights: str | None = None, task: str = registry.DEFAULT,
                         minutes: float = 10.0, overrides: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Write ``out``; return ``{"path", "config", "seconds_per_iteration", "iterations", "fixed"}``.

    ``minutes``: the wall time the run's discovery should take on this machine (the model's
    calls included; summaries and restructures are extra). :class:`ConfigError` if ``out``
    exists or the result does not validate; the audit's errors name what to change.
    """
    out = Path(out)
    if out.exists():
        raise ConfigError(f"'{out}' exists; fadejax init never overwrites a file: choose another --out")
    if not 0 < minutes <= 24 * 60:
        raise ConfigError(f"--minutes must be in (0, 1440], got {minutes:g}")
    audit = registry.get(task)
    data_map, comments = audit.starter_config(model, data, weights)
    data_map["name"] = out.stem
    for assignment in overrides or []:
        set_dotted(data_map, assignment)
    fixed: list[str] = []
    for _ in range(MAX_FIXES + 1):
        config = parse_config(data_map, source="fadejax init")
        try:
            built = build_task(config, progress=progress)
            break
        except registry.AuditError as exc:
            assignments = [f"{field}={value}" for field, value in getattr(exc, "fixes", [])]
            if not assignments or any(a in fixed for a in assignments):
                raise
            for assignment in assignments:
                set_dotted(data_map, assignment)
            fixed.extend(assignments)
            if progress:
                print(f"init: {exc}; set {', '.join(assignments)}")
    else:
        raise ConfigError(f"fadejax init: the model and data still do not fit after setting {', '.join(fixed)}")
    seconds = _seconds_per_iteration(config, built)
    iterations = max(10, min(100_000, int(minutes * 60 / seconds)))
    set_dotted(data_map, f"run.iterations={iterations}")
    config = parse_config(data_map, source="fadejax init")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(out, "x") as f:  # exclusive: a file that appeared meanwhile is not overwritten either
            f.write(_commented(data_map, comments, seconds, iterations, config.run.num_envs, fixed))
    except FileExistsError:
        raise ConfigError(f"'{out}' exists; fadejax init never overwrites a file: choose another --out") from None
    return {"path": out, "config": config, "seconds_per_iteration": seconds, "iterations": iterations, "fixed": fixed}


def _seconds_per_iteration(config, task) -> float:
    """Median wall seconds of :data:`TIMED` discovery iterations after a compiling one."""
    discovery = build_discovery(config, task)
    state = jax.block_until_ready(discovery.step(discovery.init(config.run.seed))[0])
    times = []
    for _ in range(TIMED):
        started = time.perf_counter()
        state = jax.block_until_ready(discovery.step(state)[0])
        times.append(time.perf_counter() - started)
    return max(sorted(times)[len(times) // 2], 1e-4)


def _commented(data: dict[str, Any], comments: dict[str, str], seconds: float, iterations: int, num_envs: int, fixed: list[str]) -> str:
    """The config as YAML, each top-level section under a comment line."""
    lines = [
        "# Written by fadejax init. Run it with: fadejax discover --config THIS_FILE",
        f"# One discovery iteration ({num_envs} queries) took {seconds:.3f} s here: {iterations} iterations "
        f"take about {seconds * iterations / 60:.1f} min.",
    ]
    if fixed:
        lines.append(f"# Set by the pre-flight check: {', '.join(fixed)}.")
    for key, value in data.items():
        if key in comments:
            lines.append(f"\n# {comments[key]}")
        lines.append(yaml.safe_dump({key: value}, sort_keys=False).rstrip())
    return "\n".join(lines) + "\n"
