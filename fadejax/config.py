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


#: The searcher a config gets when it names none, by mode. Chosen by the Table 1 sweeps on
#: three audits (benchmarks/RESULTS.md): posterior sampling in macroscopic mode, and walks
#: planned on the same posterior model in microscopic mode.
DEFAULT_SEARCHER: dict[str, str] = {"macro": "posterior", "micro": "posterior_walk"}


class ConfigError(ValueError):
    """A config file is missing, unreadable or names a wrong field or value."""


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class AxisConfig(_Strict):
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
    ``(N, H, W, C)`` (floats in [0, 1] or uint8) and ``labels`` ``(N,)``, all held out.
    ``limit``: audit only the first ``limit`` held-out samples (a quicker, coarser look;
    summaries re-evaluate modes on these too)."""

    source: Literal["digits", "npz"] = "digits"
    path: str | None = None
    image_size: int = pydantic.Field(32, ge=8, le=512)
    held_out_fraction: float = pydantic.Field(0.3, gt=0.0, lt=1.0)
    split_seed: int = 0
    limit: pydantic.PositiveInt | None = None

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

    ``embedded``: a model the project trains on the digits (once; cached), named by
    ``architecture``: ``digits_cnn`` (the default CNN) or ``digits_lenet`` (a LeNet-5-style
    tanh / average-pooling network, ``configs/digits_lenet.yaml``). ``file``: any torch
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
    episode step limit, and the step penalty alpha (default: 5, eq. 5, for images; 1, eq. 7,
    for text)."""

    start: list[int] | None = None
    max_steps: pydantic.PositiveInt = 8
    alpha: float | None = pydantic.Field(None, ge=0.0)


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


class TextConfig(_Strict):
    """The text-summarization audit (``task: text``).

    ``data``: ``builtin`` (the project's generated news articles; ``held_out`` of them are
    audited) or ``summarize_from_feedback`` (the OpenAI data set's "axis" part saved by the
    ``datasets`` library at ``path``; ``split``, at most ``limit`` articles). ``model``:
    ``tiny`` (a small T5 the project trains once on its own articles) or a local directory
    of any Hugging Face seq2seq model. A query fails when the BLEU of its summary drops by
    more than ``epsilon`` below that of the unedited article's summary (Definition 2.1).
    """

    data: Literal["builtin", "summarize_from_feedback"] = "builtin"
    path: str | None = None
    split: str | None = None
    limit: pydantic.PositiveInt | None = None
    held_out: pydantic.PositiveInt = 200
    model: str = "tiny"
    device: str = "cpu"
    max_input_tokens: pydantic.PositiveInt = 512
    max_new_tokens: pydantic.PositiveInt = 48
    num_beams: pydantic.PositiveInt = 1
    batch_size: pydantic.PositiveInt = 64
    observation: Literal["encoder_mean", "sentence"] = "encoder_mean"
    observation_dim: pydantic.PositiveInt | None = None
    embedder: str | None = None
    epsilon: float = pydantic.Field(0.1, ge=0.0, le=1.0)
    reward_form: Literal["paper", "authors"] = "paper"
    edit_workers: int = pydantic.Field(0, ge=0)

    @pydantic.model_validator(mode="after")
    def _paths(self) -> "TextConfig":
        if self.data == "summarize_from_feedback" and not self.path:
            raise ValueError("text.data 'summarize_from_feedback' needs text.path (a directory saved by datasets' save_to_disk)")
        if self.observation == "sentence" and not self.embedder:
            raise ValueError("text.observation 'sentence' needs text.embedder (a local sentence-embedding model directory)")
        return self


class PromptConfig(_Strict):
    """The text-to-image audit (``task: prompt``): a diffusers pipeline from a local
    ``pipeline`` directory, prompts from ``templates`` filled with the axes' words, reward
    eq. 9 (``clip``, a local CLIP at ``clip``) or eq. 8 (``human`` ratings on a local page).

    A query fails when its reward reaches ``failure_threshold`` (default 25 for CLIP: the
    image matches its prompt poorly; 25 for human ratings: bias x quality) or its image is
    invalid. ``attribute_prompts`` drive the zero-shot bias measure (male-to-female ratio).
    """

    pipeline: str | None = None
    lora: str | None = None
    device: str = "cpu"
    dtype: Literal["float32", "float16"] = "float32"
    steps: pydantic.PositiveInt = 30
    guidance_scale: float = pydantic.Field(7.5, ge=0.0)
    height: pydantic.PositiveInt = 512
    width: pydantic.PositiveInt = 512
    batch_size: pydantic.PositiveInt = 4
    templates: list[str] | None = None
    held_out: pydantic.PositiveInt | None = None
    reward: Literal["clip", "human"] = "clip"
    clip: str | None = None
    failure_threshold: float = 25.0
    attribute_prompts: dict[str, str] = pydantic.Field(default_factory=lambda: {"male": "a photo of a man", "female": "a photo of a woman"})
    bias_ratio: tuple[str, str] = ("male", "female")
    rating_timeout_s: pydantic.PositiveFloat | None = None
    rating_port: int = pydantic.Field(0, ge=0, le=65535)

    @pydantic.model_validator(mode="after")
    def _paths(self) -> "PromptConfig":
        if self.clip is None:
            raise ValueError("prompt.clip: a local CLIP model directory is needed (eq. 9 reward, observations and the bias measure)")
        for name in self.bias_ratio:
            if name not in self.attribute_prompts:
                raise ValueError(f"prompt.bias_ratio names '{name}', which is not in prompt.attribute_prompts {sorted(self.attribute_prompts)}")
        return self


