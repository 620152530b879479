"""The image-classification audit's task: held-out samples on the device, JAX perturbations,
a classifier oracle, eq. 4.

The classifier oracle is any callable ``images (B, H, W, C) -> logits (B, num_classes)``
on JAX arrays; the torch classifier bridge is one, and a pure-JAX model can be another.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from fadejax.core import perturbations
from fadejax.audits.image.config import ObservationConfig, RewardConfig
from fadejax.audits.image.data import ImageDataset, convert_channels, load_colour_digits_split, load_digits_split, load_folder, load_hf_dataset, load_npz, map_classes
from fadejax.audits.image.preflight import check_accuracy, check_one_batch
from fadejax.engine.config import ExperimentConfig
from fadejax.core.rewards import classification_reward, family_reward
from fadejax.core.spaces import ConceptSpace
from fadejax.engine.task import Oracle


@dataclass
class ClassificationTask:
    """Everything a discovery run needs about what it audits.

    Attributes:
      images: ``(N, H, W, C)`` float32 held-out samples on device.
      labels: ``(N,)`` int32.
      observations: ``(N, D)`` float32, what the searcher sees of each sample.
      space: the concept space.
      perturb: ``(images, values (B, num_axes), key) -> images``, jittable.
      oracle: the audited model.
      info: facts for reports (model weights path, clean accuracy, ...).
      reward: eq. 4's settings.
      members: a family's model names, in the order of the oracle's ``(M, B, classes)``
        logits; empty for one model.
      label_names: the class names, where the model or data names them (records then
        carry ``label_name`` and ``predicted_name``).
      deterministic: every perturbation of the space is deterministic, so a (sample, cell)
        pair asked twice is answered the same (False with ``noise``, which draws per query).
    """

    images: jax.Array
    labels: jax.Array
    observations: jax.Array
    space: ConceptSpace
    perturb: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    oracle: Oracle
    info: dict[str, Any]
    reward: RewardConfig = field(default_factory=RewardConfig)
    kind: str = "image"
    members: tuple[str, ...] = ()
    label_names: tuple[str, ...] | None = None
    deterministic: bool = True

    def __post_init__(self) -> None:
        r = self.reward
        eq4 = {"scale": r.scale, "const": r.const, "form": r.form}
        rows = {name: i for i, name in enumerate(self.members)}

        def score(logits: jax.Array, labels: jax.Array, sample: jax.Array) -> tuple[Any, Any, jax.Array]:
            queried = labels[sample]
            if not self.members:
                return classification_reward(logits, queried, **eq4), None, queried
            outcome, per = family_reward(logits, queried, aggregate=r.aggregate, a=rows.get(r.a), b=rows.get(r.b), **eq4)
            return outcome, per, queried

        self._score = jax.jit(score)  # one dispatch per iteration, the labels' gather included
        self.record_names = {"label": self.label_names, "predicted": self.label_names} if self.label_names else {}
        if self.members and self.label_names:
            self.record_names.update({f"{m}.predicted": self.label_names for m in self.members})

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def prepare(self, sample: jax.Array, values: jax.Array, key: jax.Array) -> jax.Array:
        """The perturbed images ``(B, H, W, C)`` of the queries (jittable)."""
        return self.perturb(self.images[sample], values, key)

    def evaluate(self, inputs: jax.Array, pending: dict[str, jax.Array]) -> tuple[dict[str, Any], dict[str, Any]]:
        """One batched classifier call (one per model of a family) and eq. 4; record fields
        ``label, predicted, score``, or for a family ``label`` and each model's
        ``NAME.failed, NAME.predicted, NAME.score``."""
        outcome, per, labels = self._score(self.oracle(inputs), self.labels, pending["sample"])
        core = {"reward": outcome.reward, "failed": outcome.failed}
        if not self.members:
            return core, {"label": labels, "predicted": outcome.predicted, "score": outcome.score}
        fields: dict[str, Any] = {"label": labels}
        for m, name in enumerate(self.members):
            fields.update({f"{name}.failed": per.failed[m], f"{name}.predicted": per.predicted[m], f"{name}.score": per.score[m]})
        return core, fields

    def replicate(self, sharding: Any) -> None:
        self.images, self.labels, self.observations = jax.device_put((self.images, self.labels, self.observations), sharding)


def compose_perturbations(config: ExperimentConfig) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
    """The config's axes' perturbations chained in axis order: ``(images, values, key) -> images``."""
    return perturbations.compose([a.perturbation_name for a in config.space.axes], [a.values for a in config.space.axes])


def perturbed_images(perturb: Callable[[jax.Array, jax.Array, jax.Array], jax.Array], space: ConceptSpace, images: np.ndarray,
                     cells: np.ndarray, batch: int = 256) -> np.ndarray:
    """Clean ``(N, H, W, C)`` images under the cells ``(N,)`` (flat indices of ``space``):
    ``(N, H, W, C)`` float32 in [0, 1]. Keyed perturbations (noise) are drawn with a fixed
    key, so they are like, not equal to, what a run's query saw."""
    apply = jax.jit(perturb)
    out = [np.asarray(apply(jnp.asarray(images[i : i + batch]), space.decode(jnp.asarray(cells[i : i + batch], jnp.int32)),
                            jax.random.PRNGKey(0))) for i in range(0, len(cells), batch)]
    return np.concatenate(out) if out else np.zeros((0, *np.shape(images)[1:]), np.float32)


