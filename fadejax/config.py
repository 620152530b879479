"""Experiment configuration: a YAML file mapped onto typed, validated models.

Every field has a default here, so a config file only names what it changes. A wrong
field fails at load time with its dotted path and what is allowed, e.g.
``space.axes.1.values: rotation values [200.0] are outside the allowed range [-180.0, 180.0]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml

from fadejax import perturbations
from fadejax.searchers import REGISTRY as SEARCHERS
from fadejax.searchers import SearcherConfig
from fadejax.spaces import Axis, ConceptSpace, MicroSpace


class ConfigError(ValueError):
    """A config file is missing, unreadable or names a wrong field or value."""


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class AxisConfig(_Strict):
    """One concept axis: ``perturbation`` (default: the axis name) applied with each of ``values``."""

    name: str = pydantic.Field(min_length=1)
    perturbation: str | None = None
    values: list[float] = pydantic.Field(min_length=2)

    @pydantic.model_validator(mode="after")
    def _known_and_in_range(self) -> "AxisConfig":
        family = perturbations.get(self.perturbation_name)
        family.check(self.values, where=f"axis '{self.name}'")
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"axis '{self.name}' repeats a value: {self.values}")
        return self

    @property
    def perturbation_name(self) -> str:
        return self.perturbation or self.name


def _default_axes() -> list[AxisConfig]:
    # Chosen on the embedded digits CNN so that a uniformly random cell rarely fails
    # while the worst cells fail most of the time; see README "The embedded default".
    return [
        AxisConfig(name="rotation", values=[-20.0, -10.0, 0.0, 10.0, 20.0]),
        AxisConfig(name="darkness", values=[0.0, 0.15, 0.3, 0.45, 0.7]),
        AxisConfig(name="blur", values=[0.0, 0.5, 1.0, 2.0, 3.0]),
    ]


class SpaceConfig(_Strict):
    axes: list[AxisConfig] = pydantic.Field(default_factory=_default_axes, min_length=1)

    @pydantic.model_validator(mode="after")
    def _unique_names(self) -> "SpaceConfig":
        names = [a.name for a in self.axes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"axis names must be unique; repeated: {repeated}")
        return self


class DataConfig(_Strict):
    """Where the samples come from. ``digits``: scikit-learn's bundled handwritten digits,
    upsampled to ``image_size`` and split; ``npz``: a local file with ``images``
    ``(N, H, W, C)`` (floats in [0, 1] or uint8) and ``labels`` ``(N,)``, all held out."""

    source: Literal["digits", "npz"] = "digits"
    path: str | None = None
    image_size: int = pydantic.Field(32, ge=8, le=512)
    held_out_fraction: float = pydantic.Field(0.3, gt=0.0, lt=1.0)
    split_seed: int = 0

    @pydantic.model_validator(mode="after")
    def _path_for_npz(self) -> "DataConfig":
        if self.source == "npz" and not self.path:
            raise ValueError("data.source 'npz' needs data.path (a .npz file with 'images' and 'labels')")
        return self


class EmbeddedTrainingConfig(_Strict):
    """How the embedded digits CNN is trained (once; the weights are cached)."""

    epochs: pydantic.PositiveInt = 12
    learning_rate: pydantic.PositiveFloat = 2e-3
    batch_size: pydantic.PositiveInt = 64
    seed: int = 0


class ModelConfig(_Strict):
    """The audited classifier.

    ``embedded``: the project's digits CNN (trained once, cached). ``file``: any torch
    ``nn.Module`` named as ``architecture: "package.module:Class"`` built with
    ``architecture_kwargs`` and loaded from ``weights`` (.safetensors, or a .pt/.pth
    state dict read with ``weights_only=True``). ``torchvision`` / ``timm``: a model of
    that name from the optional ``vision`` extra, with ``weights`` from a local file or
    an already-filled cache (never downloaded).
    """

    source: Literal["embedded", "file", "torchvision", "timm"] = "embedded"
    architecture: str = "digits_cnn"
    architecture_kwargs: dict[str, Any] = pydantic.Field(default_factory=dict)
    weights: str | None = None
    num_classes: pydantic.PositiveInt | None = None
    device: str = "cpu"
    normalize_mean: list[float] | None = None
    normalize_std: list[float] | None = None
    embedded: EmbeddedTrainingConfig = pydantic.Field(default_factory=EmbeddedTrainingConfig)

    @pydantic.model_validator(mode="after")
    def _weights_for_file(self) -> "ModelConfig":
        if self.source == "file" and not self.weights:
            raise ValueError("model.source 'file' needs model.weights (a local .safetensors/.pt/.pth file)")
        if self.source == "file" and ":" not in self.architecture:
            raise ValueError(
                f"model.architecture '{self.architecture}' must be 'package.module:Class' for model.source 'file'"
            )
        return self


class ObservationConfig(_Strict):
    """What the searcher sees of a sample: ``pixels`` (the clean image downsampled to
    ``size`` x ``size`` and flattened) or ``features`` (the audited model's penultimate
    activations, standardised)."""

    kind: Literal["pixels", "features"] = "pixels"
    size: int = pydantic.Field(8, ge=1, le=64)


class RewardConfig(_Strict):
    """Eq. 4: ``form`` 'abs' (default; every failure outranks every success) or 'paper'."""

    form: Literal["abs", "paper"] = "abs"
    scale: pydantic.PositiveFloat = 1.0
    const: pydantic.PositiveFloat = 1e-3


class MicroConfig(_Strict):
    """Microscopic mode: start cell (value index per axis; default the origin, all 0),
    episode step limit, and the step penalty alpha of eq. 5."""

    start: list[int] | None = None
    max_steps: pydantic.PositiveInt = 8
    alpha: float = pydantic.Field(5.0, ge=0.0)


class RunConfig(_Strict):
    """Budget and placement. ``devices``: how many of the local devices (``jax.devices()``)
    to shard the parallel environments over, or ``all``; ``num_envs`` must divide evenly."""

    iterations: pydantic.PositiveInt = 200
    num_envs: pydantic.PositiveInt = 256
    checkpoint_every: pydantic.PositiveInt = 25
    seed: int = 0
    devices: pydantic.PositiveInt | Literal["all"] = 1

    @pydantic.model_validator(mode="after")
    def _envs_split_evenly(self) -> "RunConfig":
        if isinstance(self.devices, int) and self.num_envs % self.devices:
            raise ValueError(f"run.num_envs ({self.num_envs}) must be a multiple of run.devices ({self.devices})")
        return self

    def device_list(self) -> list:
        """The devices this run uses; a clear error if fewer are available than asked for."""
        import jax

        available = jax.devices()
        if self.devices == "all":
            if self.num_envs % len(available):
                raise ConfigError(f"run.num_envs ({self.num_envs}) must be a multiple of the {len(available)} devices that run.devices 'all' uses")
            return available
        if self.devices > len(available):
            raise ConfigError(
                f"run.devices is {self.devices} but only {len(available)} {available[0].platform} device(s) are available "
                "(on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N host devices)"
            )
        return available[: self.devices]


class ExperimentConfig(_Strict):
    """A whole discovery experiment; see ``configs/digits.yaml`` for an annotated example."""

    name: str = pydantic.Field("digits", pattern=r"^[A-Za-z0-9_.-]+$")
    mode: Literal["macro", "micro"] = "macro"
    data: DataConfig = pydantic.Field(default_factory=DataConfig)
    model: ModelConfig = pydantic.Field(default_factory=ModelConfig)
    space: SpaceConfig = pydantic.Field(default_factory=SpaceConfig)
    observation: ObservationConfig = pydantic.Field(default_factory=ObservationConfig)
    reward: RewardConfig = pydantic.Field(default_factory=RewardConfig)
    micro: MicroConfig = pydantic.Field(default_factory=MicroConfig)
    searcher: dict[str, Any] = pydantic.Field(default_factory=lambda: {"kind": "dqn"})
    run: RunConfig = pydantic.Field(default_factory=RunConfig)

    @pydantic.field_validator("searcher")
    @classmethod
    def _known_searcher(cls, value: dict[str, Any]) -> dict[str, Any]:
        kind = value.get("kind", "dqn")
        if kind not in SEARCHERS:
            raise ValueError(f"unknown searcher kind '{kind}'; registered: {sorted(SEARCHERS)}")
        config_cls, _ = SEARCHERS[kind]
        return config_cls.model_validate({**value, "kind": kind}).model_dump(mode="json")

    @pydantic.model_validator(mode="after")
    def _micro_start_fits(self) -> "ExperimentConfig":
        if self.mode == "micro":
            self.micro_space()  # raises SpaceError with the axis at fault
            _, searcher_cls = SEARCHERS[self.searcher["kind"]]
            if not searcher_cls.supports_micro:
                micro_ready = sorted(k for k, (_, cls) in SEARCHERS.items() if cls.supports_micro)
                raise ValueError(f"searcher '{self.searcher['kind']}' works on macroscopic cells only; for mode 'micro' use one of {micro_ready}")
        return self

    # -- derived objects ------------------------------------------------------------
    def searcher_config(self) -> SearcherConfig:
        config_cls, _ = SEARCHERS[self.searcher["kind"]]
        return config_cls.model_validate(self.searcher)

    def concept_space(self) -> ConceptSpace:
        return ConceptSpace([Axis(a.name, tuple(a.values)) for a in self.space.axes])

    def micro_space(self) -> MicroSpace:
        return MicroSpace(self.concept_space(), self.micro.start)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _describe(error: dict[str, Any], model: type[pydantic.BaseModel]) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        parent: Any = model
        for part in error["loc"][:-1]:
            field = getattr(parent, "model_fields", {}).get(part) if isinstance(part, str) else None
            if field is None:
                continue
            annotation = field.annotation
            inner = getattr(annotation, "__args__", (annotation,))
            parent = next((t for t in inner if isinstance(t, type) and issubclass(t, pydantic.BaseModel)), parent)
        allowed = sorted(getattr(parent, "model_fields", {}))
        message = f"unknown field; allowed here: {allowed}"
    return f"{location}: {message}"


def parse_config(data: dict[str, Any] | None, source: str = "config") -> ExperimentConfig:
    """Validate a config mapping; raise :class:`ConfigError` naming every wrong field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of fields, got {type(data).__name__}")
    try:
        return ExperimentConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        lines = [_describe(e, ExperimentConfig) for e in exc.errors()]
        raise ConfigError(f"{source}: invalid config\n  " + "\n  ".join(lines)) from None
    except ValueError as exc:  # SpaceError / PerturbationError raised outside pydantic's wrapping
        raise ConfigError(f"{source}: {exc}") from None


def set_dotted(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``a.b.c=value`` override (value parsed as YAML) to a config mapping."""
    if "=" not in assignment:
        raise ConfigError(f"override '{assignment}' must look like field.path=value")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{assignment}': '{key}' is not a section")
    node[keys[-1]] = yaml.safe_load(raw)


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config file, apply ``field.path=value`` overrides, and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of fields")
    for assignment in overrides or []:
        set_dotted(data, assignment)
    return parse_config(data, source=str(path))
