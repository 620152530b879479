"""Sweep specs: a base config and the fields to vary, expanded into checked points.

A spec is a YAML file::

    base: digits.yaml              # the base experiment (relative to the spec's folder)
    set:                           # applied to every point (--set-style dotted paths)
      run.iterations: 50
    vary:                          # the grid: every combination of these values
      searcher.kind: [random, posterior]
      run.seed: [0, 1, 2, 3, 4]
      # or values with labels (the label names the value in the manifest and tables):
      # searcher: {"greedy eps=0.1": {kind: greedy, epsilon: 0.1}, random: {kind: random}}
    exclude:                       # combinations left out of the grid (by value or label)
      - {searcher.kind: random, run.seed: 4}
    draws: null                    # N: N points drawn from the grid instead (without repeats)
    draws_seed: 0
    resources: {cpus: 1, gpus: 0, memory_gb: null, fresh_worker: false}   # each point's Ray task
    ground_truth: null             # a ground_truth.json for the report's recall@10

Setting ``searcher.kind`` gives a point that searcher's defaults (the base's searcher
fields belong to the base's searcher), plus any other ``searcher.*`` field varied or set.
Every point's config is validated when the spec is read, so a wrong field is named
before anything runs.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml

from fadejax.engine.config import ConfigError, ExperimentConfig, parse_config, set_dotted
from fadejax.core.strict import Strict


class SweepError(ValueError):
    """A sweep spec or sweep directory cannot be used as asked; the message says why."""


class Resources(Strict):
    """What each point's Ray task reserves: CPU cores, GPUs (fractions allowed) and memory."""

    cpus: float = pydantic.Field(1.0, gt=0)
    gpus: float = pydantic.Field(0.0, ge=0)
    memory_gb: float | None = pydantic.Field(None, gt=0)
    #: run each point in a new worker process: its peak memory is its own, and nothing
    #: (compiled programs, caches) carries over from the point before it on that worker
    fresh_worker: bool = False


class SweepSpec(Strict):
    """A sweep spec; see the module docstring."""

    base: str = pydantic.Field(min_length=1)
    set: dict[str, Any] = pydantic.Field(default_factory=dict)
    vary: dict[str, list[Any] | dict[str, Any]] = pydantic.Field(min_length=1)
    exclude: list[dict[str, Any]] = pydantic.Field(default_factory=list)
    draws: pydantic.PositiveInt | None = None
    draws_seed: int = 0
    resources: Resources = pydantic.Field(default_factory=Resources)
    ground_truth: str | None = None

    @pydantic.field_validator("vary")
    @classmethod
    def _values_to_vary(cls, vary: dict[str, list[Any] | dict[str, Any]]) -> dict[str, list[Any] | dict[str, Any]]:
        for path, values in vary.items():
            if not values:
                raise ValueError(f"'{path}' has no values: an empty grid has no points")
            listed = list(values.values()) if isinstance(values, dict) else values
            if len({json.dumps(v, sort_keys=True) for v in listed}) != len(listed):
                raise ValueError(f"'{path}' repeats a value: {values}")
        return vary

    @pydantic.model_validator(mode="after")
    def _exclusions_name_the_grid(self) -> "SweepSpec":
        for number, entry in enumerate(self.exclude):
            if not entry:
                raise ValueError(f"exclude[{number}] is empty: it would leave out every point")
            for path, value in entry.items():
                if path not in self.vary:
                    raise ValueError(f"exclude[{number}] names '{path}', which is not varied; varied: {sorted(self.vary)}")
                if not any(_same(value, label) or _same(value, v) for label, v in self.choices(path)):
                    raise ValueError(f"exclude[{number}]: {value!r} is not a value of '{path}'")
        return self

    def excluded(self, combo: dict[str, tuple[Any, Any]]) -> bool:
        """Whether a combination (path -> (label, value)) matches an ``exclude`` entry."""
        return any(all(_same(want, combo[path][0]) or _same(want, combo[path][1]) for path, want in entry.items())
                   for entry in self.exclude)

    def choices(self, path: str) -> list[tuple[Any, Any]]:
        """``(label, value)`` of each value of a varied field (a listed value is its own label)."""
        values = self.vary[path]
        return list(values.items()) if isinstance(values, dict) else [(v, v) for v in values]


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its place in the grid, its varied values (their labels, where
    the spec gives values labels) and its whole config."""

    index: int
    values: dict[str, Any]
    config: ExperimentConfig

    @property
    def key(self) -> str:
        """Hash of the point's resolved config (what makes its results what they are)."""
        return config_hash(self.config)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items())

    @property
    def directory(self) -> str:
        return f"{self.index:04d}-{self.key[:10]}"