def pixel_observations(images: jax.Array, size: int) -> jax.Array:
    """Clean images ``(N, H, W, C)`` downsampled to ``(N, size * size * C)``."""
    n, _, _, c = images.shape
    return jax.image.resize(images, (n, size, size, c), "linear").reshape(n, -1)


def feature_observations(oracle: Any, images: jax.Array, batch: int = 512) -> jax.Array:
    """The oracle's penultimate features ``(N, F)``, standardised per feature."""
    parts = [oracle.features(images[i : i + batch]) for i in range(0, images.shape[0], batch)]
    feats = jnp.concatenate(parts, axis=0)
    return (feats - feats.mean(0)) / (feats.std(0) + 1e-6)


def make_observations(config: ObservationConfig, images: jax.Array, oracle: Any) -> jax.Array:
    if config.kind == "pixels":
        return pixel_observations(images, config.size)
    return feature_observations(oracle, images)


def load_data(config: ExperimentConfig) -> tuple[ImageDataset | None, ImageDataset]:
    """``(train split or None, held-out split)`` as the config's data section says."""
    d = config.data
    if d.source == "digits":
        train, held_out = load_digits_split(d.image_size, d.held_out_fraction, d.split_seed)
    elif d.source == "colour_digits":
        train, held_out = load_colour_digits_split(d.image_size, d.held_out_fraction, d.split_seed)
    elif d.source == "folder":
        train, held_out = None, load_folder(d.path, d.image_size, d.per_class, d.skip_unreadable)
    elif d.source == "hf_dataset":
        train, held_out = None, load_hf_dataset(d.path, d.image_size, d.image_column, d.label_column, d.split, d.per_class, d.skip_unreadable)
    else:
        train, held_out = None, load_npz(d.path)
    if d.limit is not None and d.limit < len(held_out):
        held_out = replace(held_out, images=held_out.images[: d.limit], labels=held_out.labels[: d.limit], name=f"{held_out.name}-first{d.limit}")
    held_out = convert_channels(held_out, d.channels)
    if train is not None:
        train = convert_channels(train, d.channels)
    return train, held_out


def build_classification_task(config: ExperimentConfig, oracle: Any = None, progress: bool = True) -> ClassificationTask:
    """Load the held-out images and the audited classifier (through the torch bridge unless
    ``oracle`` is given), and check the model once on the clean held-out set."""
    oracle, held_out, info = load_classifier(config, oracle, progress)
    members = config.models.names
    for name, model in (oracle.members.items() if members else [(None, oracle)]):
        check_one_batch(config, model, held_out.images, held_out.num_classes, member=name)
    space = config.concept_space()
    perturb = compose_perturbations(config)
    images = jnp.asarray(held_out.images)
    observations = make_observations(config.observation, images, oracle)
    task = ClassificationTask(
        images=images,
        labels=jnp.asarray(held_out.labels),
        observations=jnp.asarray(observations, jnp.float32),
        space=space,
        perturb=perturb,
        oracle=oracle,
        info=info,
        reward=config.reward,
        members=tuple(members),
        label_names=tuple(info["label_names"]) if info.get("label_names") else None,
        deterministic=not perturbations.draws_per_query([a.perturbation_name for a in config.space.axes], [a.values for a in config.space.axes]),
    )
    # One pass over the clean held-out set: checks the model's output (classes, NaN)
    # before any run directory is written, and gives the clean accuracy for reports.
    accuracy = clean_accuracy(task)
    info["clean_accuracy"] = accuracy.pop("aggregate") if members else accuracy["model"]
    refuse = {name: config.models.member(name).refuse_chance for name in members} if members else {"model": config.model.refuse_chance}
    for name, share in (accuracy.items() if members else [("model", info["clean_accuracy"])]):
        check_accuracy(refuse[name], share, task.num_samples, held_out.num_classes, member=name if members else None)
    if members:
        for name in members:
            info["family"][name]["clean_accuracy"] = accuracy[name]
    return task


