"""The image audit's config sections: ``data``, ``model``, ``observation`` and ``reward``."""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from fadejax.core.strict import Strict as _Strict


class DataConfig(_Strict):
    """Where the samples come from. ``digits``: scikit-learn's bundled handwritten digits,
    upsampled to ``image_size`` and split; ``colour_digits``: the same digits in colour, each
    image's stroke and background in their own random colours (``configs/digits_colour.yaml``); ``npz``: a local file with ``images``
    ``(N, H, W, C)`` (floats in [0, 1] or uint8) and ``labels`` ``(N,)``, all held out;
    ``folder``: an image folder (``path/CLASS/*.png|jpg|jpeg``, classes in folder-name
    order), every image RGB and resized to ``image_size``; ``hf_dataset``: a ``datasets``
    data set saved with ``save_to_disk`` (``split`` picks one of several), its
    ``image_column`` and ``label_column``. Folders and data sets name their classes;
    ``class_map: name`` matches them to the model's class names (a data class the model
    does not know is an error naming it), ``index`` by position. ``per_class``: at most
    this many images per class; ``skip_unreadable``: leave out (and count) images that do
    not decode instead of stopping with an error naming the file.
    ``limit``: audit only the first ``limit`` held-out samples (a quicker, coarser look;
    summaries re-evaluate modes on these too). ``channels``: ``1`` (grey) or ``3`` (RGB)
    images for the model, converted from what the source holds (RGB to grey by luminance,
    0.299 R + 0.587 G + 0.114 B; grey to RGB by repeating); unset, folders and data sets
    give RGB and ``npz`` files their own channels. ``run.json`` states a conversion."""

    source: Literal["digits", "colour_digits", "npz", "folder", "hf_dataset"] = "digits"
    path: str | None = None
    image_size: int = pydantic.Field(32, ge=8, le=512)
    held_out_fraction: float = pydantic.Field(0.3, gt=0.0, lt=1.0)
    split_seed: int = 0
    limit: pydantic.PositiveInt | None = None
    per_class: pydantic.PositiveInt | None = None
    split: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    class_map: Literal["name", "index"] = "name"
    skip_unreadable: bool = False
    channels: Literal[1, 3] | None = None

    @pydantic.model_validator(mode="after")
    def _path_for_files(self) -> "DataConfig":
        needs = {"npz": "a .npz file with 'images' and 'labels'", "folder": "a folder with one sub-folder of images per class",
                 "hf_dataset": "a directory written by datasets' save_to_disk"}
        if self.source in needs and not self.path:
            raise ValueError(f"data.source '{self.source}' needs data.path ({needs[self.source]})")
        return self


class EmbeddedTrainingConfig(_Strict):
    """How the embedded model is trained on the digits (once; the weights are cached)."""

    epochs: pydantic.PositiveInt = 12
    learning_rate: pydantic.PositiveFloat = 2e-3
    batch_size: pydantic.PositiveInt = 64
    seed: int = 0


