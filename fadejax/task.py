"""Audit tasks: what a query is, how the audited model answers it and what that earns.

:class:`AuditTask` is the interface the discovery loop needs; :class:`ClassificationTask`
is the image-classification audit (held-out samples on device, JAX perturbations, a
classifier oracle, eq. 4). The text-summarization and text-to-image audits implement the
same interface in ``fadejax.text`` and ``fadejax.diffusion``.

The classifier oracle is any callable ``images (B, H, W, C) -> logits (B, num_classes)``
on JAX arrays; the torch classifier bridge is one, and a pure-JAX model can be another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from fadejax import perturbations
from fadejax.config import ExperimentConfig, ObservationConfig, RewardConfig
from fadejax.data import ImageDataset, load_digits_split, load_npz
from fadejax.rewards import classification_reward
from fadejax.spaces import ConceptSpace


class AuditTask(Protocol):
    """What the discovery loop needs from an audit.

    Attributes:
      space: the concept space.
      observations: ``(N, D)`` float32 on device: what the searcher sees of each sample.
      num_samples: ``N``.
      info: facts for reports (model path, clean score, ...).
      kind: ``"image"``, ``"text"`` or ``"prompt"``: how reports show a query.
    """

    space: ConceptSpace
    observations: jax.Array
    info: dict[str, Any]
    kind: str

    @property
    def num_samples(self) -> int: ...

    def prepare(self, sample: jax.Array, values: jax.Array, key: jax.Array) -> Any:
        """Jittable, inside the loop's proposal step: the device-side inputs of the ``B``
        queries (e.g. perturbed images ``(B, H, W, C)``), or ``None`` for host-side tasks.
        ``sample`` ``(B,)`` int32 rows, ``values`` ``(B, num_axes)`` from ``space.values_of_cell``."""

    def evaluate(self, inputs: Any, pending: dict[str, jax.Array]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run the audited model once on the ``B`` queries and score them.

        ``pending`` holds ``sample``, ``cell`` ``(B, num_axes)``, ``values``, ``steps``,
        ``iteration`` and ``k_perturb``. Returns ``(core, fields)``: ``core`` has ``reward`` (the macroscopic
        reward), ``failed`` and optionally ``micro_base`` (the term the microscopic reward
        subtracts ``alpha * steps`` from, if not ``reward``), each ``(B,)``; ``fields`` are
        the task's per-query record fields (arrays or lists of length ``B``), in record order.
        """

    def replicate(self, sharding: Any) -> None:
        """Place the task's device arrays with ``sharding`` (one copy per device)."""


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
      reward: eq. 4's settings.
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

    def __post_init__(self) -> None:
        r = self.reward
        self._score = jax.jit(lambda logits, labels: classification_reward(logits, labels, scale=r.scale, const=r.const, form=r.form))

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def prepare(self, sample: jax.Array, values: jax.Array, key: jax.Array) -> jax.Array:
        """The perturbed images ``(B, H, W, C)`` of the queries (jittable)."""
        return self.perturb(self.images[sample], values, key)

    def evaluate(self, inputs: jax.Array, pending: dict[str, jax.Array]) -> tuple[dict[str, Any], dict[str, Any]]:
        """One batched classifier call and eq. 4; record fields ``label, predicted, score``."""
        labels = self.labels[pending["sample"]]
        outcome = self._score(self.oracle(inputs), labels)
        core = {"reward": outcome.reward, "failed": outcome.failed}
        return core, {"label": labels, "predicted": outcome.predicted, "score": outcome.score}

    def replicate(self, sharding: Any) -> None:
        self.images, self.labels, self.observations = jax.device_put((self.images, self.labels, self.observations), sharding)


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
    else:
        train, held_out = None, load_npz(d.path)
    if d.limit is not None and d.limit < len(held_out):
        held_out = ImageDataset(held_out.images[: d.limit], held_out.labels[: d.limit], held_out.num_classes, f"{held_out.name}-first{d.limit}")
    return train, held_out


def build_task(config: ExperimentConfig, oracle: Any = None, progress: bool = True) -> AuditTask:
    """Load data and the audited model (through the torch bridge unless ``oracle`` is given)
    for the config's task: an image classifier, a summarizer or a text-to-image pipeline.
    With ``config.recording`` set, neither is loaded: the recording answers every query."""
    if config.recording is not None:
        from fadejax.recording import replay

        return replay(config, config.recording)
    if config.task == "text":
        from fadejax.text.task import build_text_task

        return build_text_task(config, oracle=oracle, progress=progress)
    if config.task == "prompt":
        from fadejax.diffusion.task import build_prompt_task

        return build_prompt_task(config, oracle=oracle, progress=progress)
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
        reward=config.reward,
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