def _check_axes(task: str, axes: list[AxisConfig]) -> None:
    """Each axis means something for the task (see :class:`AxisConfig`); raise naming the axis."""
    for i, axis in enumerate(axes):
        where = f"space.axes.{i}"
        if task == "image":
            if axis.words:
                raise ValueError(f"{where}: image axis '{axis.name}' needs numeric strengths, got {axis.values}")
            try:
                perturbations.get(axis.perturbation_name).check(axis.values, where=f"axis '{axis.name}'")
            except perturbations.PerturbationError as exc:
                raise ValueError(f"{where}: {exc}") from None
        elif task == "text":
            from fadejax.text import edits

            if axis.words:
                for value in axis.values:
                    if not isinstance(value, str) or value not in edits.EDITS:
                        raise ValueError(f"{where}: '{value}' is not a text edit; known edits: {edits.names()}")
            else:
                if axis.perturbation_name not in edits.EDITS:
                    raise ValueError(f"{where}: a counting axis names a text edit (name or perturbation); '{axis.perturbation_name}' is not one of {edits.names()}")
                if any(v < 0 or v != int(v) for v in axis.values):
                    raise ValueError(f"{where}: counts of '{axis.perturbation_name}' must be whole numbers >= 0, got {axis.values}")
        elif not axis.words:
            raise ValueError(f"{where}: prompt axis '{axis.name}' needs words, got {axis.values}")


def _default_text_axes() -> list[dict[str, Any]]:
    from fadejax.text import edits

    return [{"name": "edit", "values": edits.names()}]


def _default_prompt_axes() -> list[dict[str, Any]]:
    from fadejax.diffusion.prompts import DEFAULT_AXES

    return [{"name": name, "values": list(words)} for name, words in DEFAULT_AXES.items()]


class ExperimentConfig(_Strict):
    """A whole discovery experiment; see ``configs/digits.yaml`` for an annotated example.

    ``task`` chooses the audit: ``image`` (a classifier under image perturbations; the
    embedded default), ``text`` (a summarizer under text edits) or ``prompt`` (a
    text-to-image pipeline under prompt words). The default space follows the task.
    """

    name: str = pydantic.Field("digits", pattern=r"^[A-Za-z0-9_.-]+$")
    task: Literal["image", "text", "prompt"] = "image"
    mode: Literal["macro", "micro"] = "macro"
    data: DataConfig = pydantic.Field(default_factory=DataConfig)
    model: ModelConfig = pydantic.Field(default_factory=ModelConfig)
    space: SpaceConfig = pydantic.Field(default_factory=SpaceConfig)
    observation: ObservationConfig = pydantic.Field(default_factory=ObservationConfig)
    reward: RewardConfig = pydantic.Field(default_factory=RewardConfig)
    micro: MicroConfig = pydantic.Field(default_factory=MicroConfig)
    searcher: dict[str, Any] = pydantic.Field(default_factory=lambda: {"kind": DEFAULT_SEARCHER["macro"]})
    run: RunConfig = pydantic.Field(default_factory=RunConfig)
    text: TextConfig = pydantic.Field(default_factory=TextConfig)
    prompt: PromptConfig | None = None
    #: Replay this recording (``fadejax landscape --record``) instead of calling the audited
    #: model: the same loop, searchers, rewards and run directories, with a lookup for the
    #: model. ``data``, ``model`` and ``space`` must be those it was recorded from (checked
    #: by the recording's key). A relative path is relative to the working directory.
    recording: str | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("task") in ("text", "prompt") and "space" not in data:
            axes = _default_text_axes() if data["task"] == "text" else _default_prompt_axes()
            data = {**data, "space": {"axes": axes}}
        if isinstance(data, dict):  # a searcher section that names no kind gets the default for the mode
            searcher = data.get("searcher") or {}
            if isinstance(searcher, dict) and "kind" not in searcher:
                data = {**data, "searcher": {**searcher, "kind": DEFAULT_SEARCHER[data.get("mode", "macro") if data.get("mode") in DEFAULT_SEARCHER else "macro"]}}
        return data

    @pydantic.model_validator(mode="after")
    def _axes_fit_the_task(self) -> "ExperimentConfig":
        _check_axes(self.task, self.space.axes)
        if self.recording is not None and self.task == "prompt":
            raise ValueError("recording: text-to-image audits are not recorded (every query is a diffusion run); "
                             "recordings replay image and text audits")
        if self.task == "prompt" and self.prompt is None:
            raise ValueError("task 'prompt' needs a prompt section (prompt.pipeline and prompt.clip at least)")
        if self.task == "prompt" and self.prompt.pipeline is None:
            raise ValueError("prompt.pipeline: a local diffusers pipeline directory is needed")
        if self.task == "prompt":
            from fadejax.diffusion.prompts import DEFAULT_TEMPLATES, validate_templates

            validate_templates(self.prompt.templates or DEFAULT_TEMPLATES, [a.name for a in self.space.axes])
        return self

    def axis_identity(self, index: int) -> float | str | None:
        """The value of axis ``index`` that changes nothing, if it has one: an image
        perturbation's identity strength, a text edit count of 0; words have none."""
        axis = self.space.axes[index]
        if axis.words:
            return None
        if self.task == "text":
            return 0.0
        return perturbations.get(axis.perturbation_name).identity

    @property
    def micro_alpha(self) -> float:
        """The step penalty: ``micro.alpha``, else 5 (eq. 5) for images and 1 (eq. 7) for text."""
        if self.micro.alpha is not None:
            return self.micro.alpha
        return 1.0 if self.task == "text" else 5.0

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


def _describe(error: dict[str, Any], model: type[pydantic.BaseModel]) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if not location:  # a whole-config check names its own field (e.g. "space.axes.1: ...")
        return message
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