class ModelConfig(_Strict):
    """The audited classifier.

    ``embedded``: a model the project trains on the digits or colour digits (once; cached), named by
    ``architecture``: ``digits_cnn`` (the default CNN) or ``digits_lenet`` (a LeNet-5-style
    tanh / average-pooling network, ``configs/digits_lenet.yaml``). ``file``: any torch
    ``nn.Module`` named as ``architecture: "package.module:Class"`` built with
    ``architecture_kwargs`` and loaded from ``weights`` (.safetensors, or a .pt/.pth
    state dict read with ``weights_only=True``). ``torchvision`` / ``timm``: a model of
    that name from the optional ``vision`` extra, with ``weights`` from a local file or
    an already-filled cache (never downloaded). ``huggingface``: an
    ``AutoModelForImageClassification`` with its ``AutoImageProcessor``, ``architecture``
    a local directory or a model id already in the Hugging Face cache (never downloaded);
    the processor's resize, crop and normalisation are applied to each perturbed batch
    (``normalize_mean`` / ``normalize_std`` are then not used), and its ``id2label`` names
    the classes in ``run.json`` and the records (``label_name``, ``predicted_name``).
    """

    source: Literal["embedded", "file", "torchvision", "timm", "huggingface"] = "embedded"
    architecture: str = "digits_cnn"
    architecture_kwargs: dict[str, Any] = pydantic.Field(default_factory=dict)
    weights: str | None = None
    num_classes: pydantic.PositiveInt | None = None
    #: refuse a model whose clean held-out accuracy is no better than chance (unloaded
    #: weights, wrong classes or inputs); ``false`` audits such a model on purpose
    refuse_chance: bool = True
    device: str = "cpu"
    normalize_mean: list[float] | None = None
    normalize_std: list[float] | None = None
    embedded: EmbeddedTrainingConfig = pydantic.Field(default_factory=EmbeddedTrainingConfig)

    @pydantic.model_validator(mode="after")
    def _weights_for_file(self) -> "ModelConfig":
        if self.source == "file" and not self.weights:
            raise ValueError("model.source 'file' needs model.weights (a local .safetensors/.pt/.pth file)")
        if self.source == "huggingface" and (self.weights or self.normalize_mean or self.normalize_std):
            raise ValueError("model.source 'huggingface' takes its weights and normalisation from the model directory and its "
                             "image processor: leave model.weights, normalize_mean and normalize_std unset")
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


#: How a family's per-model outcomes make one query's reward and failure (``reward.aggregate``).
Aggregate = Literal["mean", "all", "any", "a_not_b"]


class RewardConfig(_Strict):
    """Eq. 4: ``form`` 'abs' (default; every failure outranks every success) or 'paper'.

    With a model family (``models:``) every query is scored by each model, and
    ``aggregate`` makes one reward and one failure of them:

    - ``mean``: the mean of the models' eq. 4 rewards; a failure when more than half of
      the models fail;
    - ``all``: a failure when every model fails ("what the family shares"), rewarded as
      the least confident of them (the smallest eq. 4 reward);
    - ``any``: a failure when at least one model fails, rewarded as the most confident;
    - ``a_not_b``: a failure when model ``a`` fails and model ``b`` does not (e.g. what a
      new checkpoint broke), rewarded as ``a``'s eq. 4.
    """

    form: Literal["abs", "paper"] = "abs"
    scale: pydantic.PositiveFloat = 1.0
    const: pydantic.PositiveFloat = 1e-3
    aggregate: Aggregate = "mean"
    a: str | None = None
    b: str | None = None

    @pydantic.model_validator(mode="after")
    def _a_and_b(self) -> "RewardConfig":
        if self.aggregate == "a_not_b" and not (self.a and self.b):
            raise ValueError("reward.aggregate 'a_not_b' needs reward.a (the model that fails) and reward.b (the one that does not)")
        if self.aggregate != "a_not_b" and (self.a or self.b):
            raise ValueError(f"reward.a and reward.b are for reward.aggregate 'a_not_b', not '{self.aggregate}'")
        if self.a and self.a == self.b:
            raise ValueError(f"reward.a and reward.b must name two different models; both are '{self.a}'")
        return self


class FamilyMember(ModelConfig):
    """One model of a family: a ``model`` section with a ``name`` (used in records, reports
    and ``restructure --model``)."""

    name: str = pydantic.Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=40)


class ModelFamily(pydantic.RootModel[list[FamilyMember]]):
    """``models:``, the audited family: two or more model sections, each with a ``name``,
    all answering the same queries (one batched call per model per iteration). Empty (the
    default): the one ``model`` section is audited."""

    root: list[FamilyMember] = pydantic.Field(default_factory=list)

    @pydantic.model_validator(mode="after")
    def _named_once(self) -> "ModelFamily":
        names = [m.name for m in self.root]
        if len(names) == 1:
            raise ValueError(f"a family needs two or more models; for one, use the 'model' section (got only '{names[0]}')")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"model names must be unique; repeated: {repeated}")
        return self

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.root]

    def member(self, name: str) -> ModelConfig:
        """The model section of member ``name`` (without its name)."""
        for m in self.root:
            if m.name == name:
                return ModelConfig.model_validate(m.model_dump(exclude={"name"}))
        raise KeyError(name)
