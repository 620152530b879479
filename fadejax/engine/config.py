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

from fadejax.engine import registry
from fadejax.core.strict import Strict
from fadejax.searchers import REGISTRY as SEARCHERS
from fadejax.searchers import SearcherConfig
from fadejax.core.spaces import Axis, ConceptSpace, MicroSpace


#: The searcher a config gets when it names none, by mode. Chosen by the Table 1 sweeps on
#: three audits (benchmarks/RESULTS.md): posterior sampling in macroscopic mode, and walks
#: planned on the same posterior model in microscopic mode.
DEFAULT_SEARCHER: dict[str, str] = {"macro": "posterior", "micro": "posterior_walk"}


class ConfigError(ValueError):
    """A config file is missing, unreadable or names a wrong field or value."""




class AxisConfig(Strict):
    """One concept axis: ``perturbation`` (default: the axis name) applied with each of ``values``.

    What an axis means depends on the task: image perturbation strengths (numbers); for
    text, either one axis of edit names (``values: [misspell, delete_word, ...]``, one edit
    per query) or one axis per edit whose values count its applications (``{name:
    delete_word, values: [0, 1, 2, 3]}``, edits accumulating in microscopic episodes); for
    prompts, words filling the template placeholder named like the axis.
    """

    name: str = pydantic.Field(min_length=1)
    perturbation: str | None = None
    values: list[float | str] = pydantic.Field(min_length=2)

    @pydantic.model_validator(mode="after")
    def _distinct(self) -> "AxisConfig":
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"axis '{self.name}' repeats a value: {self.values}")
        return self

    @property
    def perturbation_name(self) -> str:
        return self.perturbation or self.name

    @property
    def words(self) -> bool:
        return any(isinstance(v, str) for v in self.values)


class SpaceConfig(Strict):
    axes: list[AxisConfig] = pydantic.Field(min_length=1)

    @pydantic.model_validator(mode="after")
    def _unique_names(self) -> "SpaceConfig":
        names = [a.name for a in self.axes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"axis names must be unique; repeated: {repeated}")
        return self


class MicroConfig(Strict):
    """Microscopic mode: start cell (value index per axis; default the origin, all 0),
    episode step limit, and the step penalty alpha (default: 5, eq. 5, for images; 1, eq. 7,
    for text)."""

    start: list[int] | None = None
    max_steps: pydantic.PositiveInt = 8
    alpha: float | None = pydantic.Field(None, ge=0.0)


class WandbConfig(Strict):
    """Weights & Biases logging of the learning curves (needs the ``wandb`` extra)."""

    project: str = pydantic.Field(min_length=1)
    entity: str | None = None
    #: ``offline`` writes under the run directory's ``wandb/`` for a later ``wandb sync``.
    mode: Literal["online", "offline"] = "online"
    tags: list[str] = pydantic.Field(default_factory=list)


class RunConfig(Strict):
    """Budget, placement and logging. ``devices``: how many of the local devices
    (``jax.devices()``) to shard the parallel environments over, or ``all``; ``num_envs``
    must divide evenly."""

    iterations: pydantic.PositiveInt = 200
    num_envs: pydantic.PositiveInt = 256
    checkpoint_every: pydantic.PositiveInt = 25
    seed: int = 0
    devices: pydantic.PositiveInt | Literal["all"] = 1
    #: Mirror the learning curves (``metrics.jsonl``) to TensorBoard event files in the run
    #: directory's ``tensorboard/`` (``tensorboard --logdir runs/`` shows every run).
    tensorboard: bool = True
    #: Every this many iterations, log eq. 10's policy landscape over the first two axes as
    #: an image (TensorBoard, W&B); 0: never. Macroscopic runs only.
    landscape_every: pydantic.NonNegativeInt = 50
    #: Weights & Biases logging; off when null.
    wandb: WandbConfig | None = None
    #: How the run keeps its per-query records: ``arrow`` (``records.arrow``, columns, about
    #: 6x smaller and written with no per-row work) or ``jsonl`` (``records.jsonl``, one JSON
    #: object a line). ``fadejax export`` writes either run as JSON lines, CSV or Parquet. A run
    #: directory that already holds records keeps their format.
    records: Literal["arrow", "jsonl"] = "arrow"
    #: Propose iteration t+1 while the audited model answers iteration t, from the searcher as
    #: it was before learning from t (a lag of one iteration; the pairs of t count as asked).
    #: The first iteration after each checkpoint is proposed from the whole state, so a
    #: resume is exact. Macroscopic mode only: a walk's next cell depends on its last answer.
    #: ``benchmarks/throughput.py --pipeline`` and ``benchmarks/pipeline_lag.py`` measure what it
    #: buys and costs.
    pipeline: bool = False

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