def load_classifier(config: ExperimentConfig, oracle: Any = None, progress: bool = True) -> tuple[Oracle, ImageDataset, dict[str, Any]]:
    """``(audited model, held-out data in its classes, info)`` as the config's ``data`` and
    ``model`` (or ``models``) sections say; ``oracle`` replaces the model (for a family, a
    :class:`fadejax.audits.image.family.FamilyOracle` of its models)."""
    train, held_out = load_data(config)
    info: dict[str, Any] = {"data": held_out.name, "held_out_samples": len(held_out)}
    members = config.models.names
    if oracle is not None and members and list(getattr(oracle, "names", [])) != members:
        raise ValueError(f"a family's oracle answers for each of its models {members}, with (M, B, classes) logits: "
                         "pass a fadejax.audits.image.family.FamilyOracle of them, or no oracle")
    if oracle is None and members:
        oracle, held_out = _load_family(config, train, held_out, info, progress)
    elif oracle is None:
        from bridges.loading import build_classifier_oracle  # torch enters here, not at import time

        oracle, model_info = build_classifier_oracle(config.model, train, held_out, config.data, progress=progress)
        info.update(model_info)
        held_out = map_classes(held_out, model_info.get("label_names"), config.data.class_map)
    if held_out.converted:
        info["channel_conversion"] = held_out.converted
    if held_out.skipped:
        info["skipped_unreadable"] = len(held_out.skipped)
        if progress:
            print(f"note: {len(held_out.skipped)} unreadable images left out (data.skip_unreadable), e.g. {held_out.skipped[0]}")
    return oracle, held_out, info


def _load_family(config: ExperimentConfig, train: ImageDataset | None, held_out: ImageDataset, info: dict[str, Any], progress: bool):
    """``(FamilyOracle, held-out data mapped to the family's classes)``; ``info["family"]``
    gets each model's facts."""
    from bridges.loading import build_classifier_oracle  # torch enters here, not at import time
    from fadejax.audits.image.family import FamilyOracle, check_same_classes

    oracles, facts = {}, {}
    for name in config.models.names:
        oracles[name], facts[name] = build_classifier_oracle(config.models.member(name), train, held_out, config.data, progress=progress)
    names = check_same_classes({m: f.get("label_names") for m, f in facts.items()})
    info["family"] = {m: {k: v for k, v in f.items() if k != "label_names"} for m, f in facts.items()}
    if names is not None:
        info["label_names"] = names
    return FamilyOracle(oracles), map_classes(held_out, names, config.data.class_map)


def clean_accuracy(task: ClassificationTask, batch: int = 512) -> dict[str, float]:
    """Accuracy on the unperturbed held-out samples: ``{"model": ...}`` for one model; for a
    family each model's by name and ``"aggregate"``, one minus the share the family's
    aggregate (``reward.aggregate``) counts as failed."""
    hits = np.zeros(len(task.members) + 1, np.int64)
    for i in range(0, task.num_samples, batch):
        logits = task.oracle(task.images[i : i + batch])
        labels = task.labels[i : i + batch]
        outcome, per, _ = task._score(logits, labels, jnp.arange(labels.shape[0]))
        hits[0] += int(np.sum(~np.asarray(outcome.failed)))
        if per is not None:
            hits[1:] += np.sum(~np.asarray(per.failed), axis=1)
    share = hits / task.num_samples
    if not task.members:
        return {"model": float(share[0])}
    return {"aggregate": float(share[0]), **{m: float(share[1 + k]) for k, m in enumerate(task.members)}}
