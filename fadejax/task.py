"""The image-classification audit task: held-out samples on device, observations, perturbations, oracle.

The oracle is any callable ``images (B, H, W, C) -> logits (B, num_classes)`` on JAX
arrays; the torch classifier bridge is one, and a pure-JAX model can be another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from fadejax import perturbations
from fadejax.config import ExperimentConfig, ObservationConfig
from fadejax.data import ImageDataset, load_digits_split, load_npz
from fadejax.spaces import ConceptSpace


class Oracle(Protocol):
    """An audited classifier: ``(B, H, W, C)`` images in [0, 1] -> ``(B, num_classes)`` logits."""

    num_classes: int

    def __call__(self, images: jax.Array) -> jax.Array: ...


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
    """

    images: jax.Array
    labels: jax.Array
    observations: jax.Array
    space: ConceptSpace
    perturb: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    oracle: Oracle
    info: dict[str, Any]

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])


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
        return load_digits_split(d.image_size, d.held_out_fraction, d.split_seed)
    return None, load_npz(d.path)


def build_task(config: ExperimentConfig, oracle: Oracle | None = None, progress: bool = True) -> ClassificationTask:
    """Load data and the audited model (through the torch bridge unless ``oracle`` is given)."""
    train, held_out = load_data(config)
    info: dict[str, Any] = {"data": held_out.name, "held_out_samples": len(held_out)}
    if oracle is None:
        from bridges.loading import build_classifier_oracle  # torch enters here, not at import time

        oracle, model_info = build_classifier_oracle(config.model, train, held_out, config.data, progress=progress)
        info.update(model_info)
    space = config.concept_space()
    perturb = perturbations.compose(
        [a.perturbation_name for a in config.space.axes], [a.values for a in config.space.axes]
    )
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
    )
    # One pass over the clean held-out set: checks the model's output (classes, NaN)
    # before any run directory is written, and gives the clean accuracy for reports.
    info["clean_accuracy"] = clean_accuracy(task)
    return task


def clean_accuracy(task: ClassificationTask, batch: int = 512) -> float:
    """Accuracy of the audited model on the unperturbed held-out samples."""
    hits = 0
    for i in range(0, task.num_samples, batch):
        logits = task.oracle(task.images[i : i + batch])
        hits += int(np.sum(np.asarray(jnp.argmax(logits, -1)) == np.asarray(task.labels[i : i + batch])))
    return hits / task.num_samples