class ExperimentConfig(Strict):
    """A whole discovery experiment; see ``configs/digits.yaml`` for an annotated example.

    ``task`` names the audit (:mod:`fadejax.audits`): ``image`` (a classifier under image
    perturbations; the embedded default), ``text`` (a summarizer under text edits),
    ``prompt`` (a text-to-image pipeline under prompt words), or any registered one. The
    audit adds its own sections (e.g. ``data`` and ``model`` for images, ``text`` for
    text) and its default concept space; :func:`parse_config` builds the config class of
    the named audit (:func:`config_class`), so an unknown section is named as such.
    """

    name: str = pydantic.Field("digits", pattern=r"^[A-Za-z0-9_.-]+$")
    task: str = registry.DEFAULT
    mode: Literal["macro", "micro"] = "macro"
    space: SpaceConfig
    micro: MicroConfig = pydantic.Field(default_factory=MicroConfig)
    searcher: dict[str, Any] = pydantic.Field(default_factory=lambda: {"kind": DEFAULT_SEARCHER["macro"]})
    run: RunConfig = pydantic.Field(default_factory=RunConfig)
    #: Replay this recording (``fadejax landscape --record``) instead of calling the audited
    #: model: the same loop, searchers, rewards and run directories, with a lookup for the
    #: model. The audit's sections and ``space`` must be those it was recorded from (checked
    #: by the recording's key). A relative path is relative to the working directory.
    recording: str | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and "space" not in data:  # the audit's default concept space
            task = str(data.get("task", registry.DEFAULT))
            axes = registry.get(task).default_axes()
            if axes is None:
                raise ValueError(f"space: the '{task}' audit has no default concept space; give space.axes")
            data = {**data, "space": {"axes": axes}}
        if isinstance(data, dict):  # a searcher section that names no kind gets the default for the mode
            searcher = data.get("searcher") or {}
            if isinstance(searcher, dict) and "kind" not in searcher:
                mode = data.get("mode")
                kind = DEFAULT_SEARCHER[mode] if isinstance(mode, str) and mode in DEFAULT_SEARCHER else DEFAULT_SEARCHER["macro"]
                data = {**data, "searcher": {**searcher, "kind": kind}}
        return data

    @pydantic.model_validator(mode="after")
    def _fits_the_audit(self) -> "ExperimentConfig":
        audit = self.audit
        audit.check_axes(self.space.axes)
        for section in audit.required:
            if getattr(self, section) is None:
                raise ValueError(f"task '{self.task}' needs a '{section}' section")
        if self.recording is not None and not audit.recordable:
            raise ValueError(f"recording: '{self.task}' audits are not recorded; recordings replay "
                             f"{sorted(a.name for a in registry.loaded() if a.recordable)} audits")
        audit.check_config(self)
        return self

    @property
    def audit(self) -> registry.Audit:
        """The audit ``task`` names."""
        return registry.get(self.task)

    def axis_identity(self, index: int) -> float | str | None:
        """The value of axis ``index`` that changes nothing, if it has one (words have none):
        the audit's answer, e.g. an image perturbation's identity strength."""
        if self.space.axes[index].words:
            return None
        return self.audit.axis_identity(self, index)

    @property
    def micro_alpha(self) -> float:
        """The step penalty: ``micro.alpha``, else the audit's (5, eq. 5, for images; 1, eq. 7, for text)."""
        if self.micro.alpha is not None:
            return self.micro.alpha
        return self.audit.micro_alpha

    @pydantic.field_validator("searcher")
    @classmethod
    def _known_searcher(cls, value: dict[str, Any]) -> dict[str, Any]:
        kind = value.get("kind", DEFAULT_SEARCHER["macro"])
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
            if self.run.pipeline:
                raise ValueError("run.pipeline works in mode 'macro' only: a walk's next cell depends on the answer to its last, "
                                 "so it cannot be proposed before that answer; set run.pipeline: false")
        else:
            _, searcher_cls = SEARCHERS[self.searcher["kind"]]
            if not searcher_cls.supports_macro:
                macro_ready = sorted(k for k, (_, cls) in SEARCHERS.items() if cls.supports_macro)
                raise ValueError(f"searcher '{self.searcher['kind']}' plans microscopic walks only; for mode 'macro' use one of {macro_ready}")
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