def config_hash(config: ExperimentConfig) -> str:
    return hashlib.sha256(json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def read_spec(path: str | Path) -> tuple[SweepSpec, Path]:
    """The spec at ``path`` and the base config's path; :class:`SweepError` names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep spec '{path}' does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SweepError(f"sweep spec '{path}' is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SweepError(f"sweep spec '{path}': the top level must be a mapping with base, vary, ...")
    try:
        spec = SweepSpec.model_validate(raw)
    except pydantic.ValidationError as exc:
        lines = [(f"{'.'.join(str(p) for p in e['loc'])}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ") for e in exc.errors()]
        raise SweepError(f"sweep spec '{path}': " + "; ".join(lines)) from None
    base = (path.parent / spec.base).resolve()
    if not base.is_file():
        raise SweepError(f"sweep spec '{path}': base config '{spec.base}' does not exist (looked for {base})")
    return spec, base


def expand(spec: SweepSpec, base: Path) -> list[Point]:
    """Every point of ``spec`` (the grid, or ``draws`` of it), each config validated."""
    try:
        base_data = yaml.safe_load(base.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SweepError(f"base config '{base}' is not valid YAML: {exc}") from None
    paths = list(spec.vary)
    combos = [c for c in itertools.product(*(spec.choices(p) for p in paths)) if not spec.excluded(dict(zip(paths, c)))]
    if not combos:
        raise SweepError("exclude leaves no point of the grid")
    if spec.draws is not None:
        if spec.draws > len(combos):
            raise SweepError(f"draws: {spec.draws} points asked from a grid of {len(combos)}")
        chosen = sorted(random.Random(spec.draws_seed).sample(range(len(combos)), spec.draws))
        combos = [combos[i] for i in chosen]
    points = []
    for index, combo in enumerate(combos):
        labels = {path: label for path, (label, _) in zip(paths, combo)}
        values = {path: value for path, (_, value) in zip(paths, combo)}
        points.append(Point(index, labels, _point_config(base_data, spec.set, values, labels, base)))
    keys = [p.key for p in points]
    if len(set(keys)) != len(keys):
        raise SweepError("two points of the sweep have the same config: a varied field changes nothing (e.g. a value "
                         "equal to the base's under another spelling)")
    return points


def _point_config(base: dict[str, Any], fixed: dict[str, Any], values: dict[str, Any], labels: dict[str, Any],
                  base_path: Path) -> ExperimentConfig:
    data = copy.deepcopy(base)
    settings = {**fixed, **values}
    if "searcher.kind" in settings:  # another searcher: its own defaults, not the base searcher's fields
        data["searcher"] = {}
    if "searcher" in settings:  # a whole searcher section first; searcher.* fields then refine it
        settings = {"searcher": settings.pop("searcher"), **settings}
    label = ", ".join(f"{k}={v}" for k, v in labels.items())
    try:
        for path, value in settings.items():
            set_dotted(data, f"{path}={json.dumps(value)}")
        return parse_config(data, source=f"point ({label})")
    except ConfigError as exc:
        raise SweepError(f"{str(exc).replace(chr(10) + '  ', '; ')} (base config {base_path.name})") from None