def _model_in(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The pydantic model a field's annotation holds: itself, inside ``X | None`` or
    ``list[X]``, or the items of a root model (``models:``, a list of sections)."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.RootModel):
        return _model_in(annotation.model_fields["root"].annotation)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for inner in getattr(annotation, "__args__", ()):
        found = _model_in(inner)
        if found is not None:
            return found
    return None


def _describe(error: dict[str, Any], model: type[pydantic.BaseModel], data: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if not location:  # a whole-config check names its own field (e.g. "space.axes.1: ...")
        return message
    searcher = data.get("searcher") if isinstance(data.get("searcher"), dict) else {}
    kind = searcher.get("kind") if isinstance(searcher.get("kind"), str) else None
    kind = kind or DEFAULT_SEARCHER.get(str(data.get("mode", "macro")), DEFAULT_SEARCHER["macro"])
    if error["type"] == "extra_forbidden" and error["loc"][0] == "searcher" and kind in SEARCHERS:
        # the section is a dict, checked by its kind's own model
        return f"{location}: unknown field for searcher '{kind}'; its fields: {sorted(SEARCHERS[kind][0].model_fields)}"
    if error["type"] == "extra_forbidden":
        parent: Any = model
        for part in error["loc"][:-1]:
            field = getattr(parent, "model_fields", {}).get(part) if isinstance(part, str) else None
            if field is not None:
                parent = _model_in(field.annotation) or parent
        allowed = sorted(getattr(parent, "model_fields", {}))
        message = f"unknown field; allowed here: {allowed}"
    return f"{location}: {message}"


_CONFIG_CLASSES: dict[int, type[ExperimentConfig]] = {}


def config_class(audit: registry.Audit) -> type[ExperimentConfig]:
    """:class:`ExperimentConfig` with ``audit``'s sections as fields (made once per audit).
    A section in ``audit.required`` defaults to ``None`` (its absence is named by the
    config's validation); every other one to its model's defaults."""
    if id(audit) not in _CONFIG_CLASSES:
        fields: dict[str, Any] = {}
        for section, model in audit.sections.items():
            if section in ExperimentConfig.model_fields:
                raise registry.AuditError(f"audit '{audit.name}' names a section '{section}', which is a core field")
            fields[section] = (model | None, None) if section in audit.required else (model, pydantic.Field(default_factory=model))
        name = "".join(part.title() for part in audit.name.replace("-", "_").split("_")) + "ExperimentConfig"
        _CONFIG_CLASSES[id(audit)] = pydantic.create_model(name, __base__=ExperimentConfig, **fields)
    return _CONFIG_CLASSES[id(audit)]


def _foreign_sections(data: dict[str, Any], audit: registry.Audit) -> dict[str, Any]:
    """``data`` without other audits' sections that hold nothing (``None`` or their defaults):
    run directories written before audits were plugins carry every audit's section. A
    section of another audit that sets something is an error naming that audit."""
    own = set(config_class(audit).model_fields)
    kept = dict(data)
    for key in [k for k in data if k not in own]:
        owner = next((a for a in registry.loaded() if key in a.sections and a is not audit), None)
        if owner is None:
            continue  # an unknown field: named by validation with what is allowed
        value = data[key]
        try:
            default = owner.sections[key]().model_dump(mode="json")
        except pydantic.ValidationError:
            default = None
        if value is None or value == default:
            del kept[key]
        else:
            raise ConfigError(f"{key}: this section configures the '{owner.name}' audit; this config's task is '{audit.name}'")
    return kept


def parse_config(data: dict[str, Any] | None, source: str = "config") -> ExperimentConfig:
    """Validate a config mapping for the audit its ``task`` names; raise :class:`ConfigError`
    naming every wrong field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of fields, got {type(data).__name__}")
    try:
        audit = registry.get(str(data.get("task", registry.DEFAULT)))
        model = config_class(audit)
        data = _foreign_sections(data, audit)
    except registry.AuditError as exc:
        raise ConfigError(f"{source}: task: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        lines = [_describe(e, model, data) for e in exc.errors()]
        if len(lines) == 1:  # one wrong field: one line
            raise ConfigError(f"{source}: {lines[0]}") from None
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
    return parse_config(read_config_data(path, overrides), source=str(path))


def read_config_data(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """A YAML config file's mapping as written, with ``field.path=value`` overrides applied,
    not yet validated (no defaults filled in); :class:`ConfigError` if it cannot be read."""
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
    return data
